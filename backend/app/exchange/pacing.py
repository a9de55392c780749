"""Admitting calls to one exchange: none while it bans this IP, and no more than the budget it says is left.

Invariants:
- Ban (``ban``): the gate closes for the whole exchange until the ban ends (its ``retry_after_s``, else
  ``default_ban_s``), logged once as an error (``exchange_banned``). Every call then waits for the end when it is at
  most ``max_ban_wait_s`` away (``exchange_ban_wait``), else fails at once with ``Banned`` without calling the
  exchange. A longer ban only ever extends the closed period, never shortens it.
- Pacing (``observe`` after each response, ``enter`` before each call), from the exchange's ``BudgetHeader``: per
  budget (per kind of call for Upbit's groups, one for every call for Binance) the gate keeps what is left of the
  exchange's current window = the last reported remainder, minus ``call_cost`` for every other call in flight
  (the exchange may not have counted them yet) and for every call started since, and never more than an earlier
  report of the same window. A call starts only while ``left >= call_cost + reserve``; otherwise it waits for the
  window's end (``exchange_paced``). After the window the budget is unknown until the next response (the
  collector's concurrency applies). So the calls in flight shrink with the budget: with R reported, at most
  ``(R - reserve) / call_cost`` start before the window ends, none once it is spent.
- Windows end ``window_s`` after the response that opened them, or, ``aligned``, at the next whole multiple of
  ``window_s`` on the clock plus ``ALIGNED_MARGIN_S`` (clock skew).
- Time only through the ``clock_s`` and ``sleep`` seams, and a wait is over when its sleep returns (the window or
  ban it waited for is dropped whatever the clock says), so a fake clock cannot make it loop.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from app.exchange.errors import Banned
from app.exchange.quirks import BudgetHeader
from app.exchange.retry import Sleep

log = structlog.get_logger(__name__)

ALIGNED_MARGIN_S = 1.0


def read_budget(spec: BudgetHeader, headers: Mapping[str, str] | None) -> float | None:
    """The budget left that ``headers`` report per ``spec``, ``None`` when absent or unreadable."""
    raw = next((str(v) for k, v in (headers or {}).items() if k.lower() == spec.name), None)
    if raw is None:
        return None
    if spec.field:
        fields = dict(part.strip().partition("=")[::2] for part in raw.split(";"))
        raw = fields.get(spec.field)
        if raw is None:
            return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value if spec.limit is None else spec.limit - value


@dataclass(slots=True)
class _Window:
    left: float
    ends_at_s: float


class CallGate:
    """The ban and the reported budget of one exchange, applied to every call (see the module invariants)."""

    def __init__(
        self,
        exchange_id: str,
        *,
        budget: BudgetHeader | None,
        max_ban_wait_s: float,
        default_ban_s: float,
        clock_s: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self.exchange_id = exchange_id
        self.budget = budget
        self.max_ban_wait_s = max_ban_wait_s
        self.default_ban_s = default_ban_s
        self._clock_s, self._sleep = clock_s, sleep
        self._banned_until_s = -math.inf
        self._windows: dict[str, _Window] = {}
        self._in_flight: Counter[str] = Counter()

    @property
    def banned_for_s(self) -> float:
        """Seconds the current ban still runs (0 when none)."""
        return max(0.0, self._banned_until_s - self._clock_s())

    def ban(self, error: Banned) -> None:
        """Close the gate until the ban ``error`` reports ends (logged loudly when it starts or grows)."""
        duration_s = error.retry_after_s if error.retry_after_s is not None else self.default_ban_s
        until_s = self._clock_s() + duration_s
        if until_s <= self._banned_until_s:
            return
        self._banned_until_s = until_s
        log.error(
            "exchange_banned",
            exchange=self.exchange_id,
            ban_s=round(duration_s, 3),
            stated=error.retry_after_s is not None,
            max_wait_s=self.max_ban_wait_s,
            waits_it_out=duration_s <= self.max_ban_wait_s,
            error=str(error),
        )

    async def enter(self, call: str) -> None:
        """Wait until ``call`` may go to the exchange (raises ``Banned`` for a ban longer than we wait), then count
        it in flight; every ``enter`` is paired with a ``leave``."""
        await self._wait_for_ban_end()
        key = self._key(call)
        await self._wait_for_budget(key)
        self._in_flight[key] += 1
        window = self._windows.get(key)
        if window is not None and self.budget is not None:
            window.left -= self.budget.call_cost

    def leave(self, call: str) -> None:
        """``call`` is no longer in flight."""
        self._in_flight[self._key(call)] -= 1

    def observe(self, call: str, headers: Mapping[str, str] | None) -> None:
        """Take the budget a response to ``call`` reports (no-op without a ``BudgetHeader`` or the header)."""
        if self.budget is None:
            return
        reported = read_budget(self.budget, headers)
        if reported is None:
            return
        key, now_s = self._key(call), self._clock_s()
        left = reported - max(self._in_flight[key] - 1, 0) * self.budget.call_cost
        window = self._windows.get(key)
        if window is not None and now_s < window.ends_at_s:
            window.left = min(window.left, left)
        else:
            self._windows[key] = _Window(left, self._window_end_s(now_s))

    def _key(self, call: str) -> str:
        return call if self.budget is not None and self.budget.per_call else ""

    def _window_end_s(self, now_s: float) -> float:
        assert self.budget is not None
        if not self.budget.aligned:
            return now_s + self.budget.window_s
        return (math.floor(now_s / self.budget.window_s) + 1) * self.budget.window_s + ALIGNED_MARGIN_S

    async def _wait_for_ban_end(self) -> None:
        while True:
            until_s = self._banned_until_s
            wait_s = until_s - self._clock_s()
            if wait_s <= 0:
                return
            if wait_s > self.max_ban_wait_s:
                raise Banned(
                    f"{self.exchange_id} has banned this IP for another {wait_s:.0f} s, longer than the "
                    f"{self.max_ban_wait_s:g} s we wait: not calling it until then",
                    retry_after_s=wait_s,
                )
            log.warning("exchange_ban_wait", exchange=self.exchange_id, wait_s=round(wait_s, 3))
            await self._sleep(wait_s)
            if self._banned_until_s == until_s:  # not extended meanwhile: over
                self._banned_until_s = -math.inf
                return

    async def _wait_for_budget(self, key: str) -> None:
        assert self.budget is not None or not self._windows
        while (window := self._windows.get(key)) is not None:
            assert self.budget is not None
            wait_s = window.ends_at_s - self._clock_s()
            if wait_s <= 0 or window.left >= self.budget.call_cost + self.budget.reserve:
                if wait_s <= 0:
                    del self._windows[key]
                return
            log.info(
                "exchange_paced",
                exchange=self.exchange_id,
                budget=key or "all",
                left=window.left,
                wait_s=round(wait_s, 3),
            )
            await self._sleep(wait_s)
            if self._windows.get(key) is window:
                del self._windows[key]
