"""What both clients share: their options, the ``Core`` that runs their calls, and the httpx2 client they own or
borrow. A borrowed ``http_client`` lends its transport (proxies, TLS, limits, event hooks); the base URL, the key,
the timeouts and the retries are always this client's, and a borrowed client is never closed by this one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

import httpx2

from dantaro_client._core import Core, Options
from dantaro_client.endpoints import Endpoints
from dantaro_client.retry import RetryPolicy

H = TypeVar("H", httpx2.Client, httpx2.AsyncClient)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_STREAM_READ_TIMEOUT_S = 45.0  # three of the server's default 15 s heartbeats
DEFAULT_ETAG_CACHE_SIZE = 256
DEFAULT_RETRY = RetryPolicy()


class ClientBase(Endpoints, Generic[H]):
    """The options of a client and its httpx2 client."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        stream_read_timeout_s: float = DEFAULT_STREAM_READ_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        etag_cache_size: int = DEFAULT_ETAG_CACHE_SIZE,
        headers: Mapping[str, str] | None = None,
        http_client: H | None = None,
    ) -> None:
        """``base_url`` like ``https://dantaro.example.com``; ``timeout_s`` bounds connecting, sending and waiting
        for an answer (each); ``stream_read_timeout_s`` the silence allowed between two stream lines; ``headers``
        go with every request (e.g. a tracing header); ``etag_cache_size`` 0 turns conditional requests off."""
        if timeout_s <= 0 or stream_read_timeout_s <= 0:
            raise ValueError("timeout_s and stream_read_timeout_s must be > 0 seconds")
        self._core = Core(
            Options(
                base_url=base_url,
                api_key=api_key,
                timeout=httpx2.Timeout(timeout_s),
                stream_timeout=httpx2.Timeout(timeout_s, read=stream_read_timeout_s),
                retry=retry,
                etag_cache_size=etag_cache_size,
                headers=dict(headers or {}),
            )
        )
        self._owns_http = http_client is None
        self._http: H = self._new_http() if http_client is None else http_client

    def _new_http(self) -> H:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._core.options.base_url

    @property
    def timeout(self) -> httpx2.Timeout:
        """The timeouts of every request but the stream's."""
        return self._core.options.timeout

    @property
    def retry(self) -> RetryPolicy:
        """When 429 and 503 answers are retried."""
        return self._core.options.retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"  # never the key
