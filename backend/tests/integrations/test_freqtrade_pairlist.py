"""freqtrade's own ``RemotePairList`` (PyPI ``freqtrade``, pinned, in its own virtualenv) against a running
``dantaro api`` serving runs of the bundled real candles from SQLite.

freqtrade's exchange is its real binance class, its ccxt pointed at the loopback exchange emulator, so its market
checks (listed, active, stake currency) run on real market data: the emulator leaves one of our analysed bases
unlisted, and freqtrade must drop that pair. What is checked: whitelist and blacklist modes take our pairs in our
order; our ``refresh_period`` raises the bot's; stale data and a wrong token are failed fetches for freqtrade (a
running bot keeps its last list, or empties it when ``keep_pairlist_on_failure`` is off; a starting bot stops).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.domain import Snapshot, utc_now
from tests.support.api import Database, migrated_database
from tests.support.emulator import Emulator
from tests.support.freqtrade_bot import FreqtradeBot, bot_config, freqtrade_python
from tests.support.processes import ApiServer, dantaro_env, log_events
from tests.support.snapshots import SNAPSHOT_AS_OF_MS, build_snapshot
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

UNLISTED = "XRP"  # analysed by us (ranked first in run-1), not listed on the bot's exchange
LISTED = ["BTC", "ETH", "SOL", "ADA", "DOGE", "LTC", "ATOM"]
LATER_AS_OF_MS = SNAPSHOT_AS_OF_MS + 45 * 86_400_000  # another real market state: another ranking
PAIRLIST = "/api/v1/pairlist"
START_TIMEOUT_S = 60  # a loaded 2-core machine can take tens of seconds to start the API process


@dataclass
class Stack:
    """The API on a SQLite database, a key, and the bot's exchange."""

    db: Database
    api: ApiServer
    key: str
    emulator: Emulator

    def pairs(self, query: str = "") -> list[str]:
        """Our pairlist as the API serves it now (every pair, best first)."""
        response = httpx2.get(f"{self.api.base_url}{PAIRLIST}{query}", headers=self.auth, timeout=5)
        assert response.status_code == 200, response.text
        return list(response.json()["pairs"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def serving(self, run: Snapshot) -> None:
        """Publish ``run`` and wait until the API serves it (fresh) or refuses it (stale)."""
        self.db.publish(run)

        def served() -> bool:
            response = httpx2.get(f"{self.api.base_url}{PAIRLIST}", headers=self.auth, timeout=5)
            return response.json().get("run_id") == run.run_id or (
                response.status_code == 503 and run.run_id in response.json()["error"]["message"]
            )

        wait_for(served, timeout_s=5, what=f"the API to serve {run.run_id}")


@pytest.fixture(scope="module")
def freqtrade_ready() -> Path:
    """The freqtrade virtualenv (built on first use, then cached under .cache/)."""
    return freqtrade_python()


@pytest.fixture
def stack(tmp_path: Path, freqtrade_ready: Path) -> Iterator[Stack]:
    emulator = Emulator("binance", LISTED).start()
    with migrated_database(tmp_path) as db:
        _, key = db.create_key(name="freqtrade", rate_limit_per_min=10_000)
        env = dantaro_env(tmp_path, DANTARO_DATABASE_URL=db.url, DANTARO_EXCHANGES="binance")
        api = ApiServer(env, log_path=tmp_path / "api.log")
        try:
            api.start(timeout_s=START_TIMEOUT_S)
            yield Stack(db=db, api=api, key=key, emulator=emulator)
        finally:
            api.kill()
            emulator.stop()


def _remote(
    stack: Stack, *, mode: str = "whitelist", query: str = "", token: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "method": "RemotePairList",
        "mode": mode,
        "pairlist_url": f"{stack.api.base_url}{PAIRLIST}{query}",
        "bearer_token": stack.key if token is None else token,
        "refresh_period": 10,
        **extra,
    }


def _listed(pairs: list[str], markets: list[str]) -> list[str]:
    return [pair for pair in pairs if pair in markets]


def _stale(run_id: str) -> Snapshot:
    return build_snapshot(run_id=run_id, as_of_ms=LATER_AS_OF_MS, generated_at=utc_now() - timedelta(hours=1))


def test_a_running_bot_follows_our_runs_and_keeps_its_list_while_our_data_is_stale(
    stack: Stack, tmp_path: Path
) -> None:
    stack.serving(build_snapshot(run_id="run-1"))
    ours = stack.pairs()
    assert f"{UNLISTED}/USDT" in ours[:4], "the unlisted pair must rank high enough to be dropped by freqtrade"
    keep = bot_config(stack.emulator, pairlists=[_remote(stack, number_assets=4)], whitelist=[])
    drop = bot_config(
        stack.emulator, pairlists=[_remote(stack, number_assets=4, keep_pairlist_on_failure=False)], whitelist=[]
    )
    with (
        FreqtradeBot(keep, log_path=tmp_path / "keep.log") as bot,
        FreqtradeBot(drop, log_path=tmp_path / "drop.log") as other,
    ):
        first = bot.refresh()
        expected = _listed(ours, bot.markets)[:4]
        assert first["whitelist"] == expected and f"{UNLISTED}/USDT" not in expected
        assert any("increased from 10 to minimum allowed: 60" in line for line in first["log"]), first["log"]
        assert other.refresh()["whitelist"] == expected

        stack.serving(_stale("run-2"))
        refused = httpx2.get(f"{stack.api.base_url}{PAIRLIST}", headers=stack.auth, timeout=5)
        assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["error"]["code"] == "data_stale"
        kept = bot.refresh(advance_s=3600)  # past the bot's refresh period: it fetches again
        assert kept["whitelist"] == expected
        assert "Keeping last fetched pairlist" in kept["log"], kept["log"]
        assert other.refresh(advance_s=3600)["whitelist"] == []

        stack.serving(build_snapshot(run_id="run-3", as_of_ms=LATER_AS_OF_MS))
        moved = bot.refresh(advance_s=3600)
    later = _listed(stack.pairs(), bot.markets)[:4]
    assert later != expected, "the later run should rank differently (another market state)"
    assert moved["whitelist"] == later
    statuses = [e["status"] for e in log_events(stack.api.log_text()) if e.get("route") == PAIRLIST and "status" in e]
    assert 503 in statuses and statuses.count(200) >= 4


def test_blacklist_mode_removes_our_best_pairs_from_the_bot_s_own_list(stack: Stack, tmp_path: Path) -> None:
    stack.serving(build_snapshot(run_id="run-1"))
    top = stack.pairs("?top_n=3")
    static = [f"{base}/USDT" for base in LISTED]
    pairlists = [{"method": "StaticPairList"}, _remote(stack, mode="blacklist", query="?top_n=3")]
    with FreqtradeBot(
        bot_config(stack.emulator, pairlists=pairlists, whitelist=static), log_path=tmp_path / "bot.log"
    ) as bot:
        answer = bot.refresh()
    assert answer["whitelist"] == [pair for pair in static if pair not in top]
    assert len(answer["whitelist"]) < len(static), "at least one of our top pairs is listed, so some pair is removed"


def test_a_wrong_token_or_stale_data_stops_a_starting_bot(stack: Stack, tmp_path: Path) -> None:
    stack.serving(build_snapshot(run_id="run-1"))
    wrong = bot_config(
        stack.emulator, pairlists=[_remote(stack, token="dk_wrong_token", number_assets=4)], whitelist=[]
    )
    with FreqtradeBot(wrong, log_path=tmp_path / "wrong.log") as bot:
        refused = bot.refresh()
    assert refused["error"] == "OperationalException" and "not of type JSON" in refused["message"], refused
    stack.serving(_stale("run-2"))
    good = bot_config(stack.emulator, pairlists=[_remote(stack, number_assets=4)], whitelist=[])
    with FreqtradeBot(good, log_path=tmp_path / "stale.log") as bot:
        stale = bot.refresh()
    assert stale["error"] == "OperationalException", stale
    statuses = {e["status"] for e in log_events(stack.api.log_text()) if e.get("route") == PAIRLIST and "status" in e}
    assert {401, 503} <= statuses
