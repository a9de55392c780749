"""``dantaro evaluate``: walk-forward evaluation of the served analysis configuration on a folder of candle files.

The configuration is the worker's (``analysis_options(settings)`` from the environment); ``--timeframe``,
``--levels-timeframe``, ``--horizons`` and ``--lookback`` override it only where given. Bad input (missing folder,
no files, malformed rows, unknown timeframe or horizons, an invalid setting, an unwritable output path) is a
``UsageError``: one line, exit 2. numpy/pandas load only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.command import Command
from app.config import Settings
from app.errors import UsageError

if TYPE_CHECKING:
    from app.evaluate.walk import EvaluationConfig

MIN_LOOKBACK = 50  # the smallest DANTARO_LOOKBACK_CANDLES accepts


def _horizons(text: str) -> list[str]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UsageError(f"--horizons must be comma-separated positive integers, got {text!r}")
    return [str(v) for v in values]


def _date_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise UsageError(f"dates must be ISO dates like 2022-07-15, got {text!r}") from None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from app.evaluate.candle_files import check_timeframe

    update: dict[str, Any] = {}
    for name, value in (("analysis_timeframe", args.timeframe), ("levels_timeframe", args.levels_timeframe)):
        if value is not None:
            check_timeframe(value)
            update[name] = value
    if args.horizons is not None:
        update["horizons"] = _horizons(args.horizons)
    if args.lookback is not None:
        if args.lookback < MIN_LOOKBACK:
            raise UsageError(f"--lookback must be at least {MIN_LOOKBACK}")
        update["lookback_candles"] = args.lookback
    if "horizons" in update or "analysis_timeframe" in update:
        update["default_horizon"] = ""  # the configured default may not be served any more: the first one is
    return update


def _config(args: argparse.Namespace) -> EvaluationConfig:
    from app.evaluate.walk import EvaluationConfig

    if args.step is not None and args.step < 1:
        raise UsageError("--step must be at least 1")
    return EvaluationConfig(step=args.step, seed=args.seed, start_ms=_date_ms(args.start), end_ms=_date_ms(args.end))


def _write(report: dict[str, Any], args: argparse.Namespace, *, timeframe: str) -> None:
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        if args.plot:
            from app.evaluate.plot import plot_report

            plot_report(report, Path(args.plot), title=f"{Path(args.data).name} {timeframe}")
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}") from None


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from app.evaluate.replay import load_market
    from app.evaluate.table import format_report
    from app.evaluate.walk import evaluate
    from app.worker.analysis_options import analysis_options

    started = time.perf_counter()
    try:  # the worker's options from the settings, with the command's overrides
        options = analysis_options(settings.model_copy(update=_overrides(args)))
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    config = _config(args)
    market = load_market(
        Path(args.data), analysis_timeframe=options.analysis_timeframe, levels_timeframe=options.levels_timeframe
    )
    report: dict[str, Any] = evaluate(market, options, config)
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    print(format_report(report))
    print(f"runtime {report['runtime_s']} s")
    _write(report, args, timeframe=options.analysis_timeframe)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of BASE_QUOTE-TF.json[.gz] files (or of TF/ folders)")
    parser.add_argument("--timeframe", help="analysis timeframe (default DANTARO_ANALYSIS_TIMEFRAME)")
    parser.add_argument("--levels-timeframe", help="levels timeframe (default DANTARO_LEVELS_TIMEFRAME)")
    parser.add_argument(
        "--horizons", help="served horizons in analysis candles, e.g. 1,4,24 (default DANTARO_HORIZONS)"
    )
    parser.add_argument("--lookback", type=int, help="analysis candles per symbol (default DANTARO_LOOKBACK_CANDLES)")
    parser.add_argument("--step", type=int, help="candles between evaluated periods (default: about 200 periods)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline and the placebo (0)")
    parser.add_argument("--start", help="first evaluated date, UTC (ISO, e.g. 2022-07-15)")
    parser.add_argument("--end", help="evaluate periods before this date, UTC")
    parser.add_argument("--json", help="write the JSON report here")
    parser.add_argument("--plot", help="write a PNG chart of the report here")


COMMAND = Command(
    name="evaluate",
    summary="walk-forward evaluation of the served analysis configuration on candle files",
    run=_evaluate,
    arguments=_arguments,
    refuses_production_defaults=False,  # reads only the files it is given and the analysis settings
)
