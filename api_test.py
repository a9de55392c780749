#!/usr/bin/env python3
"""Black-box check of a running Dantaro Central deployment.

    python api_test.py --base-url http://127.0.0.1:8000 --key KEY [--symbol BTC] [--max-age-s 7200]

Checks each endpoint with the key, the auth failures (no key, wrong key), error shapes and data freshness, prints
one line per check, and exits 0 when all pass, 1 when any fails, 2 when the server cannot be reached.
Standard library only, so it runs on any machine with Python 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[["Client"], str | None]  # returns None when the check passes, else what went wrong


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers and the decoded JSON body (None when not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any


class Client:
    """A tiny HTTP client bound to one deployment and key."""

    def __init__(self, base_url: str, key: str, *, timeout_s: float, symbol: str, max_age_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        self.symbol = symbol
        self.max_age_s = max_age_s

    def get(self, path: str, *, key: str | None = "default") -> Reply:
        """GET ``path`` with the configured key (``key=None`` sends none)."""
        headers = {"Accept": "application/json"}
        token = self.key if key == "default" else key
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Reply(response.status, dict(response.headers), _json(response.read()))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, dict(exc.headers), _json(exc.read()))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _expect(reply: Reply, status: int, *fields: str) -> str | None:
    if reply.status != status:
        return f"status {reply.status}, expected {status}: {str(reply.body)[:200]}"
    missing = [name for name in fields if not isinstance(reply.body, dict) or name not in reply.body]
    return f"missing fields {missing}" if missing else None


def check_health(client: Client) -> str | None:
    """/health answers 200 without a key."""
    return _expect(client.get("/health", key=None), 200, "status")


def check_recommendations(client: Client) -> str | None:
    """Recommendations have the original fields and scores in [0, 1]."""
    reply = client.get("/api/v1/recommendations?top_n=10")
    problem = _expect(reply, 200, "success", "recommendations", "total_analyzed", "data_source", "as_of")
    if problem:
        return problem
    rows = reply.body["recommendations"]
    if not rows:
        return "no recommendations"
    scores = ("total_score", "technical_score", "volume_score", "volatility_score", "risk_score")
    bad = [row["symbol"] for row in rows for name in scores if not 0.0 <= float(row[name]) <= 1.0]
    return f"scores outside [0, 1] for {sorted(set(bad))}" if bad else None


def _horizon_problem(body: Any, horizon: str) -> str | None:
    """What is wrong with a recommendations body asked for at ``horizon`` (None when it follows it)."""
    if body.get("horizon") != horizon or not isinstance(body.get("model"), dict | None):
        return f"horizon={horizon}: body names horizon {body.get('horizon')!r}, model {type(body.get('model'))}"
    rows = body["recommendations"]
    if [row["rank"] for row in rows] != sorted(row["rank"] for row in rows):
        return f"horizon={horizon}: not in rank order"
    for row in rows:
        score = row.get("scores_by_horizon", {}).get(horizon)
        legacy = (row["total_score"], row["rank"], row["recommendation_strength"], row["horizon"])
        if score is None or legacy != (score["score"], score["rank"], score["label"], horizon):
            return f"horizon={horizon}: {row['symbol']} legacy fields {legacy} differ from its {horizon} score"
    return None


def check_horizons(client: Client) -> str | None:
    """Every served horizon answers, with the legacy fields, the order and the model following it."""
    reply = client.get("/api/v1/recommendations?top_n=10")
    problem = _expect(reply, 200, "horizon", "horizons", "model")
    if problem:
        return problem
    for horizon in reply.body["horizons"]:
        chosen = client.get(f"/api/v1/recommendations?top_n=10&horizon={horizon}")
        problem = _expect(chosen, 200, "horizon", "model") or _horizon_problem(chosen.body, horizon)
        if problem:
            return problem
    return None if reply.body["horizon"] in reply.body["horizons"] else "the default horizon is not served"


def check_unserved_horizon(client: Client) -> str | None:
    """A horizon the run does not serve → 422 unknown_horizon."""
    reply = client.get("/api/v1/recommendations?horizon=999999w")
    code = reply.body.get("error", {}).get("code") if isinstance(reply.body, dict) else None
    return None if (reply.status, code) == (422, "unknown_horizon") else f"status {reply.status} {code}, expected 422"


def check_support_levels(client: Client) -> str | None:
    """Support levels for the chosen symbol have the three tiers."""
    reply = client.get(f"/api/v1/support-levels/{client.symbol}")
    problem = _expect(reply, 200, "success", "symbol", "support_levels", "data_source")
    if problem:
        return problem
    tiers = reply.body["support_levels"]
    missing = [
        name for name in ("aggressive_support", "moderate_resistance", "calculation_method") if name not in tiers
    ]
    return f"missing level fields {missing}" if missing else None


def check_market_status(client: Client) -> str | None:
    """Market status has trend, sentiment and score."""
    reply = client.get("/api/v1/market-status")
    problem = _expect(reply, 200, "success", "market_status", "data_source")
    if problem:
        return problem
    missing = [n for n in ("market_trend", "market_sentiment", "overall_score") if n not in reply.body["market_status"]]
    return f"missing market fields {missing}" if missing else None


def check_freshness(client: Client) -> str | None:
    """The served data is younger than --max-age-s."""
    reply = client.get("/api/v1/market-status")
    if reply.status != 200:
        return f"status {reply.status}"
    age_s = float(reply.body.get("age_seconds", float("inf")))
    return None if age_s <= client.max_age_s else f"data is {age_s:.0f} s old (limit {client.max_age_s:.0f} s)"


def check_missing_key(client: Client) -> str | None:
    """No key → 401 with WWW-Authenticate: Bearer and the error shape."""
    reply = client.get("/api/v1/recommendations", key=None)
    if reply.status != 401:
        return f"status {reply.status}, expected 401"
    if "bearer" not in {k.lower(): v for k, v in reply.headers.items()}.get("www-authenticate", "").lower():
        return "no WWW-Authenticate: Bearer header"
    return None if isinstance(reply.body, dict) and "error" in reply.body else "no error object in the body"


def check_wrong_key(client: Client) -> str | None:
    """A wrong key → 401."""
    reply = client.get("/api/v1/recommendations", key="dk_wrong_key_for_api_test")
    return None if reply.status == 401 else f"status {reply.status}, expected 401"


def check_unknown_symbol(client: Client) -> str | None:
    """An unknown symbol → 404 with a message."""
    reply = client.get("/api/v1/support-levels/NOSUCHCOIN")
    return None if reply.status == 404 and isinstance(reply.body, dict) else f"status {reply.status}, expected 404"


def _unit_problems(figures: Any) -> list[str]:
    """Figures of a track-record side outside their ranges (IC in [-1, 1], shares in [0, 1], percentiles 0..100)."""
    bounded = [("mean_ic", -1.0, 1.0), ("positive_ic_share", 0.0, 1.0)]
    problems = [name for name, low, high in bounded if figures[name] is not None and not low <= figures[name] <= high]
    for row in figures["labels"]:
        if row["mean_percentile"] is not None and not 0.0 <= row["mean_percentile"] <= 100.0:
            problems.append(f"{row['label']} mean_percentile")
    levels = figures["levels"]
    if not levels["bounced"] <= levels["touched"] <= levels["judged"]:
        problems.append("levels bounced <= touched <= judged")
    return problems


def check_track_record(client: Client) -> str | None:
    """The track record answers at every served horizon, with sane figures and a run range when runs are scored;
    an unserved horizon is a 422."""
    reply = client.get("/api/v1/track-record?days=30")
    problem = _expect(reply, 200, "runs_scored", "horizon", "horizons", "model", "random_baseline", "as_of")
    if problem:
        return problem
    for horizon in reply.body["horizons"]:
        one = client.get(f"/api/v1/track-record?horizon={horizon}")
        problem = _expect(one, 200, "model", "random_baseline", "runs_scored", "first_run")
        if problem:
            return f"horizon={horizon}: {problem}"
        body = one.body
        if body.get("horizon") != horizon:
            return f"horizon={horizon}: body names {body.get('horizon')!r}"
        bad = _unit_problems(body["model"]) + _unit_problems(body["random_baseline"])
        if bad:
            return f"horizon={horizon}: out of range: {bad}"
        if body["runs_scored"] and (body["first_run"] is None or body["as_of"] is None):
            return f"horizon={horizon}: {body['runs_scored']} runs scored but no run range"
    return check_unserved_track_horizon(client)


def check_unserved_track_horizon(client: Client) -> str | None:
    """An unserved horizon on the track record → 422 unknown_horizon."""
    reply = client.get("/api/v1/track-record?horizon=999999w")
    code = reply.body.get("error", {}).get("code") if isinstance(reply.body, dict) else None
    return None if (reply.status, code) == (422, "unknown_horizon") else f"status {reply.status} {code}, expected 422"


def check_track_record_runs(client: Client) -> str | None:
    """Scored runs come newest first, at most ``limit`` a page, and the next page is older."""
    reply = client.get("/api/v1/track-record/runs?limit=5")
    problem = _expect(reply, 200, "runs", "count", "next_before")
    if problem:
        return problem
    runs = reply.body["runs"]
    times = [row["as_of"] for row in runs]
    if len(runs) > 5 or times != sorted(times, reverse=True):
        return f"{len(runs)} runs, as_of {times}: expected at most 5, newest first"
    cursor = reply.body["next_before"]
    if cursor is None:
        return None
    older = client.get("/api/v1/track-record/runs?" + urllib.parse.urlencode({"limit": 5, "before": cursor}))
    problem = _expect(older, 200, "runs")
    if problem:
        return "next page: " + problem
    next_times = [row["as_of"] for row in older.body["runs"]]
    ids = {row["run_id"] for row in runs} & {row["run_id"] for row in older.body["runs"]}
    return None if not ids and all(t <= times[-1] for t in next_times) else "the next page is not older and disjoint"


def check_symbol_track_record(client: Client) -> str | None:
    """The chosen symbol's past calls come newest first with a label each."""
    reply = client.get(f"/api/v1/track-record/symbols/{client.symbol}")
    problem = _expect(reply, 200, "symbol", "calls", "count")
    if problem:
        return problem
    calls = reply.body["calls"]
    times = [call["as_of"] for call in calls]
    if times != sorted(times, reverse=True) or len(calls) != reply.body["count"]:
        return "calls are not newest first or count differs"
    labels = {"STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"}
    return None if all(call["label"] in labels for call in calls) else "a call without a valid label"


