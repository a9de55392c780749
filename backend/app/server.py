"""Process wiring for HTTP serving: the API alone, or API and worker in one process (``dantaro run``).

``dantaro api`` runs on uvloop when it is installed (the standard asyncio loop otherwise): libuv sheds connections
silently when descriptors run out, so ``app.descriptors.watch_descriptors`` checks for exhaustion once a second and
logs the same rate-limited ``accept_failed`` event the asyncio loop's accept error gives. Uvicorn owns
SIGINT/SIGTERM; when it stops serving, the in-process worker is told to stop and drains, and only then is the
signal raised again (uvicorn would re-raise it as it returns, ending the process before the worker drained). Uvicorn
waits for every open response before it finishes, so live streams are ended first (``begin_shutdown``).
Connections are bounded (``app.http_limits``): a deadline and a size (``DANTARO_API_MAX_HEADER_BYTES``) for each
request head, uvicorn's keep-alive timeout, at most ``DANTARO_API_MAX_CONNECTIONS`` at once (503 beyond), and
descriptor exhaustion logged as one rate-limited event.

One of several API processes (``dantaro api --workers N``, ``app.supervisor``) serves a listening socket it
inherited from the supervisor (``ProcessWiring.listen_fd``), says when it is ready (one byte on ``ready_fd`` once
uvicorn listens), spools its metrics for the aggregated ``/metrics`` (``metrics_dir``) and stops with its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import REGISTRY

from app.api.app import ApiState, DantaroApi, begin_shutdown, create_app
from app.config import Settings
from app.descriptors import install_accept_error_log, watch_descriptors
from app.http_limits import protocol_with_deadline
from app.logging import uvicorn_log_config
from app.storage.cache import MemoryCache
from app.supervisor.child import die_with_parent, say_ready


@dataclass(frozen=True, slots=True)
class ProcessWiring:
    """What a supervised API process gets from its supervisor: the listening socket, the readiness pipe (both file
    descriptors) and the metrics directory."""

    listen_fd: int
    ready_fd: int
    metrics_dir: Path


class _Server(uvicorn.Server):
    """Uvicorn's server, calling ``before_shutdown`` (end the live streams) before it waits for open responses, and
    keeping the signals that stopped it in ``stopped_by`` instead of re-raising them as it returns (``reraise``)."""

    def __init__(
        self, config: uvicorn.Config, *, before_shutdown: Callable[[], None], on_started: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown
        self._on_started = on_started
        self.stopped_by: list[int] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Uvicorn's startup (the lifespan, then listening), then ``on_started``."""
        await super().startup(sockets)
        if self.started:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Uvicorn's signal handlers; what they caught is moved to ``stopped_by`` before uvicorn would re-raise it."""
        with super().capture_signals():
            try:
                yield
            finally:
                self.stopped_by.extend(self._captured_signals)  # uvicorn re-raises this list as it returns
                self._captured_signals.clear()

    def reraise(self) -> None:
        """Raise the signals that stopped the server again (last first, as uvicorn does), now that the process's
        other parts have stopped: the exit status says which signal ended it."""
        for signum in reversed(self.stopped_by):
            signal.raise_signal(signum)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the live streams, then uvicorn's graceful shutdown."""
        self._before_shutdown()
        await super().shutdown(sockets)


def _server(
    settings: Settings,
    *,
    host: str,
    port: int,
    state: ApiState | None,
    on_started: Callable[[], None] = lambda: None,
) -> _Server:
    app = create_app(settings, state=state)
    return _Server(
        server_config(app, settings, host=host, port=port),
        before_shutdown=lambda: begin_shutdown(app),
        on_started=on_started,
    )


def server_config(app: DantaroApi, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """Uvicorn's configuration for ``app``: the bounded connections of ``app.http_limits``, the hot path's answers
    written by the protocol, proxy headers from ``DANTARO_FORWARDED_ALLOW_IPS``, no access log (ours is the app's)."""
    trusted_proxies = list(settings.forwarded_allow_ips)
    protocol = protocol_with_deadline(
        settings.api_header_timeout_s,
        max_header_bytes=settings.api_max_header_bytes,
        answer_now=app.answer_at_once(),
        trusted_proxies=trusted_proxies,
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=uvicorn_log_config(),
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=trusted_proxies,
        http=protocol,
        timeout_keep_alive=int(settings.api_keepalive_timeout_s),
        limit_concurrency=settings.api_max_connections,
        backlog=settings.api_max_connections,
    )


def run_api(settings: Settings, *, host: str, port: int, wiring: ProcessWiring | None = None) -> None:
    """``dantaro api``: serve the API on uvloop when installed (see the module docstring) until a signal; with
    ``wiring``, as one process of a supervised group."""
    if wiring is not None:
        die_with_parent()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve_api(settings, host=host, port=port, wiring=wiring))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else None (the standard loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve_api(settings: Settings, *, host: str, port: int, wiring: ProcessWiring | None = None) -> None:
    """Serve the API until a signal stops uvicorn (with ``wiring``: on the inherited socket, ready said once up)."""
    if wiring is None:
        server = _server(settings, host=host, port=port, state=None)
        sockets = None
    else:
        state = ApiState(metrics_dir=wiring.metrics_dir)
        server = _server(settings, host=host, port=port, state=state, on_started=lambda: say_ready(wiring.ready_fd))
        sockets = [socket.socket(fileno=wiring.listen_fd)]
    async with _descriptors_watched():
        await server.serve(sockets=sockets)
    server.reraise()


@contextlib.asynccontextmanager
async def _descriptors_watched() -> AsyncIterator[None]:
    """Descriptor exhaustion logged on this loop, from its accept errors and from a once-a-second count."""
    watch = asyncio.create_task(watch_descriptors(install_accept_error_log(asyncio.get_running_loop())))
    try:
        yield
    finally:
        watch.cancel()


async def serve_all(settings: Settings, *, host: str, port: int) -> None:
    """Serve the API and run the worker in this process, sharing an in-process cache when Redis is not set."""
    from app.worker.main import open_worker

    shared = MemoryCache()
    state = ApiState(cache=None if settings.redis_url else shared, extra_metrics=REGISTRY)  # + worker metrics
    server = _server(settings, host=host, port=port, state=state)
    stop = asyncio.Event()
    async with _descriptors_watched(), open_worker(settings, shared_cache=shared) as worker:
        worker_task = asyncio.create_task(worker.serve(stop))
        try:
            await server.serve()
        finally:
            stop.set()
            await worker_task
    server.reraise()  # only now: the worker has drained
