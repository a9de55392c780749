"""The Python client (``clients/python``, ``dantaro_client``) against a running API on both stacks: every endpoint
returns its typed model holding the data published, sync and async agree, conditional requests answer from the
ETag cache on a 304, and API errors arrive as exceptions with the API's code and message. Retries, timeouts and the
live stream: ``test_python_client_retries.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from dantaro_client import (
    NO_RETRY,
    AuthenticationError,
    DantaroClient,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
)

from app.api.ratelimit import WINDOW_S
from app.domain import Snapshot
from tests.support.api import inside_one_rate_window
from tests.support.candles import closed
from tests.support.client_stack import HISTORY_RUNS, ClientStack, Recorder
from tests.support.snapshots import build_snapshot

pytestmark = pytest.mark.slow

THROTTLED_CLIENT = "198.51.100.7"  # documentation address (RFC 5737), sent as X-Forwarded-For: counted on its own


def _ranked(run: Snapshot, horizon: str) -> list[str]:
    return [r.symbol for r in sorted(run.recommendations, key=lambda r: r.scores_by_horizon[horizon].rank)]


def test_the_data_endpoints_return_typed_models_of_the_served_run(client_stack: ClientStack) -> None:
    run = client_stack.current
    with client_stack.client() as client:
        assert client.health().status == "ok"
        ranked = client.recommendations(top_n=5, horizon="4h")
        assert ranked.run_id == run.run_id and ranked.horizon == "4h" and ranked.as_of == run.data_as_of
        assert [item.symbol for item in ranked.recommendations] == _ranked(run, "4h")[:5]
        assert all(item.scores_by_horizon["4h"].rank == i for i, item in enumerate(ranked.recommendations, 1))
        buys = client.recommendations(label="BUY", horizon="24h")
        assert {item.recommendation_strength for item in buys.recommendations} <= {"BUY"}
        levels = client.support_levels("BTC/USDT").support_levels
        assert levels.moderate_support == run.levels["BTC/USDT"].moderate_support and levels.symbol == "BTC/USDT"
        market = client.market_status()
        assert (
            market.market_status.market_trend == run.market.market_trend and market.system_health.run_id == run.run_id
        )
        listed = client.symbols(horizon="1h")
        assert [item.symbol for item in listed.symbols] == _ranked(run, "1h") and listed.horizons == ["1h", "4h", "24h"]
        exchanges = {row.exchange: row for row in client.exchanges().exchanges}
        assert exchanges["binance"].run_id == run.run_id and exchanges["binance"].status == "ready"


def test_bundle_candles_pairlist_and_track_record(client_stack: ClientStack) -> None:
    run = client_stack.publish(build_snapshot(run_id=f"run-fresh-{time.monotonic_ns()}"))  # the pairlist wants fresh
    with client_stack.client() as client:
        pairs = client.pairlist(top_n=3, horizon="4h", quote="usdt")
        assert pairs.pairs == _ranked(run, "4h")[:3] and pairs.quote == "USDT" and pairs.refresh_period >= 60
        bundle = client.bundle(symbols=["BTC", "NOPE"], recommendations_count=2, horizon="1h")
        assert bundle.run_id == run.run_id and bundle.unknown_symbols == ["NOPE"] and bundle.horizon == "1h"
        assert bundle.support_levels is not None and list(bundle.support_levels) == ["BTC/USDT"]
        assert [item.symbol for item in bundle.recommendations or []] == _ranked(run, "1h")[:2]
        candles = client.candles("ETH", timeframe="1d", limit=20)
        expected = closed("ETH", "1d", as_of_ms=int(run.data_as_of.timestamp() * 1000))[-20:]
        assert [(c.open_time_ms, c.close) for c in candles.candles] == [(c.open_time_ms, c.close) for c in expected]
        summary = client.track_record(days=30, horizon="4h")
        assert summary.runs_scored == HISTORY_RUNS and summary.horizon == "4h" and summary.model.levels.judged >= 0
        first = client.track_record_runs(limit=5)
        second = client.track_record_runs(limit=5, before=first.next_before)
        assert first.count == second.count == 5 and first.runs[-1].as_of > second.runs[0].as_of
        calls = client.symbol_track_record("ETH-USDT", days=30)
        assert calls.symbol == "ETH/USDT" and calls.count == len(calls.calls) > 0


async def test_the_async_client_returns_what_the_sync_client_does(client_stack: ClientStack) -> None:
    with client_stack.client() as client:
        expected = [
            client.recommendations(top_n=3),
            client.support_levels("ETH"),
            client.symbol_track_record("BTC", days=7),
        ]
    async with client_stack.async_client() as client:
        got = await asyncio.gather(
            client.recommendations(top_n=3), client.support_levels("ETH"), client.symbol_track_record("BTC", days=7)
        )
    assert [_without_age(model) for model in got] == [_without_age(model) for model in expected]


def _without_age(model: Any) -> dict[str, Any]:
    return {k: v for k, v in model.model_dump().items() if k not in {"age_seconds", "stale", "data_source"}}


def test_a_304_answers_from_the_etag_cache_until_a_new_run(client_stack: ClientStack) -> None:
    recorder = Recorder()
    with recorder.sync_http() as http, client_stack.client(http_client=http) as client:
        first = client.recommendations(top_n=4)
        again = client.recommendations(top_n=4)
        other = client.recommendations(top_n=2)  # another URL: its own entry
        assert again is first and recorder.statuses == [200, 304, 200] and other is not first
        track = client.track_record_runs(limit=3)
        assert client.track_record_runs(limit=3) is track and recorder.statuses[-2:] == [200, 304]
        newer = client_stack.publish(build_snapshot(run_id=f"run-etag-{time.monotonic_ns()}"))
        fresh = client.recommendations(top_n=4)
        assert fresh.run_id == newer.run_id != first.run_id and recorder.statuses[-1] == 200
    with recorder.sync_http() as http, client_stack.client(http_client=http, etag_cache_size=0) as client:
        client.recommendations(top_n=4)
        client.recommendations(top_n=4)
    assert recorder.statuses[-2:] == [200, 200]


async def test_the_async_client_shares_the_etag_behaviour(client_stack: ClientStack) -> None:
    recorder = Recorder()
    async with recorder.async_http() as http:
        async with client_stack.async_client(http_client=http) as client:
            first = await client.symbols()
            assert await client.symbols() is first and recorder.statuses == [200, 304]
        assert not http.is_closed  # borrowed: closing the client leaves it to its owner


def test_api_errors_carry_the_api_s_code_and_message(client_stack: ClientStack) -> None:
    with client_stack.client(retry=NO_RETRY) as client:
        with pytest.raises(NotFoundError) as missing:
            client.support_levels("NOPE/USDT")
        assert missing.value.code == "unknown_symbol" and missing.value.status_code == 404
        assert "NOPE/USDT" in missing.value.message and missing.value.request_id
        with pytest.raises(NotFoundError, match="unknown_exchange"):
            client.market_status(exchange="kraken")
        with pytest.raises(InvalidRequestError) as horizon:
            client.recommendations(horizon="7h")
        assert horizon.value.code == "unknown_horizon" and "1h" in horizon.value.message
        with pytest.raises(InvalidRequestError) as invalid:
            client.pairlist(top_n=0)  # the pairlist's errors are application/problem+json
        assert invalid.value.code == "invalid_request" and "top_n" in invalid.value.message


def test_a_wrong_key_is_an_authentication_error_then_the_failed_key_throttle(client_stack: ClientStack) -> None:
    clock = time.time if client_stack.name == "postgres" else time.monotonic  # Redis counts wall-clock minutes
    inside_one_rate_window(clock=clock)
    headers = {"X-Forwarded-For": THROTTLED_CLIENT}
    with DantaroClient(client_stack.api.base_url, "dk_not-a-key", retry=NO_RETRY, headers=headers) as client:
        for call in (client.recommendations, client.pairlist, client.symbols):  # the pairlist: problem+json
            with pytest.raises(AuthenticationError) as refused:
                call()
            assert refused.value.status_code == 401 and refused.value.code == "unauthorized"
            assert refused.value.message == "invalid or revoked API key"
        with pytest.raises(RateLimitedError) as throttled:
            client.recommendations()
    assert throttled.value.code == "too_many_failed_keys" and throttled.value.status_code == 429
    assert throttled.value.retry_after_s is not None and 1 <= throttled.value.retry_after_s <= WINDOW_S
    with client_stack.client(headers=headers) as client:  # a verified key still works from that address
        assert client.market_status().run_id == client_stack.current.run_id


def test_a_used_up_budget_is_raised_at_once_when_its_wait_would_cross_the_bound(client_stack: ClientStack) -> None:
    key = client_stack.new_key(rate_limit_per_min=3)
    inside_one_rate_window(clock=time.time if client_stack.name == "postgres" else time.monotonic)
    recorder = Recorder()
    bounded = RetryPolicy(max_attempts=3, max_wait_s=0.5)  # Retry-After is whole seconds (>= 1): never waited
    with recorder.sync_http() as http, client_stack.client(api_key=key, http_client=http, retry=bounded) as client:
        for _ in range(3):
            client.exchanges()
        started_s = time.monotonic()
        with pytest.raises(RateLimitedError) as limited:
            client.exchanges()
        waited_s = time.monotonic() - started_s
    error = limited.value
    assert error.code == "rate_limited" and "3 requests per minute" in error.message and error.status_code == 429
    assert error.retry_after_s is not None and 1 <= error.retry_after_s <= WINDOW_S
    assert recorder.statuses == [200, 200, 200, 429] and waited_s < bounded.max_wait_s
