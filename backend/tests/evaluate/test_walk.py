"""``dantaro evaluate``: the served configuration from the settings, the stable report keys, one-line bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.config import get_settings
from app.domain import Label
from app.evaluate.level_events import GROUPS
from app.evaluate.scoring import BASELINES
from tests.support.candles import bundled_candles, candle_rows, write_candle_file

PAIRS = ("BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "BNB")
IC_KEYS = {"mean_ic", "nw_t", "share_positive", "periods"}
DIFF_KEYS = {"against", "mean_ic_difference", "nw_t", "periods"}
LABEL_KEYS = {"count", "mean_percentile", "mean_excess_log_return", "share_beating_median"}
TOP_KEYS = {"mean_excess_log_return", "nw_t", "periods"}
HORIZON_KEYS = {
    "candles",
    "nw_lags",
    "score",
    "baselines",
    "factors",
    "best_baseline",
    "score_minus_best_baseline",
    "score_minus_reversal_24h",
    "labels",
    "top_5",
    "top_10",
}
LEVEL_KEYS = {
    "levels",
    "touch_rate",
    "bounce_rate",
    "placebo_levels",
    "placebo_touch_rate",
    "placebo_bounce_rate",
    "bounce_ratio",
}
CONFIG_KEYS = {
    "analysis_timeframe",
    "levels_timeframe",
    "levels_source",
    "lookback_candles",
    "horizons",
    "default_horizon",
    "fit_window_candles",
    "fit_min_cross_sections",
    "refit_interval_s",
    "pinned_horizons",
    "symbols",
    "step_candles",
    "seed",
    "start",
    "end",
    "entry_delay_candles",
    "level_window_candles",
    "bounce_candles",
    "discontinuity_rule",
}
MODEL_KEYS = {"fits", "share_fitted", "share_labels_active", "mean_walk_forward_ic", "last_note"}


@pytest.fixture(scope="module")
def candle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 1h candles (the last 700 of seven pairs), gzip and plain files, no 1d files (levels are resampled)."""
    folder = tmp_path_factory.mktemp("candles")
    for index, base in enumerate(PAIRS):
        suffix = ".json" if index % 2 else ".json.gz"
        write_candle_file(folder / f"{base}_USDT-1h{suffix}", candle_rows(bundled_candles(base, "1h")[-700:]))
    return folder


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings from the environment only, with a fit window short enough for 700 candles."""
    for name in ("DANTARO_HORIZONS", "DANTARO_DEFAULT_HORIZON", "DANTARO_FACTOR_WEIGHTS", "DANTARO_LOOKBACK_CANDLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DANTARO_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("DANTARO_FIT_WINDOW_DAYS", "8")
    monkeypatch.setenv("DANTARO_FIT_MIN_DAYS", "3")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def run(candle_dir: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    assert main(["evaluate", "--data", str(candle_dir), "--step", "40", "--json", str(out), *args]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def check_horizon(block: dict[str, Any]) -> None:
    assert set(block) == HORIZON_KEYS and set(block["baselines"]) == set(BASELINES)
    assert len(block["factors"]) == 15 and all(set(s) == IC_KEYS for s in block["factors"].values())
    assert set(block["score"]) == IC_KEYS and -1 <= block["score"]["mean_ic"] <= 1
    assert block["baselines"]["reversal_24h"]["mean_ic"] == -block["baselines"]["change_24h"]["mean_ic"]
    assert set(block["score_minus_best_baseline"]) == DIFF_KEYS == set(block["score_minus_reversal_24h"])
    assert block["score_minus_best_baseline"]["against"] == block["best_baseline"]
    assert set(block["labels"]) == {str(label) for label in Label}
    assert all(set(s) == LABEL_KEYS for s in block["labels"].values())
    assert sum(s["count"] for s in block["labels"].values()) > 0
    assert set(block["top_5"]) == TOP_KEYS == set(block["top_10"])


def test_the_report_has_the_documented_keys_and_the_settings_configuration(
    candle_dir: Path, tmp_path: Path, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(candle_dir, tmp_path, "--plot", str(tmp_path / "chart.png"))
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert set(report) == {
        "config",
        "periods",
        "first_period",
        "last_period",
        "models",
        "horizons",
        "sensitivity",
        "levels",
        "runtime_s",
    }
    config = report["config"]
    assert set(config) == CONFIG_KEYS
    assert config["horizons"] == {"1h": 1, "4h": 4, "24h": 24} and config["lookback_candles"] == 500
    assert (config["levels_timeframe"], config["levels_source"]) == ("1d", "resampled from 1h")
    assert config["fit_window_candles"] == 8 * 24 and report["periods"] > 5
    assert set(report["models"]) == {"1h", "4h", "24h"} and all(set(m) == MODEL_KEYS for m in report["models"].values())
    for name in ("1h", "4h", "24h"):
        check_horizon(report["horizons"][name])
        check_horizon(report["sensitivity"]["horizons"][name])
    assert set(report["levels"]) == set(GROUPS) and all(set(g) == LEVEL_KEYS for g in report["levels"].values())
    assert report["levels"]["all"]["levels"] > 0 and 0 <= report["levels"]["all"]["touch_rate"] <= 1
    printed = capsys.readouterr().out
    assert "score (served)" in printed and "STRONG_BUY" in printed and "runtime" in printed


def test_settings_choose_the_configuration_and_options_override_it(
    candle_dir: Path, tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("DANTARO_HORIZONS", "2,6")
    environment.setenv("DANTARO_DEFAULT_HORIZON", "6h")
    from_settings = run(candle_dir, tmp_path)["config"]
    assert from_settings["horizons"] == {"2h": 2, "6h": 6} and from_settings["default_horizon"] == "6h"
    overridden = run(candle_dir, tmp_path, "--horizons", "1,3", "--lookback", "200", "--levels-timeframe", "4h")[
        "config"
    ]
    assert overridden["horizons"] == {"1h": 1, "3h": 3} and overridden["default_horizon"] == "1h"
    assert overridden["lookback_candles"] == 200 and overridden["levels_timeframe"] == "4h"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--data", "{missing}"], "no such directory"),
        ("empty", ["--data", "{dir}", "--timeframe", "1h"], "no BASE_QUOTE-1h"),
        ("bad_row", ["--data", "{dir}", "--timeframe", "1h"], "row 1"),
        ("not_json", ["--data", "{dir}", "--timeframe", "1h"], "not a JSON"),
        ("descending", ["--data", "{dir}", "--timeframe", "1h"], "ascend"),
        ("empty", ["--data", "{dir}", "--timeframe", "fortnight"], "unknown timeframe"),
        ("empty", ["--data", "{dir}", "--timeframe", "1h", "--horizons", "0"], "--horizons"),
        ("empty", ["--data", "{dir}", "--lookback", "10"], "--lookback"),
        ("good", ["--data", "{dir}", "--levels-timeframe", "1w"], "cannot be resampled"),
        ("good", ["--data", "{dir}", "--start", "yesterday"], "ISO dates"),
    ],
)
@pytest.mark.usefixtures("environment")
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str | None,
    args: list[str],
    message: str,
) -> None:
    good = [1_665_360_000_000, 1.0, 2.0, 0.5, 1.5, 10.0]
    contents = {
        "bad_row": json.dumps([good, [1, "x", 2, 3, 4, 5]]),
        "not_json": "[[1, 2,",
        "descending": json.dumps([good, [good[0] - 3_600_000, *good[1:]]]),
        "good": json.dumps([good]),
    }
    if setup in contents:
        (tmp_path / "AAA_USDT-1h.json").write_text(contents[setup])
    argv = [a.format(missing=tmp_path / "nope", dir=tmp_path) for a in args]
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("dantaro evaluate:")


def test_an_invalid_analysis_setting_is_one_line(
    candle_dir: Path, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("DANTARO_FACTOR_WEIGHTS", '{"astrology": 1}')
    assert main(["evaluate", "--data", str(candle_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "DANTARO_FACTOR_WEIGHTS" in err and "astrology" in err and "\n" not in err
