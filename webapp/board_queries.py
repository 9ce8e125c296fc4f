"""Read-only questions the dashboard pages ask of the task records (blocking: call them
through `asyncio.to_thread`).

The board splits tasks into what is current (waiting or running) and what is history
(finished): two pages of `jobs.queries.task_page`, in the API's newest-first order. History
pages link to each other by cursor (`before=`/`after=`), so an old page costs what the
first does; `page` is what the reader sees.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy import Engine

from jobs import queries
from jobs.models import FINAL_STATUSES, STATUSES
from jobs.queries import ACTIVE_STATUSES, TaskPage
from jobs.task_types import NAMES as TYPE_NAMES

ACTIVE_LIMIT = 200  # current tasks shown at once; the rest are counted


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows, as it appears in the URL."""
    status: str = ""
    type: str = ""
    owner: str = ""
    q: str = ""
    page: int = 1
    per_page: int = 25
    before: str = ""  # cursors of the neighbouring history pages (one at most)
    after: str = ""

    @classmethod
    def from_args(cls, args) -> "BoardFilters":
        status = (args.get("status") or "").strip().upper()
        task_type = (args.get("type") or "").strip()
        return cls(
            status=status if status in STATUSES else "",
            type=task_type if task_type in TYPE_NAMES else "",
            owner=(args.get("owner") or "").strip()[:200],
            q=(args.get("q") or "").strip()[:64],
            page=_bounded_int(args.get("page"), 1, 1, 100_000),
            per_page=_bounded_int(args.get("per_page"), 25, 5, 200),
            before=_cursor(args.get("before")),
            after="" if args.get("before") else _cursor(args.get("after")),
        )

    def query_string(self, **changes) -> str:
        """The URL query for these filters (empty values left out), with `changes` applied."""
        from urllib.parse import urlencode
        values = {"status": self.status, "type": self.type, "owner": self.owner, "q": self.q,
                  "page": self.page if self.page != 1 else "",
                  "per_page": self.per_page if self.per_page != 25 else "",
                  "before": self.before, "after": self.after}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    @property
    def active(self) -> bool:
        return bool(self.status or self.type or self.owner or self.q)

    def within(self, scope: str | None) -> "BoardFilters":
        """These filters limited to what one owner may see (None: everything)."""
        return self if scope is None else dataclasses.replace(self, owner=scope)


@dataclass
class Board:
    active: list[dict] = field(default_factory=list)
    active_total: int = 0
    history: list[dict] = field(default_factory=list)
    history_total: int = 0
    history_exact: bool = True  # False: more than `history_total` (counting stops there)
    older: str | None = None    # cursor of the next history page
    newer: str | None = None
    filters: BoardFilters = field(default_factory=BoardFilters)

    @property
    def pages(self) -> int | None:
        """How many history pages there are, None when not counted to the end."""
        return max(1, -(-self.history_total // self.filters.per_page)) if self.history_exact else None


def _cursor(raw) -> str:
    """A well-formed cursor, or "" (an edited URL shows the first page rather than an error)."""
    try:
        queries.decode_cursor(raw or "")
    except ValueError:
        return ""
    return raw


def _bounded_int(raw, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(raw), low), high)
    except (TypeError, ValueError):
        return default


def _section(db: Engine, f: BoardFilters, statuses: tuple[str, ...], **paging) -> TaskPage:
    wanted = tuple(s for s in statuses if not f.status or s == f.status)
    return queries.task_page(db, statuses=wanted, task_type=f.type or None, owner=f.owner or None,
                             id_prefix=f.q or None, **paging)


def board(db: Engine, f: BoardFilters) -> Board:
    active = _section(db, f, ACTIVE_STATUSES, per_page=ACTIVE_LIMIT)
    history = _section(db, f, tuple(FINAL_STATUSES), page=f.page, per_page=f.per_page,
                       before=f.before or None, after=f.after or None)
    return Board(active=active.tasks, active_total=active.total, history=history.tasks,
                 history_total=history.total, history_exact=history.total_exact,
                 older=history.older, newer=history.newer, filters=f)