def check_pairlist(client: Client) -> str | None:
    """The freqtrade pairlist: pairs as BASE/QUOTE and refresh_period >= 60, or a stale run refused as problem+json."""
    reply = client.get("/api/v1/pairlist?top_n=5")
    if reply.status == 503 and isinstance(reply.body, dict) and reply.body["error"]["code"] == "data_stale":
        kind = reply.headers.get("Content-Type", reply.headers.get("content-type", ""))
        return None if kind == "application/problem+json" else f"data_stale sent as {kind!r}"
    problem = _expect(reply, 200, "pairs", "refresh_period")
    if problem:
        return problem
    pairs, refresh_s = reply.body["pairs"], reply.body["refresh_period"]
    if not pairs or any(not isinstance(pair, str) or pair.count("/") != 1 for pair in pairs):
        return f"pairs are not ccxt symbols: {pairs}"
    return None if isinstance(refresh_s, int) and refresh_s >= 60 else f"refresh_period {refresh_s!r} below 60"


def check_stream(client: Client) -> str | None:
    """The live stream opens with a ready event naming the exchanges it follows."""
    headers = {"Authorization": f"Bearer {client.key}", "Accept": "text/event-stream"}
    request = urllib.request.Request(client.base_url + "/api/v1/stream", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=client.timeout_s) as response:
            fields: dict[str, str] = {}
            for _ in range(10):  # the ready block is the first few lines
                line = response.readline().decode().rstrip("\n")
                if not line:
                    break
                name, _, value = line.partition(": ")
                fields[name] = value
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}: {exc.read()[:200]!r}"
    if fields.get("event") != "ready":
        return f"the stream did not start with a ready event: {fields}"
    exchanges = _json(fields.get("data", "").encode())
    return None if isinstance(exchanges, dict) and exchanges.get("exchanges") else f"ready without exchanges: {fields}"


