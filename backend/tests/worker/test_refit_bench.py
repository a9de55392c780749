"""``dantaro benchmark refit`` end to end on a small universe: real candles stored, one timed refit, its memory."""

from __future__ import annotations

import pytest

from app.cli.main import main


def test_benchmark_refit_times_one_whole_refit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "refit", "--symbols", "40", "--days", "3"]) == 0
    head, *horizons = capsys.readouterr().out.strip().splitlines()
    # 3 days of fit window + the longest horizon (24 h) + 200 candles of indicator warm-up
    assert head.startswith("refit benchmark: 40 symbols x 296 stored 1h candles (real series), fit window 3 days")
    wall_s = float(head.split("wall ")[1].split(" s")[0])
    before_mb = float(head.split("; ")[1].split(" MiB")[0])
    peak_mb = float(head.split("peak RSS ")[1].split(" MiB")[0])
    assert 0 < wall_s < 60 and 0 < before_mb <= peak_mb < 1024
    assert [line.split(":")[0].strip() for line in horizons] == ["1h", "4h", "24h"]
    assert all(line.split(": ")[1].startswith(("fitted", "prior")) for line in horizons)
