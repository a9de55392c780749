"""The worker's jobs and triggers: cycles timed to candle closes (ccxt) or a fixed interval (replay)."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.interval import IntervalTrigger

from app.config import Settings
from app.worker.job_gate import refit_interval_wall_s
from app.worker.service import cycle_trigger


def test_ccxt_cycles_fire_the_delay_after_each_close_of_the_smallest_timeframe() -> None:
    settings = Settings(_env_file=None, market_source="ccxt", timeframes=["1h", "1d"], collect_delay_s=7)
    trigger = cycle_trigger(settings)
    now = datetime(2024, 5, 1, 10, 30, 0, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, now)
    assert first == datetime(2024, 5, 1, 11, 0, 7, tzinfo=UTC)
    assert trigger.get_next_fire_time(first, first) == datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC)
    fifteen = cycle_trigger(Settings(_env_file=None, market_source="ccxt", timeframes=["15m", "1h", "1d"]))
    assert fifteen.get_next_fire_time(None, now) == datetime(2024, 5, 1, 10, 30, 10, tzinfo=UTC)


def test_replay_cycles_keep_the_fixed_interval() -> None:
    trigger = cycle_trigger(Settings(_env_file=None, analysis_interval_s=42))
    assert isinstance(trigger, IntervalTrigger) and trigger.interval.total_seconds() == 42


def test_refits_run_every_interval_of_live_time_or_of_replayed_time() -> None:
    assert refit_interval_wall_s(Settings(_env_file=None, market_source="ccxt", refit_interval_s=7200)) == 7200
    # The replay moves one hour per analysis interval: a day of replayed time passes in 24 intervals.
    assert refit_interval_wall_s(Settings(_env_file=None, analysis_interval_s=60, refit_interval_s=86400)) == 1440
    assert refit_interval_wall_s(Settings(_env_file=None, analysis_interval_s=60, refit_interval_s=600)) == 60
