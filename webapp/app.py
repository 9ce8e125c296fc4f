"""The app: its parts put together, started and stopped with the server."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from quart import Quart, current_app
from quart.sessions import SessionInterface
from quart_schema import QuartSchema

from jobs.alerts import Alerter
from jobs.embedded import EmbeddedConsumer
from jobs.webhooks import Deliverer
from jobs.reaper import Reaper
from jobs.relay import Relay
from jobs.runtime import Runtime, build_runtime
from jobs.settings import Settings, load_settings
from webapp import errors, outages, role_views
from jobs.logs import configure_logging
from webapp.auth import init_auth
from webapp.fanout import Streams, is_stream_path
from webapp.inputs import init_inputs
from webapp.json_body import JSONBody
from webapp.limits import RateLimiter
from webapp.metrics import Metrics
from webapp.openapi import ApiDocument
from webapp.security import init_security
from webapp.sse import DirectStreams
from webapp.sync_pool import SyncPool

log = logging.getLogger("webapp")

BLOCKING_THREADS = 32  # threads for database and other blocking calls of one web process


def runtime() -> Runtime:
    return current_app.extensions["runtime"]


class _NoCookieSession(SessionInterface):
    """Quart's signed-cookie session is not used (signing in is quart-auth's cookie over a
    server-side session, see auth.py); opening and saving it cost every request a signing
    serializer. Writing to `quart.session` fails loudly (a null session)."""

    async def open_session(self, app, request) -> None:
        return None


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = Quart(__name__)
    app.session_interface = _NoCookieSession()
    app.config["MAX_CONTENT_LENGTH"] = 256 * 1024
    app.config["QUART_SCHEMA_CONVERT_CASING"] = False
    QuartSchema(app, info={"title": "Book Marketing Agent API", "version": "1.0"},
                swagger_ui_path=None, redoc_ui_path=None, scalar_ui_path=None,
                openapi_path="/openapi.json", openapi_provider_class=ApiDocument)
    app.json = JSONBody(app, default=app.json.default)  # quart-schema's: models too
    rt = build_runtime(settings, worker_kind="thread")
    app.extensions["runtime"] = rt
    app.extensions["metrics"] = Metrics(rt)
    errors.register(app)
    init_inputs(app)  # first: refused input never reaches sign-in or a route
    outages.register(app)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    init_auth(app, rt.db, settings.data_dir, secret, metrics_token)
    role_views.install(app, app.secret_key)  # after init_auth: the secret it settled on
    from webapp.direct_enqueue import DirectEnqueue  # here: it reads the routes' module
    # Inside the proxy fix (when there is one), so it sees the client's real scheme.
    app.asgi_app = DirectEnqueue(app.asgi_app, app)
    init_security(app, settings.trusted_proxies)
    app.extensions["limiter"] = RateLimiter(rt.redis_client)
    app.extensions["streams"] = Streams(rt.bus, settings)
    app.asgi_app = DirectStreams(app.asgi_app, is_stream_path)
    app.extensions["sync_pool"] = SyncPool(settings.sync_generation_workers,
                                           settings.sync_generation_timeout)

    from webapp.routes import (api, auth, authoring, board, books, console, events, library, pages,
                               posts, users)
    app.register_blueprint(auth.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(books.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(board.bp)
    app.register_blueprint(library.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(posts.bp)
    app.register_blueprint(authoring.bp)

    consumer: EmbeddedConsumer | None = None
    reaper = Reaper(rt)
    alerter = Alerter(rt)
    # A receiver is outside the service: the worker is named as authors see it.
    deliverer = Deliverer(rt.db, present=app.extensions["author_view"].task,
                          private_addresses=settings.webhook_private_addresses)
    # Redis mode: changes whose event was lost (Redis down, a worker killed between its
    # commit and its publish) reach the boards from here, a process that outlives workers.
    relay = Relay(rt.tracker) if rt.mode == "redis" else None
    background: list[asyncio.Task] = []

    @app.before_serving
    async def _start() -> None:
        nonlocal consumer
        app.extensions["streams"].limits.fit_open_files()
        # Blocking calls wait in threads; with the stock pool (cores + 4) a few requests
        # waiting on a database lock held by busy workers would queue every other request.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="blocking"))
        await rt.bus.start()
        background.append(asyncio.create_task(app.extensions["metrics"].follow(rt.bus)))
        if rt.mode == "embedded":
            consumer = EmbeddedConsumer(rt.huey, rt.wake, workers=settings.worker_concurrency,
                                        periodic=True, initial_delay=0.05, backoff=1.5,
                                        max_delay=1.0, check_worker_health=False)
            rt.executor.stopping = consumer.stop_flag.is_set
            rt.executor.threads = settings.worker_concurrency
            await asyncio.to_thread(consumer.start)
        reaper.start()
        alerter.start()
        deliverer.start()
        if relay is not None:
            relay.start()
        log.info("serving with the %s queue (%s)", rt.mode, rt.choice.reason)

    @app.after_serving
    async def _stop() -> None:
        rt.bus.stop_streams()
        for task in background:
            task.cancel()
        await asyncio.to_thread(alerter.stop)
        await asyncio.to_thread(deliverer.stop)
        if relay is not None:
            await asyncio.to_thread(relay.stop)
        await asyncio.to_thread(_stop_workers, rt, consumer, reaper)
        await rt.bus.close()
        app.extensions["sync_pool"].close()
        await asyncio.to_thread(rt.close)

    return app


def _stop_workers(rt: Runtime, consumer: EmbeddedConsumer | None, reaper: Reaper) -> None:
    reaper.stop()
    if consumer is None:
        return
    consumer.stop_flag.set()  # no new tasks
    rt.wake.set()
    if not rt.executor.wait_idle(rt.settings.shutdown_grace):
        log.warning("handing %d running task(s) back to the queue", len(rt.executor.running_ids()))
        rt.executor.hand_back_all()
        rt.executor.wait_idle(2.0)
    consumer.stop(graceful=False)
    rt.executor.stop()
