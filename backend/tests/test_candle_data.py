"""``app.candle_data``: every kind of damage is one problem line naming the file and the row, a whole folder is checked
in one pass (not stopping at the first problem), and the bundled history has no problem."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.candle_data import MAX_ROW_PROBLEMS, check_folder, format_report, read_file, row_problem
from app.config import BUNDLED_DATA_DIR
from tests.support.candles import bundled_candles, bundled_file, candle_rows, copy_replay_pairs, write_candle_file
from tests.support.damage import DAMAGES

GOOD = [1_665_360_000_000, 1.0, 2.0, 0.5, 1.5, 10.0]


@pytest.mark.parametrize("name", sorted(DAMAGES))
@pytest.mark.parametrize("suffix", [".json.gz", ".json"])
def test_each_damage_is_one_problem_naming_the_file(tmp_path: Path, name: str, suffix: str) -> None:
    path = write_candle_file(tmp_path / "1h" / f"ADA_USDT-1h{suffix}", candle_rows(bundled_candles("ADA", "1h")[:50]))
    expected = DAMAGES[name](path)
    checked = read_file(path, data_dir=tmp_path)
    assert checked.rows == [] and len(checked.problems) == 1
    line = checked.problems[0].line()
    assert line.startswith(f"1h/ADA_USDT-1h{suffix}: ") and expected in line and "\n" not in line


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (GOOD, None),
        ([*GOOD, 7, "extra columns are ignored"], None),
        ([GOOD[0], 1, 2, 1, 1, 0], None),  # integers and a zero volume are fine
        (GOOD[:5], "not a row [open_time_ms, open, high, low, close, volume]: "),
        ({"t": 1}, "not a row"),
        ([GOOD[0], None, 2.0, 0.5, 1.5, 10.0], "open is null, not a number"),
        ([GOOD[0], True, 2.0, 0.5, 1.5, 10.0], "open is the boolean true, not a number"),
        ([GOOD[0], "1.0", 2.0, 0.5, 1.5, 10.0], "open is the string '1.0', not a number"),
        ([GOOD[0], 1.0, 2.0, 0.5, math.nan, 10.0], "close is nan, not a finite number"),
        ([1.5, 1.0, 2.0, 0.5, 1.5, 10.0], "open time 1.5 is not a whole number of milliseconds"),
        ([-1, 1.0, 2.0, 0.5, 1.5, 10.0], "open time -1 is not a whole number"),
        ([GOOD[0], 1.0, 2.0, 0.0, 1.5, 10.0], "low is 0.0, not a positive price"),
        ([GOOD[0], 1.0, 2.0, 0.5, 1.5, -1.0], "volume is -1.0, negative"),
    ],
)
def test_row_rules(row: Any, problem: str | None) -> None:
    found = row_problem(row)
    assert found == problem if problem is None else (found is not None and found.startswith(problem))


def test_every_bad_row_is_reported_up_to_a_bound(tmp_path: Path) -> None:
    rows = candle_rows(bundled_candles("BTC", "1h")[:40])
    for number in range(2, 2 + MAX_ROW_PROBLEMS + 3):
        rows[number][4] = "x"
    checked = read_file(write_candle_file(tmp_path / "BTC_USDT-1h.json", rows))
    lines = [p.line() for p in checked.problems]
    assert lines[:MAX_ROW_PROBLEMS] == [
        f"BTC_USDT-1h.json: row {n}: close is the string 'x', not a number" for n in range(2, 2 + MAX_ROW_PROBLEMS)
    ]
    assert lines[MAX_ROW_PROBLEMS:] == ["BTC_USDT-1h.json: 3 more rows with problems"]
    assert checked.reason().endswith(f"(and {MAX_ROW_PROBLEMS} more: see dantaro check-data)")


def test_a_folder_is_checked_whole(tmp_path: Path) -> None:
    data = copy_replay_pairs(tmp_path / "replay", ["BTC", "ETH", "SOL", "ADA", "XRP"])
    reasons = {
        "1h/ADA_USDT-1h.json.gz": DAMAGES["truncated"](data / "1h" / "ADA_USDT-1h.json.gz"),
        "1h/SOL_USDT-1h.json.gz": DAMAGES["bad_json"](data / "1h" / "SOL_USDT-1h.json.gz"),
        "1d/XRP_USDT-1d.json.gz": DAMAGES["string_value"](data / "1d" / "XRP_USDT-1d.json.gz"),
    }
    (data / "1d" / "ETH_USDT-1d.json.gz").unlink()
    problems, files = check_folder(data, timeframes=["1h", "1d"])
    assert files == 9
    assert sorted(p.file for p in problems) == sorted([*reasons, "1d/ETH_USDT-1d.json.gz"])
    for problem in problems:
        expected = reasons.get(problem.file, "missing: ETH/USDT has 1h candles but no 1d file")
        assert expected in problem.line()
    report = format_report(problems, files=files, data_dir=data).splitlines()
    assert report[0] == f"{data}: 4 problems (9 candle files read)"
    assert report[1:] == [f"  {p.line()}" for p in problems]


def test_a_timeframe_without_files_is_a_problem(tmp_path: Path) -> None:
    shutil.copy(bundled_file("BTC", "1h"), tmp_path / "BTC_USDT-1h.json.gz")
    problems, files = check_folder(tmp_path, timeframes=["1h", "1d"])
    assert files == 1
    assert [p.line() for p in problems] == ["1d/: no BASE_QUOTE-1d.json[.gz] files"]


def test_the_bundled_history_has_no_problem() -> None:
    problems, files = check_folder(BUNDLED_DATA_DIR, timeframes=["1h", "1d"])
    assert problems == [] and files == 66
    assert format_report(problems, files=files, data_dir=BUNDLED_DATA_DIR).endswith("66 candle files, no problems")
