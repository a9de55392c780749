"""The one implementation of a call, shared by the sync and the async client (no I/O here).

A call is a generator of steps: ``Send`` (a request; the driver sends it and sends back the answer or the
``httpx2.RequestError`` it raised) and ``Sleep`` (a retry's wait). ``client.py`` and ``aio.py`` drive it with a
blocking or an awaiting transport; request building, retries (``retry.RetryPolicy``), the ETag cache and reading
answers happen only here.

Invariants: a GET answered with an ``ETag`` is remembered per URL (at most ``etag_cache_size`` URLs, least
recently used dropped); the next GET of that URL sends ``If-None-Match`` and a ``304`` returns the remembered model
(the same object). Every request carries a timeout. Errors leave as ``errors.DantaroError`` subclasses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from dantaro_client._version import __version__
from dantaro_client.errors import (
    RequestTimeoutError,
    TransportError,
    UnexpectedResponseError,
    api_error,
)
from dantaro_client.retry import RetryPolicy, parse_retry_after

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("dantaro_client")

USER_AGENT = f"dantaro-client/{__version__}"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its successful answer (what an endpoint function returns)."""

    method: str
    path: str
    read: Callable[[httpx2.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    json_body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request`` (``stream``: leave the body unread; an error answer's body is read all the same)."""

    request: httpx2.Request
    stream: bool


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before the next request."""

    seconds: float


Step = Send | Sleep
Reply = httpx2.Response | httpx2.RequestError | None  # what the driver sends back: None after a Sleep
Steps = Generator[Step, Reply, T]


def model_reader(model: type[M]) -> Callable[[httpx2.Response], M]:
    """Read a JSON answer as ``model``."""

    def read(response: httpx2.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            detail = f"{exc.error_count()} problems, first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            raise UnexpectedResponseError(f"{response.request.url.path}: not a {model.__name__} ({detail})") from None

    return read


class EtagCache:
    """The last ETag and model seen per URL, least recently used dropped beyond ``max_entries`` (thread-safe)."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> tuple[str, Any] | None:
        """(etag, model) remembered for ``url``."""
        with self._lock:
            found = self._entries.get(url)
            if found is not None:
                self._entries.move_to_end(url)
            return found

    def put(self, url: str, etag: str | None, value: object) -> None:
        """Remember ``value`` under ``etag`` (None: forget the URL)."""
        with self._lock:
            self._entries.pop(url, None)
            if etag is None or self._max_entries <= 0:
                return
            self._entries[url] = (etag, value)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """httpx2's request errors as ours (``RequestTimeoutError``, ``TransportError``)."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise RequestTimeoutError(f"timed out: {type(exc).__name__}: {exc}") from exc
    except httpx2.RequestError as exc:
        raise TransportError(f"no answer: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Options:
    """What every request of one client shares."""

    base_url: str
    api_key: str | None
    timeout: httpx2.Timeout
    stream_timeout: httpx2.Timeout
    retry: RetryPolicy
    etag_cache_size: int
    headers: Mapping[str, str] = field(default_factory=dict)


class Core:
    """Builds requests, reads answers, retries and remembers ETags for one client."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.etags = EtagCache(options.etag_cache_size)

    def request(self, call: Call[Any]) -> httpx2.Request:
        """The HTTP request of ``call`` (without ``If-None-Match``)."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **self.options.headers, **call.headers}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        if call.json_body is not None:
            headers["Content-Type"] = "application/json"
        timeout = self.options.stream_timeout if call.stream else self.options.timeout
        return httpx2.Request(
            call.method,
            self.options.base_url.rstrip("/") + call.path,
            params=dict(call.params),
            headers=headers,
            content=call.json_body,
            extensions={"timeout": timeout.as_dict()},
        )

    def steps(self, call: Call[T]) -> Steps[T]:
        """Send ``call``, retrying 429/503 as the policy allows; its model, or the cached one on a 304."""
        request = self.request(call)
        url = str(request.url)
        cached = self.etags.get(url) if _conditional(call) else None
        if cached is not None:
            request.headers["If-None-Match"] = cached[0]
        waited_s, attempt = 0.0, 0
        while True:
            attempt += 1
            response = _answer((yield Send(request, call.stream)))
            if response.status_code == 304 and cached is not None:
                return cached[1]  # type: ignore[no-any-return]
            if response.is_success:
                return self._read(call, url, response)
            delay_s = self._retry_delay_s(response, attempt=attempt, waited_s=waited_s)
            yield Sleep(delay_s)
            waited_s += delay_s

    def _read(self, call: Call[T], url: str, response: httpx2.Response) -> T:
        value = call.read(response)
        if _conditional(call):
            self.etags.put(url, response.headers.get("etag"), value)
        return value

    def _retry_delay_s(self, response: httpx2.Response, *, attempt: int, waited_s: float) -> float:
        """The wait before the next attempt after an error answer; raises the answer's error when there is none."""
        retry_after_s = parse_retry_after(response.headers.get("retry-after"))
        error = api_error(response.status_code, response.headers, response.content, retry_after_s=retry_after_s)
        delay_s = self.options.retry.delay_s(
            status_code=response.status_code, retry_after_s=retry_after_s, attempt=attempt, waited_s=waited_s
        )
        if delay_s is None:
            raise error
        log.info(
            "retrying %s %s in %.1f s after %s %s (attempt %d of at most %d)",
            response.request.method,
            response.request.url.path,
            delay_s,
            response.status_code,
            error.code,
            attempt + 1,
            self.options.retry.max_attempts,
        )
        return delay_s


def _conditional(call: Call[Any]) -> bool:
    return call.method == "GET" and not call.stream


def _answer(reply: Reply) -> httpx2.Response:
    if isinstance(reply, httpx2.RequestError):
        with translated_errors():
            raise reply
    if reply is None:
        raise RuntimeError("the driver sent nothing back for a Send step")
    return reply
