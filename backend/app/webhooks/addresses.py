"""Where webhooks may POST: ``http``/``https`` URLs whose host resolves only to globally routable addresses.

Invariants:
- Checked twice: when a webhook is added (``check_url``: the URL's form, then every address its host resolves to)
  and on every connection the worker opens (``GuardedResolver``, the delivery connector's resolver, plus
  ``literal_refusal`` for hosts written as IP addresses, which aiohttp does not resolve). A name that resolved to a
  public address when it was added and to a private one later (DNS rebinding) is refused at delivery.
- Refused: any address that is not globally routable by Python's ``ipaddress.is_global`` (the IANA special-purpose
  registries: loopback, RFC 1918 private, link-local, shared/CGNAT, unspecified, reserved, documentation, ...) and
  multicast; an IPv4-mapped IPv6 address is judged as its IPv4 address. A name is refused when any of its
  addresses is. ``allow_private`` (``DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS``) lifts the address rule, never the form.
- ``Lookup`` is the seam to the resolver: ``system_lookup`` (getaddrinfo) in production, a table in tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from app.errors import UsageError

Lookup = Callable[[str, int], Awaitable[list[str]]]
MAX_URL_LENGTH = 2048
NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class RefusedAddressError(OSError):
    """The host resolves to an address webhooks may not reach."""


async def system_lookup(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, without blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str) -> str | None:
    """Why webhooks may not reach ``address`` (e.g. ``loopback``), or None when it is globally routable."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return None if ip.is_global else "not globally routable"


def split_url(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL; ``UsageError`` saying what to fix when it is not one."""
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() for ch in url):
        raise UsageError(f"--url must be an http(s) URL of at most {MAX_URL_LENGTH} characters without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"--url {url!r}: only http:// and https:// URLs can receive webhooks")
    if parts.username is not None or parts.password is not None:
        raise UsageError("--url must not contain user:password@ (the signature authenticates the sender)")
    if not parts.hostname:
        raise UsageError(f"--url {url!r} has no host; write e.g. https://bot.example.com/dantaro")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"--url {url!r} has an invalid port") from None
    return parts.hostname, port


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def literal_refusal(host: str, *, allow_private: bool) -> str | None:
    """Why a host written as an IP address is refused, or None (also for names: the resolver judges those)."""
    try:
        refusal = address_refusal(host)
    except ValueError:
        return None
    return None if allow_private or refusal is None else f"{host} is a {refusal} address"


async def allowed_addresses(host: str, port: int, *, allow_private: bool, lookup: Lookup) -> list[str]:
    """The addresses of ``host``; ``RefusedAddressError`` when one of them is refused or there are none."""
    addresses = await lookup(host, port)
    if not addresses:
        raise RefusedAddressError(f"{host} resolves to no address")
    for address in addresses if not allow_private else ():
        refusal = address_refusal(address)
        if refusal is not None:
            raise RefusedAddressError(f"{host} resolves to {address}, a {refusal} address")
    return addresses


async def check_url(url: str, *, allow_private: bool, lookup: Lookup = system_lookup) -> None:
    """``UsageError`` unless ``url`` is an http(s) URL whose host resolves only to addresses webhooks may reach."""
    host, port = split_url(url)
    refusal = literal_refusal(host, allow_private=allow_private)
    if refusal is None and not _is_literal(host):
        try:
            await allowed_addresses(host, port, allow_private=allow_private, lookup=lookup)
        except RefusedAddressError as exc:
            refusal = str(exc)
        except OSError as exc:
            raise UsageError(f"--url host {host} does not resolve ({exc.strerror or exc}); check the name") from None
    if refusal is not None:
        raise UsageError(
            f"--url refused: {refusal}; webhooks reach public addresses only "
            "(DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS=true allows private ones)"
        )


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: resolves through ``lookup`` and refuses what ``address_refusal`` refuses."""

    def __init__(self, *, allow_private: bool, lookup: Lookup = system_lookup) -> None:
        self.allow_private = allow_private
        self.lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host`` (``RefusedAddressError``, an ``OSError``, otherwise)."""
        addresses = await allowed_addresses(host, port, allow_private=self.allow_private, lookup=self.lookup)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=NUMERIC_FLAGS,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release."""