CHECKS: list[tuple[str, Check]] = [
    ("health", check_health),
    ("recommendations", check_recommendations),
    ("every horizon", check_horizons),
    ("unserved horizon is 422", check_unserved_horizon),
    ("support levels", check_support_levels),
    ("market status", check_market_status),
    ("freshness", check_freshness),
    ("missing key is refused", check_missing_key),
    ("wrong key is refused", check_wrong_key),
    ("unknown symbol is 404", check_unknown_symbol),
    ("track record", check_track_record),
    ("track record runs", check_track_record_runs),
    ("symbol track record", check_symbol_track_record),
    ("freqtrade pairlist", check_pairlist),
    ("live stream opens", check_stream),
]


def main(argv: list[str] | None = None) -> int:
    """Run every check and print a report; the exit code says whether all passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key (Bearer)")
    parser.add_argument("--symbol", default="BTC")
    parser.add_argument("--max-age-s", type=float, default=7200.0, help="oldest acceptable data age")
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    client = Client(args.base_url, args.key, timeout_s=args.timeout_s, symbol=args.symbol, max_age_s=args.max_age_s)
    failures = 0
    for name, check in CHECKS:
        try:
            problem = check(client)
        except (urllib.error.URLError, OSError) as exc:
            print(f"FAIL  {name}: cannot reach {args.base_url}: {exc}")
            return 2
        failures += problem is not None
        print(f"{'ok  ' if problem is None else 'FAIL'}  {name}{'' if problem is None else ': ' + problem}")
    print(f"{len(CHECKS) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
