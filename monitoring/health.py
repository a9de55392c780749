#!/usr/bin/env python3
"""Health probe for a Dantaro Central deployment, for cron, systemd timers or Nagios.

    python monitoring/health.py [--base-url http://127.0.0.1:8000] [--timeout-s 3] [--json]
                                [--disk-path /var/lib/dantaro] [--warn-pct 85] [--crit-pct 95]

Checks /health (liveness) and /health/ready (database, Redis, worker heartbeat, data freshness per exchange) and
this machine's CPU, memory and disk with psutil. Prints one status line (Nagios style, with perfdata after "|")
and exits 0 OK, 1 WARNING (degraded: e.g. Redis down while the API serves from the database, or a resource above
--warn-pct), 2 CRITICAL (not live, not ready, or a resource above --crit-pct).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psutil

OK, WARNING, CRITICAL = 0, 1, 2
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}


@dataclass
class Verdict:
    """The worst status seen, with the reasons and performance figures collected on the way."""

    status: int = OK
    reasons: list[str] = field(default_factory=list)
    perf: dict[str, str] = field(default_factory=dict)

    def raise_to(self, status: int, reason: str) -> None:
        """Record a problem; the overall status is the worst one."""
        self.status = max(self.status, status)
        self.reasons.append(reason)


def fetch_json(url: str, *, timeout_s: float) -> tuple[int, Any]:
    """GET a URL; returns (HTTP status, decoded JSON or None). Raises OSError when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def judge_readiness(verdict: Verdict, status: int, body: Any) -> None:
    """Turn a /health/ready answer into status and reasons."""
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    if status != 200:
        reasons = body.get("reasons") if isinstance(body, dict) else None
        verdict.raise_to(CRITICAL, "not ready: " + "; ".join(reasons or [f"HTTP {status}"]))
    redis = checks.get("redis", {})
    if redis.get("configured") and not redis.get("ok"):
        verdict.raise_to(WARNING, "Redis unavailable (serving from memory/database)")
    worker = checks.get("worker", {})
    if "heartbeat_age_s" in worker and worker["heartbeat_age_s"] is not None:
        verdict.perf["worker_heartbeat_age_s"] = f"{worker['heartbeat_age_s']:.0f}s"
    for exchange, info in checks.get("exchanges", {}).items():
        if info.get("age_seconds") is not None:
            verdict.perf[f"{exchange}_age_s"] = f"{info['age_seconds']:.0f}s"
        if info.get("stale") and status == 200:
            verdict.raise_to(WARNING, f"{exchange} data is stale")


def judge_resources(verdict: Verdict, *, disk_path: str, warn_pct: float, crit_pct: float) -> None:
    """CPU, memory and disk usage against the thresholds."""
    figures = {
        "cpu": psutil.cpu_percent(interval=0.2),
        "mem": psutil.virtual_memory().percent,
        "disk": psutil.disk_usage(disk_path).percent,
    }
    for name, pct in figures.items():
        verdict.perf[f"{name}_pct"] = f"{pct:.0f}%"
        if pct >= crit_pct:
            verdict.raise_to(CRITICAL, f"{name} at {pct:.0f}%")
        elif pct >= warn_pct:
            verdict.raise_to(WARNING, f"{name} at {pct:.0f}%")


def probe(args: argparse.Namespace) -> Verdict:
    """Run every check against the deployment at ``args.base_url``."""
    verdict = Verdict()
    base = args.base_url.rstrip("/")
    try:
        live_status, _ = fetch_json(base + "/health", timeout_s=args.timeout_s)
        if live_status != 200:
            verdict.raise_to(CRITICAL, f"/health answered HTTP {live_status}")
        ready_status, ready_body = fetch_json(base + "/health/ready", timeout_s=args.timeout_s)
        judge_readiness(verdict, ready_status, ready_body)
    except OSError as exc:
        verdict.raise_to(CRITICAL, f"cannot reach {base}: {getattr(exc, 'reason', exc)}")
    judge_resources(verdict, disk_path=args.disk_path, warn_pct=args.warn_pct, crit_pct=args.crit_pct)
    return verdict


def main(argv: list[str] | None = None) -> int:
    """Print one status line and return the Nagios exit code."""
    parser = argparse.ArgumentParser(description="Dantaro Central health probe (exit 0 OK, 1 WARNING, 2 CRITICAL)")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout-s", type=float, default=3.0)
    parser.add_argument("--disk-path", default="/")
    parser.add_argument("--warn-pct", type=float, default=85.0)
    parser.add_argument("--crit-pct", type=float, default=95.0)
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the status line")
    args = parser.parse_args(argv)
    verdict = probe(args)
    if args.json:
        print(json.dumps({"status": NAMES[verdict.status], "reasons": verdict.reasons, "figures": verdict.perf}))
    else:
        summary = "; ".join(verdict.reasons) or "live and ready"
        perf = " ".join(f"{name}={value}" for name, value in verdict.perf.items())
        print(f"DANTARO {NAMES[verdict.status]} - {summary} | {perf}")
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
