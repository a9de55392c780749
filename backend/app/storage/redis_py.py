"""The worker's Redis: redis-py behind the ``RedisCommands`` calls that ``RedisCache`` makes.

The worker publishes through redis-py, the API reads through ``app.storage.redis_client`` (lean on memory); the
integration tests therefore cross the two clients on every published run. Invariant: every redis-py failure
leaves here as ``app.storage.resp.RedisError`` (``RedisReplyError`` for error replies), like the API's client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.storage.resp import Arg, RedisConnectionError, RedisError, RedisReplyError

T = TypeVar("T")


class RedisPyClient:
    """``RedisCommands`` over a ``redis.Redis`` with short timeouts and immediate retries."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float, retries: int = 1) -> RedisPyClient:
        """A client for the URL with ``timeout_s`` socket timeouts and ``retries`` retries (connects lazily)."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), retries),
            health_check_interval=30,
        )
        return cls(client)

    def execute(self, *args: Arg) -> Any:
        """Run one command and return its reply."""
        return _translated(lambda: self._client.execute_command(*args))  # type: ignore[no-untyped-call]

    def pipeline(self, commands: Sequence[Sequence[Arg]], *, transaction: bool = False) -> list[Any]:
        """Run the commands in one round trip (MULTI/EXEC when ``transaction``)."""

        def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=transaction)
            for args in commands:
                pipe.execute_command(*args)  # type: ignore[no-untyped-call]
            return pipe.execute()

        return _translated(run)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def _translated(call: Callable[[], T]) -> T:
    try:
        return call()
    except redis.ResponseError as exc:
        raise RedisReplyError(str(exc)) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisConnectionError(f"{type(exc).__name__}: {exc}") from exc
    except redis.RedisError as exc:
        raise RedisError(f"{type(exc).__name__}: {exc}") from exc
