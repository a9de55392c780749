"""``dantaro track-record backfill``: score every run already in the database (the worker's ``score:<exchange>``
job does the same continuously); the work is in ``app.worker.track_record``.

Idempotent and resumable: a run already scored is skipped, a run interrupted is scored again on the next call.
Exit status: 0 done, 2 bad input (one line), 1 any other failure.
"""

from __future__ import annotations

import argparse

from app.cli.command import Command
from app.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", help="ccxt exchange id, e.g. binance (default: every configured exchange)")


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker.track_record import backfill_track_record

    exchanges = [args.exchange.strip().lower()] if args.exchange else list(settings.exchanges)
    backfill_track_record(settings, exchanges=exchanges)
    return 0


COMMAND = Command(
    name="track-record",
    summary="score published runs against the candles that followed them",
    actions=(
        Command(
            name="backfill",
            summary="score every past run in the database whose horizons have elapsed (progress bar, idempotent)",
            run=_backfill,
            arguments=_arguments,
        ),
    ),
)
