"""``dantaro backfill``: fetch past closed candles into the database; the work is in ``app.worker.backfill``.

Exit status: 0 done, 2 bad input (``UsageError``, one line), 1 any other failure.
"""

from __future__ import annotations

import argparse
import asyncio

from app.cli.command import Command
from app.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. upbit or binance")
    parser.add_argument("--timeframe", default="1d", help="candle timeframe, e.g. 1h or 1d (default 1d)")
    parser.add_argument("--days", type=int, default=365, help="how many days back from now (default 365)")
    parser.add_argument("--symbols", help="comma-separated bases, e.g. BTC,ETH (default: the exchange's universe)")


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker.backfill import BackfillRequest, run_backfill, validate

    bases = tuple(b.strip() for b in (args.symbols or "").split(",") if b.strip())
    request = BackfillRequest(exchange=args.exchange.lower(), timeframe=args.timeframe, days=args.days, bases=bases)
    validate(request)
    asyncio.run(run_backfill(settings, request))
    return 0


COMMAND = Command(
    name="backfill",
    summary="fetch past closed candles into the database (resumable, idempotent)",
    run=_backfill,
    arguments=_arguments,
)
