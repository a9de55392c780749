"""``dantaro benchmark analysis`` and ``dantaro benchmark refit``: time and memory of one full analysis, and of one
refit of the worker (database read, fit, store), over many symbols built from real series."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.command import Command
from app.config import BUNDLED_DATA_DIR, Settings
from app.errors import UsageError


def _analysis(args: argparse.Namespace, settings: Settings) -> int:
    if args.symbols < 1 or args.candles < 60:
        raise UsageError("--symbols must be >= 1 and --candles >= 60")
    from app.evaluate.bench import format_result, run_benchmark

    print(format_result(run_benchmark(Path(args.data), symbols=args.symbols, candles=args.candles)))
    return 0


def _analysis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--candles", type=int, default=1000, help="1h candles per symbol (default 1000)")
    parser.add_argument("--data", default=str(BUNDLED_DATA_DIR), help="folder with a 1h/ subfolder of real series")


def _refit(args: argparse.Namespace, settings: Settings) -> int:
    if args.symbols < 1 or args.days <= 0:
        raise UsageError("--symbols must be >= 1 and --days > 0")
    from app.evaluate.bench import build_universe
    from app.evaluate.candle_files import load_folder
    from app.worker.refit_bench import format_refit, run_refit_benchmark, stored_candles

    candles = stored_candles(settings, window_days=args.days)
    real = load_folder(Path(args.data) / "1h", timeframe="1h")
    universe = {s: c["1h"] for s, c in build_universe(real, symbols=args.symbols, candles=candles).items()}
    print(format_refit(run_refit_benchmark(settings, universe, window_days=args.days)))
    return 0


def _refit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--days", type=float, default=90, help="fit window in days of 1h candles (default 90)")
    parser.add_argument("--data", default=str(BUNDLED_DATA_DIR), help="folder with a 1h/ subfolder of real series")


COMMAND = Command(
    name="benchmark",
    summary="time the analysis and the refit",
    refuses_production_defaults=False,  # reads only the bundled (or given) candle files
    actions=(
        Command(
            name="analysis",
            summary="all three analysis products on --symbols x --candles",
            run=_analysis,
            arguments=_analysis_arguments,
            refuses_production_defaults=False,
        ),
        Command(
            name="refit",
            summary="one worker refit (read, fit, store) on --symbols x --days of 1h candles in a throwaway database",
            run=_refit,
            arguments=_refit_arguments,
            refuses_production_defaults=False,
        ),
    ),
)
