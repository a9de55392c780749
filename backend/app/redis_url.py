"""Redis URLs (``DANTARO_REDIS_URL``) for the API's client (``app.storage.redis_client``), read as redis-py reads them
for the worker; ``Settings`` checks the URL with ``parse_redis_url`` too, so every command refuses a bad one.

Forms: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS: the system's CAs and a host name check,
or ``?ssl_ca_certs=/path/ca.pem``, or ``?ssl_cert_reqs=none`` to skip verification) and
``unix://[[user]:password@]/path/redis.sock``; ``?db=N`` wins over the path's database, as in redis-py. An empty
user name or password is not sent. Invariants: every other query option is refused (the API would ignore what the
worker obeys), and no error message repeats the URL's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379
CERT_REQS = ("none", "optional", "required")
_OPTIONS = {"redis": {"db"}, "rediss": {"db", "ssl_ca_certs", "ssl_cert_reqs"}, "unix": {"db"}}


@dataclass(frozen=True)
class RedisAddress:
    """Where and how to connect, parsed from a Redis URL (the password stays out of the repr)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_reqs: str = "required"

    def handshake(self) -> list[list[str | int]]:
        """The commands a new connection sends before any other."""
        commands: list[list[str | int]] = []
        if self.password:
            user: list[str | int] = [self.username] if self.username else []
            commands.append(["AUTH", *user, self.password])
        if self.db:
            commands.append(["SELECT", self.db])
        return commands

    def where(self) -> str:
        """The address for messages: host and port, or the socket path (never credentials)."""
        return self.unix_path or f"{self.host}:{self.port}"


def parse_redis_url(url: str) -> RedisAddress:
    """The address in a Redis URL; ``ValueError`` says what is wrong without repeating the URL."""
    parts = urlsplit(url)
    if parts.scheme not in _OPTIONS:
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _OPTIONS[parts.scheme])
    if unknown:
        raise ValueError(f"unsupported option(s) in the Redis URL: {', '.join(unknown)}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// Redis URL needs the socket path: unix:///run/redis/redis.sock")
        db = _db(query.get("db", "0"))
        return RedisAddress(unix_path=unquote(parts.path), db=db, username=username, password=password)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the port in the Redis URL is not a number from 1 to 65535") from None
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=_db(query.get("db") or unquote(parts.path).strip("/") or "0"),
        tls=parts.scheme == "rediss",
        ca_file=query.get("ssl_ca_certs") or None,
        cert_reqs=_cert_reqs(query.get("ssl_cert_reqs", "required")),
        username=username,
        password=password,
    )


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError("the Redis database must be a number, as in redis://host:6379/0")
    return int(text)


def _cert_reqs(text: str) -> str:
    if text.lower() not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs in the Redis URL must be one of {', '.join(CERT_REQS)}")
    return text.lower()
