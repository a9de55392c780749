"""``dantaro evaluate`` / ``benchmark``: JSON shape on real candle slices, bad input exits 2, IC hand tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.evaluate.bench import build_universe
from app.evaluate.candle_files import load_folder
from app.evaluate.stats import quintile_spread, spearman_ic, summarise
from tests.support.candles import bundled_candles, candle_rows, write_candle_file

PAIRS = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "BNB")
STATS = {"mean_ic", "t_stat", "share_positive", "quintile_spread"}


@pytest.fixture(scope="module")
def candle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 1h candles (the last 400 of seven pairs), one gzip and one plain file per format."""
    folder = tmp_path_factory.mktemp("candles")
    for index, base in enumerate(PAIRS):
        suffix = ".json" if index % 2 else ".json.gz"
        write_candle_file(folder / f"{base}_USDT-1h{suffix}", candle_rows(bundled_candles(base, "1h")[-400:]))
    return folder


def test_evaluate_writes_the_json_shape(candle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code = main(["evaluate", "--data", str(candle_dir), "--timeframe", "1h", "--horizons", "1,4", "--step", "40",
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == {"horizons", "levels"} and set(report["horizons"]) == {"1", "4"}
    for methods in report["horizons"].values():
        assert set(methods) == {"score", "random", "change_24h", "volume_rank"}
        for stats in methods.values():
            assert set(stats) == STATS
            assert -1.0 <= stats["mean_ic"] <= 1.0 and 0.0 <= stats["share_positive"] <= 1.0
    assert set(report["levels"]) == {"bounce_rate", "random_bounce_rate", "events"}
    assert report["levels"]["events"] > 0 and 0.0 <= report["levels"]["bounce_rate"] <= 1.0
    assert "score" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--data", "{missing}", "--timeframe", "1h"], "no such directory"),
        ("empty", ["--data", "{dir}", "--timeframe", "1h"], "no BASE_QUOTE-1h"),
        ("bad_row", ["--data", "{dir}", "--timeframe", "1h"], "row 1"),
        ("not_json", ["--data", "{dir}", "--timeframe", "1h"], "not a JSON"),
        ("descending", ["--data", "{dir}", "--timeframe", "1h"], "ascend"),
        ("empty", ["--data", "{dir}", "--timeframe", "fortnight"], "unknown timeframe"),
        ("empty", ["--data", "{dir}", "--timeframe", "1h", "--horizons", "0"], "--horizons"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str | None, args: list[str], message: str
) -> None:
    good = [1_665_360_000_000, 1.0, 2.0, 0.5, 1.5, 10.0]
    contents = {
        "bad_row": json.dumps([good, [1, "x", 2, 3, 4, 5]]),
        "not_json": "[[1, 2,",
        "descending": json.dumps([good, [good[0] - 3_600_000, *good[1:]]]),
    }
    if setup in contents:
        (tmp_path / "AAA_USDT-1h.json").write_text(contents[setup])
    argv = [a.format(missing=tmp_path / "nope", dir=tmp_path) for a in args]
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("dantaro evaluate:")


@pytest.mark.parametrize(
    ("scores", "returns", "expected_ic"),
    [
        ([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5], 1.0),
        ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], -1.0),
        ([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], 0.8),  # d^2 = 0+1+1+1+1 -> 1 - 6*4/120
        ([1, 2, 3, 4, 5, math.nan], [2, 1, 4, 3, 5, 9], 0.8),  # NaN pair dropped
        ([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], math.nan),  # constant score
        ([1, 2, 3, 4], [1, 2, 3, 4], math.nan),  # fewer than five symbols
    ],
)
def test_spearman_ic_hand_table(scores: list[float], returns: list[float], expected_ic: float) -> None:
    ic = spearman_ic(np.array(scores, dtype=float), np.array(returns, dtype=float))
    assert (math.isnan(ic) and math.isnan(expected_ic)) or ic == pytest.approx(expected_ic)


@pytest.mark.parametrize(
    ("scores", "returns", "expected"),
    [
        (list(range(10)), [0.0] * 8 + [0.1, 0.3], (0.2 - 0.0)),  # top two mean 0.2, bottom two 0
        (list(range(5)), [0.05, 0, 0, 0, -0.05], -0.1),
    ],
)
def test_quintile_spread_hand_table(scores: list[float], returns: list[float], expected: float) -> None:
    assert quintile_spread(np.array(scores, dtype=float), np.array(returns, dtype=float)) == pytest.approx(expected)


def test_summary_t_stat_and_share() -> None:
    summary = summarise([0.1, 0.3, math.nan, -0.1], [0.01, 0.03, 0.02])
    assert summary["mean_ic"] == pytest.approx(0.1)
    assert summary["t_stat"] == pytest.approx(0.1 / (0.2 / math.sqrt(3)), abs=1e-3)
    assert summary["share_positive"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["quintile_spread"] == pytest.approx(0.02)


def test_benchmark_universe_is_built_from_real_series(candle_dir: Path) -> None:
    real = load_folder(candle_dir, timeframe="1h")
    universe = build_universe(real, symbols=10, candles=100)
    assert len(universe) == 10 and all(len(v["1h"]) == 100 for v in universe.values())
    btc0, btc1 = universe["BTC0/USDT"]["1h"], universe["BTC1/USDT"]["1h"]
    assert btc0[-1] == real["BTC/USDT"][-1] and btc1[-1].close == pytest.approx(real["BTC/USDT"][-8].close * 1.01)


def test_benchmark_command_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "analysis", "--symbols", "0"]) == 2
    assert "--symbols" in capsys.readouterr().err
