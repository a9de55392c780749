"""The ``evaluate`` and ``benchmark`` subcommands of ``dantaro`` (registered by ``app.cli.build_parser``).

Errors a user can fix (missing folder, no files, malformed rows, unknown timeframe or horizons) print one line on
stderr and return exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import BUNDLED_DATA_DIR, Settings
from app.evaluate.candle_files import DataError, check_timeframe, load_folder

if TYPE_CHECKING:
    from app.evaluate.walk import EvaluationConfig


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise DataError(f"--horizons must be comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise DataError(f"--horizons must be comma-separated positive integers, got {text!r}")
    return values


def _date_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise DataError(f"dates must be ISO dates like 2022-07-15, got {text!r}") from None


def _config(args: argparse.Namespace) -> EvaluationConfig:
    from app.evaluate.walk import EvaluationConfig

    check_timeframe(args.timeframe)
    if args.step is not None and args.step < 1:
        raise DataError("--step must be at least 1")
    return EvaluationConfig(
        timeframe=args.timeframe,
        horizons=_horizons(args.horizons),
        step=args.step,
        lookback=args.lookback,
        seed=args.seed,
        start_ms=_date_ms(args.start),
        end_ms=_date_ms(args.end),
    )


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    from app.evaluate.walk import METHODS

    lines = [f"{'horizon':>7}  {'method':<12}{'mean_ic':>9}{'t_stat':>8}{'share>0':>9}{'q5-q1':>10}"]
    for horizon, methods in report["horizons"].items():
        for method in METHODS:
            row = methods[method]
            cells = [row[k] for k in ("mean_ic", "t_stat", "share_positive", "quintile_spread")]
            text = "".join(
                f"{'n/a' if v is None else format(v, '.4f'):>{w}}" for v, w in zip(cells, (9, 8, 9, 10), strict=True)
            )
            lines.append(f"{horizon:>7}  {method:<12}{text}")
    lv = report["levels"]
    lines.append(
        f"levels: bounce_rate {lv['bounce_rate']} vs random {lv['random_bounce_rate']} ({lv['events']} events)"
    )
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Walk forward through a folder of candle files and report the score against baselines."""
    from app.evaluate.walk import evaluate

    try:
        config = _config(args)
        report = evaluate(load_folder(Path(args.data), timeframe=args.timeframe), config)
    except (DataError, OSError) as exc:
        print(f"dantaro evaluate: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        from app.evaluate.plot import plot_report

        plot_report(report, Path(args.plot), title=f"{Path(args.data).name} {args.timeframe}")
    return 0


def cmd_benchmark(args: argparse.Namespace, settings: Settings) -> int:
    """Time all three analysis products on many symbols built from the real series."""
    if args.symbols < 1 or args.candles < 60:
        print("dantaro benchmark: --symbols must be >= 1 and --candles >= 60", file=sys.stderr)
        return 2
    from app.evaluate.bench import format_result, run_benchmark

    try:
        result = run_benchmark(Path(args.data), symbols=args.symbols, candles=args.candles)
    except DataError as exc:
        print(f"dantaro benchmark: {exc}", file=sys.stderr)
        return 2
    print(format_result(result))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` and ``benchmark`` subcommands to ``dantaro``'s subparsers."""
    ev = subparsers.add_parser("evaluate", help="walk-forward evaluation of the analysis on candle files")
    ev.add_argument("--data", required=True, help="folder of BASE_QUOTE-TF.json[.gz] files")
    ev.add_argument("--timeframe", required=True, help="candle timeframe of the files, e.g. 1h or 1d")
    ev.add_argument("--horizons", default="1,3,7", help="forward horizons in candles (default 1,3,7)")
    ev.add_argument("--step", type=int, help="candles between evaluated periods (default: about 150 periods)")
    ev.add_argument("--lookback", type=int, default=300, help="candles per symbol given to the analysis (300)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random baseline (0)")
    ev.add_argument("--start", help="first evaluated date, UTC (ISO, e.g. 2022-07-15)")
    ev.add_argument("--end", help="evaluate periods before this date, UTC")
    ev.add_argument("--json", help="write the JSON report here")
    ev.add_argument("--plot", help="write a PNG chart of the report here")
    ev.set_defaults(handler=cmd_evaluate)
    bench = subparsers.add_parser("benchmark", help="time the analysis")
    bench.add_argument("target", choices=["analysis"], help="what to benchmark")
    bench.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    bench.add_argument("--candles", type=int, default=1000, help="1h candles per symbol (default 1000)")
    bench.add_argument("--data", default=str(BUNDLED_DATA_DIR), help="folder with a 1h/ subfolder of real series")
    bench.set_defaults(handler=cmd_benchmark)
