"""The ``dantaro backfill`` command line; the work is in ``app.worker.backfill`` (imported only when run).

Exit status: 0 done, 2 bad input (one readable line), 1 any other failure (the CLI's one-line report).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from app.config import Settings


def _cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker.backfill import BackfillRequest, BadInput, run_backfill, validate

    bases = tuple(b.strip() for b in (args.symbols or "").split(",") if b.strip())
    request = BackfillRequest(exchange=args.exchange.lower(), timeframe=args.timeframe, days=args.days, bases=bases)
    try:
        validate(request)
        asyncio.run(run_backfill(settings, request))
    except BadInput as exc:
        print(f"dantaro backfill: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: Any) -> None:
    """Add ``dantaro backfill`` to the CLI."""
    parser = subparsers.add_parser("backfill", help="fetch past closed candles into the database (resumable)")
    parser.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. upbit or binance")
    parser.add_argument("--timeframe", default="1d", help="candle timeframe, e.g. 1h or 1d (default 1d)")
    parser.add_argument("--days", type=int, default=365, help="how many days back from now (default 365)")
    parser.add_argument("--symbols", help="comma-separated bases, e.g. BTC,ETH (default: the exchange's universe)")
    parser.set_defaults(handler=_cmd_backfill)
