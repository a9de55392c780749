"""``dantaro check-data --data DIR``: every problem of a replay (or evaluation) folder of candle files, in one report.

Checks what the replay source reads (``app.candle_data``: ``DIR/<timeframe>/`` or ``DIR``, every quote) for the
timeframes of ``--timeframes`` (default ``DANTARO_TIMEFRAMES``): each file's problems (file, row, what is wrong; the
whole file is read, not only up to the first problem), a timeframe without files, a pair missing a timeframe.
Prints the report and exits 0 when there is no problem, 1 when there is any, 2 for a folder that does not exist or an
unknown timeframe. Reads only files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.candle_data import check_folder, format_report
from app.cli.command import Command
from app.config import Settings
from app.domain import timeframe_ms
from app.errors import UsageError


def _timeframes(text: str | None, settings: Settings) -> list[str]:
    chosen = settings.timeframes if text is None else [part.strip() for part in text.split(",") if part.strip()]
    for timeframe in chosen:
        try:
            timeframe_ms(timeframe)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not chosen:
        raise UsageError("--timeframes needs at least one timeframe, e.g. 1h,1d")
    return list(chosen)


def _check_data(args: argparse.Namespace, settings: Settings) -> int:
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise UsageError(f"{data_dir}: no such directory")
    problems, files = check_folder(data_dir, timeframes=_timeframes(args.timeframes, settings))
    print(format_report(problems, files=files, data_dir=data_dir))
    return 1 if problems else 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of BASE_QUOTE-TF.json[.gz] files (or of TF/ folders)")
    parser.add_argument("--timeframes", help="comma-separated timeframes to check (default DANTARO_TIMEFRAMES)")


COMMAND = Command(
    name="check-data",
    summary="list every problem of a folder of candle files (exit 1 if any)",
    run=_check_data,
    arguments=_arguments,
    refuses_production_defaults=False,  # reads only the files it is given
)
