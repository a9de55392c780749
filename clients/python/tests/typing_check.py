"""What a user's type checker sees: each endpoint is one definition, typed on both clients (``_binding``).

Checked by ``mypy --strict`` with the package (``modules`` in the root ``pyproject.toml``), never run: an endpoint
that lost its parameters' or return type on either client fails ``make lint``.
"""

from __future__ import annotations

from typing import assert_type

from dantaro_client import AsyncDantaroClient, AsyncEventStream, DantaroClient, EventStream, StreamEvent
from dantaro_client.models import BundleResponse, PairlistResponse, RecommendationsResponse, SupportLevelsResponse
from dantaro_client.track_models import TrackRecordRunsResponse


def sync_usage(client: DantaroClient) -> None:
    """The blocking client returns models and an iterator of events."""
    assert_type(client.recommendations(top_n=5, label="BUY", horizon="4h"), RecommendationsResponse)
    assert_type(client.support_levels("BTC", exchange="binance"), SupportLevelsResponse)
    assert_type(client.pairlist(quote="USDT"), PairlistResponse)
    assert_type(client.track_record_runs(limit=2, before=None), TrackRecordRunsResponse)
    assert_type(client.bundle(symbols=["BTC"]), BundleResponse)
    with client.stream(last_event_id="binance:r1") as events:
        assert_type(events, EventStream)
        for event in events:
            assert_type(event, StreamEvent)


async def async_usage(client: AsyncDantaroClient) -> None:
    """The asyncio client returns awaitables of the same models and an async iterator of events."""
    assert_type(await client.recommendations(top_n=5), RecommendationsResponse)
    assert_type(await client.support_levels("ETH"), SupportLevelsResponse)
    async with client.stream() as events:
        assert_type(events, AsyncEventStream)
        async for event in events:
            assert_type(event, StreamEvent)
