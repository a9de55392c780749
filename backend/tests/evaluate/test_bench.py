"""``dantaro benchmark analysis``: the universe is built from the real series; bad sizes exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main
from app.evaluate.bench import build_universe
from app.evaluate.candle_files import load_folder
from tests.support.candles import bundled_candles, candle_rows, write_candle_file


def test_benchmark_universe_is_built_from_real_series(tmp_path: Path) -> None:
    for base in ("BTC", "ETH", "SOL"):
        write_candle_file(tmp_path / f"{base}_USDT-1h.json.gz", candle_rows(bundled_candles(base, "1h")[-400:]))
    real = load_folder(tmp_path, timeframe="1h")
    universe = build_universe(real, symbols=10, candles=100)
    assert len(universe) == 10 and all(len(v["1h"]) == 100 for v in universe.values())
    btc0, btc1 = universe["BTC0/USDT"]["1h"], universe["BTC1/USDT"]["1h"]
    assert btc0[-1] == real["BTC/USDT"][-1] and btc1[-1].close == pytest.approx(real["BTC/USDT"][-8].close * 1.01)


def test_benchmark_command_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "analysis", "--symbols", "0"]) == 2
    assert "--symbols" in capsys.readouterr().err
