// The dashboard's own behaviour, on top of htmx 4 and its SSE extension (no build step):
// placing task rows that arrive on the board's stream, showing whether the page is live,
// keeping ages fresh, copying posts, marking actions as requested, drawing the stats charts.
(() => {
  "use strict";

  let htmxApi = null;

  // ---------------------------------------------------------------------------------
  // Task rows from the stream. Each message carries one row rendered for every board
  // (hx-swap-oob="taskRow target:#board strip:false"); this page decides where it goes:
  // morphed in place when the row is here, moved between "current" and "history" when
  // its task finished, inserted when new and accepted by this page's filters, removed
  // when it no longer matches them.
  // ---------------------------------------------------------------------------------

  function accepts(tbody, row) {
    const filter = tbody.dataset, task = row.dataset;
    if (filter.filterStatus && filter.filterStatus !== task.status) return false;
    if (filter.filterType && filter.filterType !== task.type) return false;
    if (filter.filterOwner && filter.filterOwner !== task.owner) return false;
    if (filter.filterQ && !task.task.startsWith(filter.filterQ)) return false;
    return true;
  }

  const enqueued = (row) => Date.parse(row.dataset.enqueued) || 0;

  // Newest first, the order the server lists them in.
  function insertSorted(tbody, row) {
    const at = enqueued(row);
    for (const other of tbody.children) {
      if (other !== row && enqueued(other) <= at) {
        tbody.insertBefore(row, other);
        return;
      }
    }
    tbody.appendChild(row);
  }

  function trim(tbody) {
    const limit = parseInt(tbody.dataset.limit || "0", 10);
    while (limit > 0 && tbody.children.length > limit) tbody.lastElementChild.remove();
  }

  function placeRow(row) {
    const existing = document.getElementById(row.id);
    const tbody = document.getElementById("rows-" + row.dataset.section);
    const wanted = Boolean(tbody) && accepts(tbody, row);
    const live = Boolean(tbody) && tbody.dataset.live === "true";
    if (existing) {
      if (!wanted || (existing.parentElement !== tbody && !live)) {
        if (existing.closest("[data-rows]")) existing.remove();
        return null;
      }
      if (existing.parentElement !== tbody) {
        insertSorted(tbody, existing);
        if (tbody.id === "rows-history") countFinished();
      }
      const fragment = document.createDocumentFragment();
      fragment.append(row);
      htmxApi.morph(existing, fragment, false); // outerMorph: keeps focus and open forms
      trim(tbody);
      return existing.isConnected ? existing : null;
    }
    if (!wanted || !live) return null;
    insertSorted(tbody, row);
    if (tbody.id === "rows-history") countFinished();
    trim(tbody);
    return row.isConnected ? row : null;
  }

  function countFinished() {
    for (const total of document.querySelectorAll("[data-history-total]")) {
      total.textContent = String((parseInt(total.textContent, 10) || 0) + 1);
    }
  }

  function updateCounts() {
    for (const counter of document.querySelectorAll("[data-count-for]")) {
      const tbody = document.getElementById(counter.dataset.countFor);
      if (tbody) counter.textContent = String(tbody.children.length);
    }
  }

  htmx.registerExtension("taskrows", {
    init: (api) => { htmxApi = api; },
    // A <details> the reader opened stays open when its panel is re-rendered.
    htmx_before_morph_attr: (element, detail) =>
      !(element.tagName === "DETAILS" && detail.attrName === "open"),
    handle_swap: (style, target, fragment) => {
      if (style !== "taskRow") return false;
      const placed = [];
      for (const row of [...fragment.children]) {
        const element = placeRow(row);
        if (element) placed.push(element);
      }
      updateCounts();
      refreshTimes(document);
      return placed; // htmx processes these (wires their forms)
    },
  });

  // ---------------------------------------------------------------------------------
  // Live / reconnecting indicator, from the SSE extension's events (htmx 4.0.1 names).
  // ---------------------------------------------------------------------------------

  function setLive(state, text) {
    for (const indicator of document.querySelectorAll(".live")) {
      indicator.dataset.state = state;
      const label = indicator.querySelector(".live-text");
      if (label) label.textContent = text;
    }
  }

  document.addEventListener("htmx:sse:after:connection", () => setLive("live", "Live"));
  document.addEventListener("htmx:sse:before:connection", (event) => {
    if (event.detail?.connection?.attempt > 0) setLive("reconnecting", "Reconnecting…");
  });
  document.addEventListener("htmx:sse:error", () => setLive("reconnecting", "Reconnecting…"));
  document.addEventListener("htmx:sse:close", (event) => {
    if (event.detail?.reason !== "removed") setLive("offline", "Offline: reload the page");
  });

  // ---------------------------------------------------------------------------------
  // Ages and running times. The server renders them as text for the moment it renders
  // (rows are shared by every board); the browser keeps them current.
  // ---------------------------------------------------------------------------------

  const serverSkew = (() => {
    const meta = document.querySelector('meta[name="server-time"]');
    const serverTime = meta ? Date.parse(meta.content) : NaN;
    return Number.isNaN(serverTime) ? 0 : Date.now() - serverTime;
  })();

  function secondsText(seconds) {
    seconds = Math.max(seconds, 0);
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    let minutes = Math.floor(seconds / 60);
    const secs = Math.floor(seconds % 60);
    if (minutes < 60) return secs ? `${minutes} min ${secs} s` : `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 48) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
    return `${Math.floor(hours / 24)} days`;
  }

  function refreshTimes(root) {
    const now = Date.now() - serverSkew;
    for (const element of root.querySelectorAll("[data-since]")) {
      const since = Date.parse(element.dataset.since);
      if (Number.isNaN(since)) continue;
      const text = secondsText((now - since) / 1000);
      const wanted = element.dataset.format === "ago" ? text + " ago" : text;
      if (element.textContent !== wanted) element.textContent = wanted;
      if (element.tagName === "TIME" && !element.title) {
        element.title = new Date(since).toLocaleString();
      }
    }
  }

  // Local times: one formatter for every <time data-local="datetime|date|time"> and the
  // board's clocks, in the browser's time zone. The server learns the zone from the `tz`
  // cookie, to render the same text before this runs and to lay out the calendar's days.
  const LOCAL_FORMATS = {
    datetime: {weekday: "short", day: "numeric", month: "short", year: "numeric",
               hour: "2-digit", minute: "2-digit", timeZoneName: "short"},
    date: {weekday: "short", day: "numeric", month: "short"},
    time: {hour: "2-digit", minute: "2-digit"},
  };
  const formatters = {};
  function formatLocal(at, style) {
    const options = LOCAL_FORMATS[style] ? style : "datetime";
    formatters[options] ??= new Intl.DateTimeFormat(undefined, LOCAL_FORMATS[options]);
    return formatters[options].format(new Date(at));
  }

  function localClocks(root) {
    for (const element of root.querySelectorAll("time[data-clock], time[data-local]")) {
      const at = Date.parse(element.getAttribute("datetime"));
      if (Number.isNaN(at)) continue;
      const text = formatLocal(at, element.hasAttribute("data-clock") ? "time" : element.dataset.local);
      if (element.textContent !== text) element.textContent = text;
    }
  }

  function rememberTimeZone() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone) return;
    const current = document.cookie.split("; ").find((c) => c.startsWith("tz="));
    if (current && decodeURIComponent(current.slice(3)) === zone) return;
    document.cookie = `tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; SameSite=Lax`;
    // A page laid out by days (the calendar) is drawn again in the right zone.
    // Once: with cookies refused it would reload forever.
    if (document.querySelector("[data-tz-sensitive]") && document.cookie.includes("tz=")
        && !sessionStorage.getItem("tz-reloaded")) {
      sessionStorage.setItem("tz-reloaded", "1");
      location.reload();
    }
  }

  document.addEventListener("htmx:after:swap", () => { refreshTimes(document); localClocks(document); });

  // ---------------------------------------------------------------------------------
  // Requested actions: visible at once, until the stream brings the confirmed state
  // (its rendering of the task has no marker) or the answer says it failed.
  // ---------------------------------------------------------------------------------

  function markRequested(form, on) {
    const holder = form.closest("[data-task]");
    if (!holder) return;
    const note = holder.querySelector(".requested");
    if (on) {
      holder.setAttribute("data-requested", form.dataset.requested);
      if (note) note.textContent = form.dataset.requested + "…";
    } else {
      holder.removeAttribute("data-requested");
      if (note) note.textContent = "";
    }
    for (const button of form.querySelectorAll("button")) button.disabled = on;
  }

  document.addEventListener("htmx:before:request", (event) => {
    const form = event.target.closest?.("form[data-requested]");
    if (form) markRequested(form, true);
  });
  document.addEventListener("htmx:after:request", (event) => {
    const form = event.target.closest?.("form[data-requested]");
    if (!form || !form.isConnected) return;
    const status = event.detail?.ctx?.response?.status ?? 0;
    if (status >= 400 || form.dataset.requestedUntil === "answer") markRequested(form, false);
  });
  document.addEventListener("htmx:error", (event) => {
    const form = event.target.closest?.("form[data-requested]");
    if (form && form.isConnected) markRequested(form, false);
  });

  // ---------------------------------------------------------------------------------
  // Copy buttons and dismissable notices.
  // ---------------------------------------------------------------------------------

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      return done;
    }
  }

  document.addEventListener("click", async (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) {
      event.preventDefault();  // a "Cancel" link is for pages without JavaScript
      dismiss.closest(".flash")?.remove();
      return;
    }
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const copied = await copyText(source.textContent.trim());
    button.textContent = copied ? "Copied" : "Copy failed";
    button.dataset.copied = copied ? "true" : "false";
    setTimeout(() => { button.textContent = "Copy"; delete button.dataset.copied; }, 1500);
  });

  // ---------------------------------------------------------------------------------
  // Stats charts (uPlot). Series differ by dash pattern and legend label, not only colour.
  // ---------------------------------------------------------------------------------

  function drawStats() {
    const source = document.getElementById("stats-data");
    if (!source || !window.uPlot) return;
    const stats = JSON.parse(source.textContent);
    const charts = [];
    const widthOf = (element) => Math.max(element.clientWidth || 0, 260);

    const finished = document.getElementById("chart-finished");
    if (finished) {
      const data = stats.per_minute;
      charts.push([finished, new uPlot({
        width: widthOf(finished), height: 220,
        scales: {x: {time: true}},
        series: [
          {},
          {label: "Completed", stroke: "#2e7d32", width: 2, fill: "rgba(46,125,50,0.12)", points: {show: false},
           paths: uPlot.paths.stepped({align: 1})},
          {label: "Failed", stroke: "#c62828", width: 2, dash: [6, 4], points: {show: false},
           paths: uPlot.paths.stepped({align: 1})},
        ],
        axes: [{}, {label: stats.per_minute.unit || "tasks per minute", size: 50}],
      }, [data.times, data.completed, data.failed], finished)]);
    }

    for (const element of document.querySelectorAll("[data-run-times]")) {
      const series = stats.run_times.types[element.dataset.runTimes];
      if (!series) continue;
      charts.push([element, new uPlot({
        width: widthOf(element), height: 160,
        scales: {x: {time: true}},
        series: [
          {},
          {label: "p50", stroke: "#1565c0", width: 2, points: {show: true, size: 5}},
          {label: "p95", stroke: "#ef6c00", width: 2, dash: [6, 4], points: {show: true, size: 5}},
        ],
        axes: [{}, {label: "seconds", size: 50}],
      }, [stats.run_times.times, series.p50, series.p95], element)]);
    }

    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const [element, chart] of charts) {
          chart.setSize({width: widthOf(element), height: chart.height});
        }
      }, 150);
    });
  }

  // Plain forms that destroy or lock out something ask first (data-confirm). Once the
  // person said yes, the form says so (confirmed=yes): without JavaScript the server asks
  // with a page of its own instead (webapp/confirmation.py), and must not ask again here.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.dataset && form.dataset.confirm;
    if (!question) return;
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (!form.querySelector("input[name=confirmed]")) {
      const yes = document.createElement("input");
      Object.assign(yes, {type: "hidden", name: "confirmed", value: "yes"});
      form.append(yes);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    rememberTimeZone();
    refreshTimes(document);
    localClocks(document);
    drawStats();
    setInterval(() => refreshTimes(document), 1000);
  });
})();
