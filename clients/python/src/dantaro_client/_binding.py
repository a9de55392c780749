"""One definition per endpoint, bound to either client: how ``client.recommendations(...)`` comes to exist.

An endpoint is a plain function that returns a ``Call`` (``endpoints.py``). ``Endpoint`` wraps it as a descriptor:
read from a ``SyncRunner`` (``DantaroClient``) it is a function returning the model; from an ``AsyncRunner``
(``AsyncDantaroClient``) one returning an awaitable of it. The parameters stay the endpoint function's own
(``ParamSpec``), so both clients are fully typed from the one definition. ``StreamEndpoint`` does the same for the
live stream, returning an ``EventStream`` or an ``AsyncEventStream``.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import httpx2

from dantaro_client._core import Call

if TYPE_CHECKING:
    from typing import Self

    from dantaro_client.aio import AsyncEventStream
    from dantaro_client.client import EventStream

P = ParamSpec("P")
T = TypeVar("T")


class SyncRunner(ABC):
    """Runs calls by blocking (the base of ``DantaroClient``)."""

    @abstractmethod
    def _run(self, call: Call[T]) -> T: ...

    @abstractmethod
    def _stream(self, call: Call[httpx2.Response]) -> EventStream: ...


class AsyncRunner(ABC):
    """Runs calls on the event loop (the base of ``AsyncDantaroClient``)."""

    @abstractmethod
    async def _run(self, call: Call[T]) -> T: ...

    @abstractmethod
    def _stream(self, call: Call[httpx2.Response]) -> AsyncEventStream: ...


class Endpoint(Generic[P, T]):
    """An endpoint function as a method of both clients."""

    def __init__(self, plan: Callable[P, Call[T]]) -> None:
        self.plan = plan

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, client: SyncRunner | AsyncRunner | None, owner: type[Any]) -> Any:
        return self if client is None else _bound(self.plan, client._run)


class StreamEndpoint(Generic[P]):
    """The live stream's endpoint function as a method of both clients."""

    def __init__(self, plan: Callable[P, Call[httpx2.Response]]) -> None:
        self.plan = plan

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type[Any]) -> Callable[P, EventStream]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type[Any]) -> Callable[P, AsyncEventStream]: ...
    def __get__(self, client: SyncRunner | AsyncRunner | None, owner: type[Any]) -> Any:
        return self if client is None else _bound(self.plan, client._stream)


def _bound(plan: Callable[P, Call[Any]], run: Callable[[Call[Any]], Any]) -> Callable[P, Any]:
    """``plan``'s signature and docstring, running the call it returns with ``run``."""

    @functools.wraps(plan)
    def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
        return run(plan(*args, **kwargs))

    return bound
