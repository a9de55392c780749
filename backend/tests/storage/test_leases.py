"""Slot claims, advisory locks and abandoned runs (``app.storage.leases``) and the gate built on them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import RunStatus, utc_now
from app.storage.db import make_engine, make_session_factory
from app.storage.leases import ABANDONED_ERROR, abandon_running, advisory_key, claim_slot, try_lock
from app.storage.models import AnalysisRunModel, JobClaimModel
from app.storage.runs import RunRepository
from app.worker.job_gate import JobGate, cycle_slot, interval_slot
from tests.support.storage import StorageBackend


def slot_holder(session: Session, *, job: str, slot: int) -> str | None:
    """Who claimed the slot, or None when nobody did."""
    stmt = select(JobClaimModel.holder).where(JobClaimModel.job == job, JobClaimModel.slot == slot)
    return session.execute(stmt).scalar_one_or_none()


def test_advisory_key_is_a_stable_signed_64_bit_hash() -> None:
    key = advisory_key("cycle:binance")
    assert key == advisory_key("cycle:binance") != advisory_key("cycle:upbit")
    assert -(2**63) <= key < 2**63
    assert key == -324419121442884472  # pinned: every worker, on every version, must derive the same key


def test_first_claim_of_a_slot_wins(backend: StorageBackend) -> None:
    with backend.session_factory() as session:
        assert claim_slot(session, job="cycle:binance", slot=7, holder="a:1")
        assert not claim_slot(session, job="cycle:binance", slot=7, holder="b:2")
        assert claim_slot(session, job="cycle:binance", slot=8, holder="b:2")
        assert claim_slot(session, job="retention", slot=7, holder="b:2")
        session.commit()
    with backend.session_factory() as session:
        assert slot_holder(session, job="cycle:binance", slot=7) == "a:1"
        assert slot_holder(session, job="cycle:binance", slot=9) is None


def test_abandon_running_fails_only_running_runs_of_the_exchange(backend: StorageBackend) -> None:
    with backend.session_factory() as session:
        runs = RunRepository(session)
        for run_id, exchange in (("dead", "binance"), ("other", "upbit")):
            runs.start(run_id=run_id, exchange=exchange, started_at=utc_now())
        runs.start(run_id="done", exchange="binance", started_at=utc_now())
        runs.finish(
            run_id="done",
            status=RunStatus.SUCCEEDED,
            finished_at=utc_now(),
            symbols_total=1,
            symbols_ok=1,
            symbols_failed=0,
            error=None,
            errors={},
        )
        assert abandon_running(session, exchange="binance") == ["dead"]
        session.commit()
    with backend.session_factory() as session:
        statuses = {run.run_id: (run.status, run.error) for run in session.query(AnalysisRunModel)}
    assert statuses == {
        "dead": ("failed", ABANDONED_ERROR),
        "other": ("running", None),
        "done": ("succeeded", None),
    }


@pytest.fixture
def postgres_engine(postgres_migrated_url: str) -> Iterator[Engine]:
    """An engine on the shared migrated PostgreSQL database (advisory locks are PostgreSQL's)."""
    engine = make_engine(postgres_migrated_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_advisory_lock_excludes_other_sessions_until_released(postgres_engine: Engine) -> None:
    backend = postgres_engine
    other_engine = make_engine(backend.url.render_as_string(hide_password=False))
    try:
        held = try_lock(backend, job="cycle:binance")
        assert held is not None
        assert try_lock(other_engine, job="cycle:binance") is None
        other_job = try_lock(other_engine, job="cycle:upbit")
        assert other_job is not None
        other_job.release()
        held.release()
        held.release()  # idempotent
        again = try_lock(other_engine, job="cycle:binance")
        assert again is not None
        again.release()
    finally:
        other_engine.dispose()


async def test_gate_runs_a_slot_once_and_releases_the_lock_on_failure(backend: StorageBackend) -> None:
    gates = [JobGate(engine=backend.engine, session_factory=backend.session_factory, holder=f"h:{i}") for i in (1, 2)]
    ran: list[str] = []

    async def work(name: str) -> str:
        ran.append(name)
        return name

    assert await gates[0].run("cycle:binance", slot=1, work=lambda: work("first")) == "first"
    assert await gates[1].run("cycle:binance", slot=1, work=lambda: work("second")) is None

    async def boom() -> str:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError):
        await gates[1].run("cycle:binance", slot=2, work=boom)
    assert await gates[0].run("cycle:binance", slot=3, work=lambda: work("third")) == "third"
    assert await gates[0].run("cycle:binance", slot=None, work=lambda: work("unclaimed")) == "unclaimed"
    assert ran == ["first", "third", "unclaimed"]


@pytest.mark.postgres
async def test_gate_skips_while_another_worker_holds_the_lock(postgres_engine: Engine) -> None:
    other_engine = make_engine(postgres_engine.url.render_as_string(hide_password=False))
    session_factory = make_session_factory(postgres_engine)
    job = f"test:{secrets.token_hex(4)}"
    gate = JobGate(engine=other_engine, session_factory=session_factory, holder="h:2")
    release = asyncio.Event()

    async def long_run() -> str:
        await release.wait()
        return "long"

    holder = JobGate(engine=postgres_engine, session_factory=session_factory, holder="h:1")
    try:
        task = asyncio.create_task(holder.run(job, slot=1, work=long_run))
        await asyncio.sleep(0.3)
        assert await gate.run(job, slot=2, work=long_run) is None  # locked: skipped, not claimed
        with session_factory() as session:
            assert slot_holder(session, job=job, slot=2) is None
        release.set()
        assert await task == "long"
    finally:
        other_engine.dispose()


def test_slots_of_both_schedules() -> None:
    replay = Settings(_env_file=None, analysis_interval_s=60)
    assert cycle_slot(replay, 1_700_000_059.9) == interval_slot(1_700_000_059.9, interval_s=60) == 28_333_334
    ccxt = Settings(_env_file=None, market_source="ccxt", timeframes=["1h", "1d"], collect_delay_s=10)
    close_ms = 1_700_000_000_000 // 3_600_000 * 3_600_000
    assert cycle_slot(ccxt, close_ms / 1000 + 10.2) == close_ms  # fired 10 s after the close: that candle's slot
    assert cycle_slot(ccxt, close_ms / 1000 + 5) == close_ms - 3_600_000  # before the delay: still the previous
