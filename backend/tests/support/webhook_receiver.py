"""A loopback webhook receiver: a real HTTP server on 127.0.0.1 that records every POST and answers as scripted.

It answers the ``statuses`` given, in order, then ``default_status``, each after ``delay_s``; ``hold()`` makes requests
wait (after being recorded) until ``release()``, to catch a sender with a request in flight; ``max_in_flight`` is the
most requests it has held open at once. ``verified(secret)`` checks each request
with the client package's ``verify_signature``, the check receivers run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from dantaro_client.signatures import verify_signature

HOLD_LIMIT_S = 60.0  # a held request is answered after this even when nobody releases it


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        """The body parsed."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def delivery_id(self) -> str:
        """``Dantaro-Delivery``."""
        return self.headers["dantaro-delivery"]


class WebhookReceiver:
    """Records POSTs on ``url``; a context manager that starts and stops the server."""

    def __init__(self, *, statuses: Sequence[int] = (), default_status: int = 200, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.default_status = default_status
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[Received] = []
        self.arrived = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/hook``."""
        return f"http://127.0.0.1:{self.port}/hook"

    def hold(self) -> None:
        """Keep the next requests waiting, unanswered, until ``release``."""
        self._released.clear()

    def release(self) -> None:
        """Answer the held requests and stop holding."""
        self._released.set()

    def verified(self, secret: str) -> list[Received]:
        """Every request, each checked with ``verify_signature`` (raises on the first that does not verify)."""
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            verify_signature(secret, request.headers, request.body)
        return requests

    def _answer(self, received: Received) -> int:
        with self._lock:
            self.requests.append(received)
            status = self.statuses.pop(0) if self.statuses else self.default_status
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived.set()
        self._released.wait(timeout=HOLD_LIMIT_S)
        time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver._answer(Received(self.path, headers, body))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender went away while held
                    pass

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read ``requests``."""

        return Handler

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
