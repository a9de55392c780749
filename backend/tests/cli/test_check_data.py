"""``dantaro check-data --data DIR``: one report with every file problem (file, row, what is wrong), exit 1 if any."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.main import main
from app.config import get_settings
from tests.support.candles import copy_replay_pairs
from tests.support.damage import DAMAGES


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("DANTARO_TIMEFRAMES", "DANTARO_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DANTARO_ENV_FILE", "/nonexistent/.env")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_every_damaged_file_is_listed_and_the_exit_status_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bases = ["BTC", "ETH", "SOL", "ADA", "XRP", "DOT", "LTC", "TRX", "LINK"]
    data = copy_replay_pairs(tmp_path / "replay", bases)
    damaged = dict(zip(bases[1:], sorted(DAMAGES), strict=True))  # one kind of damage per pair, BTC intact
    expected = {
        f"1h/{base}_USDT-1h.json.gz": DAMAGES[kind](data / "1h" / f"{base}_USDT-1h.json.gz")
        for base, kind in damaged.items()
    }
    assert main(["check-data", "--data", str(data)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{data}: {len(damaged)} problems (18 candle files read)"
    listed = {line.strip().split(": ", 1)[0]: line for line in lines[1:]}
    assert set(listed) == set(expected)
    for name, reason in expected.items():
        assert reason in listed[name]


def test_a_clean_folder_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy_replay_pairs(tmp_path / "replay", ["BTC", "ETH"])
    assert main(["check-data", "--data", str(data), "--timeframes", "1h"]) == 0
    assert capsys.readouterr().out.strip() == f"{data}: 2 candle files, no problems"
