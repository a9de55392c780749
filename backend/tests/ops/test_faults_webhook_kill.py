"""Fault: the worker is SIGKILLed after runs were published and while their webhook delivery is in flight.

Real processes on a SQLite file and a loopback receiver that holds every request unanswered: a worker publishes
runs (each with its ``run.published`` delivery in the same transaction), sends the first delivery, and is killed
while the receiver still holds it. Nothing is lost: every published run has its delivery in the outbox, none
marked delivered; a new worker delivers every one of them, signed, and the delivery caught in flight is sent
again under the same ``Dantaro-Delivery`` id (at least once; the receiver deduplicates by that id).
"""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.candles import copy_replay_pairs
from tests.support.processes import DantaroProcess, dantaro_env, run_dantaro
from tests.support.queries import query
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Received, WebhookReceiver

SETTINGS = {
    "DANTARO_UNIVERSE_SIZE": "3",
    "DANTARO_ANALYSIS_INTERVAL_S": "1",
    "DANTARO_WORKER_METRICS_PORT": "0",
    "DANTARO_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "DANTARO_WEBHOOK_POLL_INTERVAL_S": "0.2",
    "DANTARO_WEBHOOK_TIMEOUT_S": "2",  # a claim's lease: 2 × 2 + 5 = 9 s
    "DANTARO_WEBHOOK_RETRY_BASE_S": "0.5",
}


def _published_runs(url: str) -> set[str]:
    return {str(row[0]) for row in query(url, "SELECT run_id FROM analysis_runs WHERE published_at IS NOT NULL")}


def _deliveries(url: str) -> dict[str, tuple[str, str]]:
    """run_id -> (delivery_id, state) of the run.published deliveries."""
    rows = query(url, "SELECT run_id, delivery_id, state FROM webhook_deliveries WHERE event = 'run.published'")
    by_run: dict[str, tuple[str, str]] = {}
    for run_id, delivery_id, state in rows:
        assert str(run_id) not in by_run, f"two deliveries for run {run_id}"
        by_run[str(run_id)] = (str(delivery_id), str(state))
    return by_run


def _add_webhook(env: dict[str, str], url: str) -> str:
    added = run_dantaro(["webhooks", "add", "--url", url, "--events", "run.published"], env)
    assert added.returncode == 0, added.stderr
    return next(line for line in added.stdout.splitlines() if line.startswith("whsec_"))


def _by_run(requests: list[Received]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for request in requests:
        ids[request.json["data"]["run_id"]].add(request.delivery_id)
    return ids


@pytest.mark.slow
def test_no_event_is_lost_when_the_worker_dies_between_publish_and_delivery(tmp_path: Path) -> None:
    replay = copy_replay_pairs(tmp_path / "replay", ["BTC", "ETH", "SOL"])
    env = dantaro_env(tmp_path, DANTARO_REPLAY_DATA_DIR=str(replay), **SETTINGS)
    url = f"sqlite:///{tmp_path / 'dantaro.sqlite3'}"
    first = DantaroProcess(["worker"], env, log_path=tmp_path / "killed-worker.log")
    second = DantaroProcess(["worker"], env, log_path=tmp_path / "second-worker.log")
    with WebhookReceiver() as receiver:
        try:
            assert run_dantaro(["migrate", "upgrade"], env).returncode == 0
            secret = _add_webhook(env, receiver.url)
            receiver.hold()
            first.start()
            wait_for(receiver.arrived.is_set, timeout_s=90, what="the first delivery to reach the receiver")
            first.kill(signal.SIGKILL)
            (in_flight,) = receiver.requests
            published = _published_runs(url)
            outbox = _deliveries(url)
            assert published and set(outbox) == published  # every published run has its event, nothing else
            assert {state for _, state in outbox.values()} == {"pending"}  # none acknowledged before the kill
            receiver.release()
            second.start()
            wait_for(
                lambda: all(_deliveries(url)[run][1] == "delivered" for run in published),
                timeout_s=90,
                what="the new worker to deliver every run published before the kill",
            )
        finally:
            first.kill()
            second.kill()
        requests = receiver.verified(secret)
    ids = _by_run(requests)
    assert all(ids[run] == {outbox[run][0]} for run in published)  # one id per event, on every attempt
    assert sum(r.delivery_id == in_flight.delivery_id for r in requests) >= 2  # the one in flight, sent again
