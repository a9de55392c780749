"""The API process's resident footprint: what the lifespan does so memory after a load stays near memory at start.

Invariants:
- ``limit_malloc_arenas(n)``: glibc gives each thread that allocates concurrently its own heap arena (up to 8 per
  core) and keeps freed pages in them; ``mallopt(M_ARENA_MAX, n)`` caps that. Arenas already made stay. No-op on
  another C library.
- ``limit_threads(n)``: at most ``n`` blocking calls (database, Redis) run at once on the event loop's worker
  threads (anyio's default limiter, per loop; Starlette's and FastAPI's ``run_in_threadpool``): a burst of misses
  queues for a thread instead of starting one thread (and one arena) per request. The database pool is never
  wider than this anyway.
- ``trim_heap()``: the heap pages freed while starting (import-time garbage) go back to the OS (``malloc_trim``).
"""

from __future__ import annotations

import ctypes

import anyio.to_thread

M_ARENA_MAX = -8  # glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the process's own symbols: glibc's when linked against it
    except OSError:
        return None


def limit_malloc_arenas(max_arenas: int) -> None:
    """Cap glibc's heap arenas at ``max_arenas`` (nothing on another C library)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_ARENA_MAX, max_arenas)


def limit_threads(max_threads: int) -> None:
    """At most ``max_threads`` worker threads for blocking calls on the running event loop."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = max_threads


def trim_heap() -> None:
    """Give freed heap pages back to the OS: glibc's ``malloc_trim``, nothing on another C library."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
