"""The snapshot codec: lossless orjson round trip of every domain field, and never pickle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from app.domain import Label, Level, Snapshot
from app.storage.codec import decode_snapshot, encode_snapshot

MakeSnapshot = Callable[..., Snapshot]


def test_round_trip_is_lossless(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(run_id="run-codec")
    decoded = decode_snapshot(encode_snapshot(snapshot))
    assert decoded == snapshot
    assert isinstance(decoded.recommendations, tuple)
    assert all(type(rec.label) is Label for rec in decoded.recommendations)
    assert decoded.market.top_gainers == snapshot.market.top_gainers
    assert all(type(pair) is tuple for pair in decoded.market.top_gainers)
    level = decoded.levels["ETH/USDT"].levels[0]
    assert type(level) is Level and type(level.sources) is tuple
    assert level.last_touched_at == snapshot.levels["ETH/USDT"].levels[0].last_touched_at
    assert decoded.generated_at.microsecond == snapshot.generated_at.microsecond


def test_non_utc_offsets_and_exact_floats_survive(make_snapshot: MakeSnapshot) -> None:
    seoul = timezone(timedelta(hours=9))
    snapshot = replace(make_snapshot(run_id="run-tz"), generated_at=datetime(2022, 10, 1, 9, 0, 0, 1, tzinfo=seoul))
    decoded = decode_snapshot(encode_snapshot(snapshot))
    assert decoded.generated_at.utcoffset() == timedelta(hours=9)
    assert [rec.volume_24h for rec in decoded.recommendations] == [rec.volume_24h for rec in snapshot.recommendations]
    assert decoded == snapshot


def test_payload_is_plain_versioned_json(make_snapshot: MakeSnapshot) -> None:
    payload = encode_snapshot(make_snapshot(run_id="run-json"))
    document = orjson.loads(payload)
    assert document["v"] == 1
    assert document["snapshot"]["recommendations"][0]["label"] in {label.value for label in Label}
    assert not payload.startswith(b"\x80")  # a pickle protocol header


@pytest.mark.parametrize("payload", [b"[]", b'{"v": 2, "snapshot": {}}', b'{"v": 1, "snapshot": {"run_id": "x"}}'])
def test_foreign_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_snapshot(payload)
