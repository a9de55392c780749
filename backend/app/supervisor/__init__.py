"""Several API processes on one address (``dantaro api --workers N``): a small supervisor, its sockets and its state.

The supervisor binds one listening socket per slot (``SO_REUSEPORT``: the kernel spreads new connections over the
slots) and keeps them open for its whole life; each slot's process serves the socket it inherited. A replacement
(after a crash, or a graceful reload) serves the same socket, so connections that arrive meanwhile wait in its
queue instead of being refused. Why this and not uvicorn's or gunicorn's process managers: docs/scaling.md.
"""
