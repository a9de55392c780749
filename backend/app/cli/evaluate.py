"""``dantaro evaluate``: walk-forward evaluation of the analysis on a folder of candle files.

Bad input (missing folder, no files, malformed rows, unknown timeframe or horizons, an unwritable output path) is a
``UsageError``: one line, exit 2. numpy/pandas load only when the command runs.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.command import Command
from app.config import Settings
from app.errors import UsageError

if TYPE_CHECKING:
    from app.evaluate.walk import EvaluationConfig


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UsageError(f"--horizons must be comma-separated positive integers, got {text!r}")
    return values


def _date_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise UsageError(f"dates must be ISO dates like 2022-07-15, got {text!r}") from None


def _config(args: argparse.Namespace) -> EvaluationConfig:
    from app.evaluate.candle_files import check_timeframe
    from app.evaluate.walk import EvaluationConfig

    check_timeframe(args.timeframe)
    if args.step is not None and args.step < 1:
        raise UsageError("--step must be at least 1")
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


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from app.evaluate.candle_files import load_folder
    from app.evaluate.walk import evaluate

    config = _config(args)
    report = evaluate(load_folder(Path(args.data), timeframe=args.timeframe), config)
    print(format_report(report))
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        if args.plot:
            from app.evaluate.plot import plot_report

            plot_report(report, Path(args.plot), title=f"{Path(args.data).name} {args.timeframe}")
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}") from None
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of BASE_QUOTE-TF.json[.gz] files")
    parser.add_argument("--timeframe", required=True, help="candle timeframe of the files, e.g. 1h or 1d")
    parser.add_argument("--horizons", default="1,3,7", help="forward horizons in candles (default 1,3,7)")
    parser.add_argument("--step", type=int, help="candles between evaluated periods (default: about 150 periods)")
    parser.add_argument("--lookback", type=int, default=300, help="candles per symbol given to the analysis (300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline (0)")
    parser.add_argument("--start", help="first evaluated date, UTC (ISO, e.g. 2022-07-15)")
    parser.add_argument("--end", help="evaluate periods before this date, UTC")
    parser.add_argument("--json", help="write the JSON report here")
    parser.add_argument("--plot", help="write a PNG chart of the report here")


COMMAND = Command(
    name="evaluate",
    summary="walk-forward evaluation of the analysis on candle files",
    run=_evaluate,
    arguments=_arguments,
    refuses_production_defaults=False,  # reads only the files it is given
)
