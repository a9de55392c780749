"""Every repository in one import: candles, runs, heartbeats, API keys, the track record.

Repositories work inside the caller's session, flush and never commit; the caller owns the unit of work.
"""

from __future__ import annotations

from app.storage.api_keys import ApiKeyRepository, ApiKeyRow
from app.storage.candles import CandleRepository
from app.storage.heartbeats import HeartbeatRepository, HeartbeatRow
from app.storage.runs import RunNotFoundError, RunRepository
from app.storage.track_record import TrackRecordRepository

__all__ = [
    "ApiKeyRepository",
    "ApiKeyRow",
    "CandleRepository",
    "HeartbeatRepository",
    "HeartbeatRow",
    "RunNotFoundError",
    "RunRepository",
    "TrackRecordRepository",
]
