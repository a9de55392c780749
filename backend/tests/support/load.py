"""An HTTP load on a running API: client threads recording each reply's status and provenance fields.

``at_s`` and ``latency_s`` are monotonic seconds; transport failures are replies with ``status`` 0 and ``error``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx2


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer (or transport failure: ``status`` 0 and ``error``) seen by the load, at monotonic ``at_s``."""

    at_s: float
    path: str
    status: int
    data_source: str | None = None
    run_id: str | None = None
    stale: bool | None = None
    error: str | None = None
    cache_status: str | None = None  # market-status only: system_health.cache_status
    age_s: float | None = None  # age_seconds: how old the served run is
    latency_s: float = 0.0


def fetch(client: httpx2.Client, path: str) -> Reply:
    """GET ``path`` and record the provenance fields of the body (transport errors become status 0)."""
    at_s = time.monotonic()
    try:
        response = client.get(path)
    except httpx2.HTTPError as exc:
        return Reply(at_s, path, 0, error=f"{type(exc).__name__}: {exc}")
    try:
        body = response.json()
    except ValueError:
        return Reply(at_s, path, response.status_code, error=response.text[:200])
    if not isinstance(body, dict):
        return Reply(at_s, path, response.status_code, error=str(body)[:200])
    error = None if response.status_code == 200 else str(body)[:300]
    health = body.get("system_health")
    cache_status = health.get("cache_status") if isinstance(health, dict) else None
    return Reply(
        at_s,
        path,
        response.status_code,
        body.get("data_source"),
        body.get("run_id"),
        body.get("stale"),
        error,
        cache_status,
        body.get("age_seconds"),
        time.monotonic() - at_s,
    )


class Load:
    """``threads`` clients requesting ``paths`` round-robin against ``base_url`` until ``stop()``."""

    def __init__(
        self, base_url: str, *, paths: list[str], headers: dict[str, str], threads: int = 4, timeout_s: float = 5.0
    ) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._paths = paths
        self._headers = headers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.replies: list[Reply] = []
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, offset: int) -> None:
        with httpx2.Client(base_url=self._base_url, headers=self._headers, timeout=self._timeout_s) as client:
            turn = offset
            while not self._stop.is_set():
                reply = fetch(client, self._paths[turn % len(self._paths)])
                with self._lock:
                    self.replies.append(reply)
                turn += 1
