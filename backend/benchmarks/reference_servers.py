"""The reference servers of ``performance_test.py``: the bytes our API served, answered as fast as a framework can.

Run: ``python -m benchmarks.reference_servers {fastapi,asgi} ROUTES.json PORT [PROCESSES]`` from ``backend/``.
``ROUTES.json`` lists ``[method, path, query, body]`` (the body as latin-1 text). ``fastapi`` is a bare FastAPI app,
one route per path returning the recorded body for the query; ``asgi`` is a plain ASGI callable doing a dict lookup.
Both answer ``GET /health`` and run under uvicorn exactly as ``uvicorn.run`` does by default (uvloop, httptools, no
access log), so the benchmark compares the work per request, not the server setup. With ``PROCESSES`` > 1 (the
machine-level run) the parent forks that many uvicorn servers, each on its own ``SO_REUSEPORT`` socket of the port
(the layout of ``dantaro api --workers N``), and stops them on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

Routes = dict[tuple[str, str], dict[str, bytes]]  # (method, path) -> query -> body
HEALTH = b'{"status":"ok"}'


def load_routes(path: Path) -> Routes:
    """The recorded answers of ``path``, grouped by method and path."""
    routes: Routes = {("GET", "/health"): {"": HEALTH}}
    for method, route_path, query, body in json.loads(path.read_text()):
        routes.setdefault((method, route_path), {})[query] = body.encode("latin-1")
    return routes


def fastapi_app(routes: Routes) -> FastAPI:
    """A bare FastAPI app: one route per path, returning the recorded body."""
    app = FastAPI()

    def route(by_query: dict[str, bytes]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return Response(by_query[request.scope["query_string"].decode()], media_type="application/json")

        return serve

    for (method, path), by_query in routes.items():
        app.add_api_route(path, route(by_query), methods=[method])
    return app


def asgi_app(routes: Routes) -> Callable[..., Awaitable[None]]:
    """A plain ASGI callable: a dict lookup, then the two messages of the response."""
    answers = {
        (method, path, query.encode()): body
        for (method, path), by_query in routes.items()
        for query, body in by_query.items()
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more_body = scope["method"] == "POST"
        while more_body:  # read the request body, as any server of a POST must
            more_body = (await receive()).get("more_body", False)
        body = answers[(scope["method"], scope["path"], scope["query_string"])]
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _serve_processes(app: Callable[..., Awaitable[None]] | FastAPI, port: int, processes: int) -> None:
    """``processes`` forked uvicorn servers, one ``SO_REUSEPORT`` socket each; SIGTERM stops them all."""
    children = []
    for _ in range(processes):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        pid = os.fork()
        if pid == 0:
            config = uvicorn.Config(app, log_level="warning", access_log=False)
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        sock.close()
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    for child in children:
        os.waitpid(child, 0)


def main(argv: list[str]) -> int:
    """Serve the recorded answers until terminated."""
    kind, routes_path, port, *rest = argv
    routes = load_routes(Path(routes_path))
    app = fastapi_app(routes) if kind == "fastapi" else asgi_app(routes)
    processes = int(rest[0]) if rest else 1
    if processes > 1:
        _serve_processes(app, int(port), processes)
        return 0
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
