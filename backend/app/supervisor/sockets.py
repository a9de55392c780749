"""The supervisor's listening sockets: one per slot, all bound to the same address with ``SO_REUSEPORT``.

Invariants: the sockets are bound and listening before any API process starts and stay open in the supervisor
until it exits, so a slot whose process is replaced (or gone for a moment) queues its new connections rather than
refusing them; only processes of the same user can join a ``SO_REUSEPORT`` group.
"""

from __future__ import annotations

import socket

from app.errors import UsageError


def bind_slots(host: str, port: int, *, count: int, backlog: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (the kernel spreads new connections over them)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets
