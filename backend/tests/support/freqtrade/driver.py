"""Drives freqtrade's own pairlist code for the tests: run by the freqtrade virtualenv's Python, never imported.

One JSON command per stdin line, one JSON answer per stdout line (freqtrade's own log goes to stderr):
- ``{"op": "start", "config": {...}}``: freqtrade's ``Exchange`` for the config's exchange (its ccxt pointed at the
  tests' loopback exchange emulator), its markets loaded through freqtrade's ``reload_markets``, and a
  ``PairListManager`` over the config's ``pairlists``. Answer: ``{"markets": [...]}``.
- ``{"op": "refresh", "advance_s": N}``: the bot's clock moves N seconds ahead (``time_machine``, as freqtrade's own
  tests do, so its pairlist caches expire), then ``PairListManager.refresh_pairlist()``, as the bot does each loop.
  Answer: ``{"whitelist": [...], "log": [...]}``, or ``{"error": "OperationalException", "message": ..., "log": [...]}``
  when freqtrade refuses (as a starting bot would stop).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import time_machine
from freqtrade.enums import CandleType, RunMode
from freqtrade.exceptions import OperationalException
from freqtrade.plugins.pairlistmanager import PairListManager
from freqtrade.resolvers import ExchangeResolver


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Bot:
    """The parts of a freqtrade bot that build and refresh its pair whitelist."""

    def __init__(self, config: dict[str, Any]) -> None:
        config = {**config, "runmode": RunMode.DRY_RUN, "candle_type_def": CandleType.SPOT}
        config["exchange"] = {**config["exchange"], "enable_ws": False}  # no websocket thread: market data unused
        self.exchange = ExchangeResolver.load_exchange(config, validate=False)
        self.exchange.reload_markets(True, load_leverage_tiers=False)
        self.pairlists = PairListManager(self.exchange, config)
        self.offset_s = 0.0

    def refresh(self, advance_s: float) -> list[str]:
        self.offset_s += advance_s
        with time_machine.travel(time.time() + self.offset_s, tick=True):
            self.pairlists.refresh_pairlist()
        return list(self.pairlists.whitelist)


def main() -> None:
    collected = _Collect()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    # The root logger: freqtrade loads pairlist modules by path, so their loggers are not under "freqtrade".
    logging.getLogger().addHandler(collected)
    bot: Bot | None = None
    for line in sys.stdin:
        command = json.loads(line)
        collected.messages.clear()
        try:
            if command["op"] == "start":
                bot = Bot(command["config"])
                answer: dict[str, Any] = {"markets": sorted(bot.exchange.markets)}
            else:
                assert bot is not None, "start first"
                answer = {"whitelist": bot.refresh(float(command.get("advance_s", 0)))}
        except OperationalException as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)}
        answer["log"] = list(collected.messages)
        print(json.dumps(answer), flush=True)
    if bot is not None:
        bot.exchange.close()


if __name__ == "__main__":
    main()
