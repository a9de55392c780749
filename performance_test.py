"""Performance test of the API on PostgreSQL + Redis: throughput and latency against two references, memory, start.

Run: ``.venv/bin/python performance_test.py [--rounds 5] [--duration-s 2] [--connections 32]``. It installs
nothing: the load comes from ``wrk`` when it is on the PATH (Debian: ``apt-get install wrk``), else from a slower
Python asyncio generator (the ratios then understate our speed: the generator shares the CPU). It creates its own
PostgreSQL database (``DANTARO_TEST_POSTGRES_URL``, admin URL) and Redis key prefix (``DANTARO_TEST_REDIS_URL``),
migrates, publishes one real analysis run with ``dantaro worker --once`` (replay of the bundled Binance history),
creates an API key, times starts of ``dantaro api`` (production settings), starts one, records each endpoint's
body, then starts two references serving the very same bytes under uvicorn's defaults
(``backend/benchmarks/reference_servers.py``): a bare FastAPI route and a plain ASGI callable. Each endpoint is
loaded on the three servers in interleaved rounds (same machine state; figures are medians). Everything it created
is removed at the end.

Reported per endpoint: bytes, p50/p99 latency (ms), requests/s of each server and our ratio to each reference; the
share of requests the hot path answered; for the API process: resident memory after the load (MB) and spawn-to-ready
time (until ``/health`` is 200), with the bare FastAPI reference's for comparison. Goals (``GOALS``): ratio to bare
FastAPI >= 1.0 on every GET endpoint (stretch: >= 0.5 to the plain ASGI callable), p99 <= 5 ms at 32 connections,
RSS <= 74 MB, ready <= 1.0 s. Exit status 0 either way: the figures are for ``docs/performance.md``. The servers
start from bytecode, as deployed (``deploy.sh`` compiles it): the application's is brought up to date first, and a
virtualenv whose packages have none (installed with ``--no-compile``) is named in a warning.

``--log-level INFO`` runs our API at the production level (``deployment/.env.production``): a JSON request line per
request, appended to a file in the run's directory as journald would take it (the default, WARNING, writes none; the
references never log a request).

``--scaling 1,2,4`` is the machine-level run instead (``benchmarks/scaling.py``): for each count N, ``dantaro api
--workers N`` against N processes of the bare FastAPI reference serving the same bytes; scaling from 1 to N
processes (goal on a 2-core machine: >= 1.7x with 2, ratio to bare unchanged) and resident memory per process and
in total.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from app.supervisor.state import read_state
from benchmarks.environment import (
    DEFAULT_REDIS_URL,
    Environment,
    api_log_path,
    log_summary,
    postgres_database,
    prepare,
    redis_prefix,
    service_env,
)
from benchmarks.load_generators import Endpoint, LoadResult, python_load, wrk_load
from benchmarks.scaling import load_average, machine_run, report_machine, with_server_cpu
from benchmarks.servers import free_port, http_get, spawn

ROOT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GOALS = {"ratio_fastapi": 1.0, "ratio_asgi_stretch": 0.5, "p99_ms": 5.0, "rss_mb": 74.0, "ready_s": 1.0}
REFERENCES = ("fastapi", "asgi")  # backend/benchmarks/reference_servers.py


def reference_command(kind: str, bodies: dict[str, bytes], *, port: int, workdir: Path) -> list[str]:
    """A reference server (``fastapi`` or ``asgi``) answering each endpoint with the bytes our API served."""
    routes = []
    for endpoint in ENDPOINTS:
        path, _, query = endpoint.path.partition("?")
        routes.append([endpoint.method, path, query, bodies[endpoint.name].decode("latin-1")])
    (workdir / "reference_routes.json").write_text(json.dumps(routes))
    module = "benchmarks.reference_servers"
    return [sys.executable, "-m", module, kind, str(workdir / "reference_routes.json"), str(port)]


ENDPOINTS = (
    Endpoint("recommendations", "GET", "/api/v1/recommendations"),
    Endpoint("recommendations?top_n=10", "GET", "/api/v1/recommendations?top_n=10"),
    Endpoint("recommendations?horizon=24h", "GET", "/api/v1/recommendations?horizon=24h"),
    Endpoint("support-levels/BTC", "GET", "/api/v1/support-levels/BTC"),
    Endpoint("market-status", "GET", "/api/v1/market-status"),
    Endpoint("symbols", "GET", "/api/v1/symbols"),
    Endpoint("exchanges", "GET", "/api/v1/exchanges"),
    Endpoint("track-record", "GET", "/api/v1/track-record"),
    Endpoint("track-record/runs", "GET", "/api/v1/track-record/runs"),
    Endpoint("track-record/symbols/BTC", "GET", "/api/v1/track-record/symbols/BTC"),
    Endpoint(
        "bundle",
        "POST",
        "/api/v1/bundle",
        b'{"include_recommendations": true, "recommendations_count": 20, "include_support_levels": true, '
        b'"symbols": ["BTC", "ETH"], "include_market_status": true}',
    ),
)


def ensure_bytecode() -> None:
    """Compile the application's stale bytecode; warn when the packages' is missing (a start would compile them)."""
    compileall.compile_dir(ROOT / "backend" / "app", quiet=1)
    import fastapi  # one package of the virtualenv stands for the rest

    if not Path(importlib.util.cache_from_source(fastapi.__file__)).exists():
        print("warning: the virtualenv's packages have no bytecode: every start compiles them (make venv anew)")


def _load_tool() -> Callable[..., LoadResult]:
    return wrk_load if shutil.which("wrk") else python_load


def _median(loads: list[LoadResult]) -> LoadResult:
    """One figure per measure: the median over the rounds (errors, requests and server CPU summed)."""
    pick = statistics.median
    return LoadResult(
        loads[0].endpoint,
        pick([load.p50_ms for load in loads]),
        pick([load.p99_ms for load in loads]),
        pick([load.requests_per_s for load in loads]),
        sum(load.errors for load in loads),
        requests=sum(load.requests for load in loads),
        server_cpu_s=sum(load.server_cpu_s for load in loads),
    )


def _cpu_us(result: LoadResult) -> float:
    """Server CPU microseconds per request over the measured rounds."""
    return result.server_cpu_s / result.requests * 1e6 if result.requests else 0.0


SERVERS = ("ours", *REFERENCES)


def measure(
    ports: dict[str, int], *, pids: dict[str, int], secret: str, args: argparse.Namespace
) -> dict[str, list[LoadResult]]:
    """Load each endpoint on the three servers in turn, ``args.rounds`` times (interleaved: a burst of other work on
    the machine hits all three alike), after a 1-s warm-up of each; every figure is the median of the rounds, and
    each server's CPU per request is counted over all of them."""
    headers = {"Authorization": f"Bearer {secret}"}
    load = _load_tool()
    results: dict[str, list[LoadResult]] = {server: [] for server in SERVERS}
    for endpoint in ENDPOINTS:
        options = {"headers": headers, "connections": args.connections}
        for server in SERVERS:
            load(endpoint, port=ports[server], duration_s=1.0, **options)
        rounds: dict[str, list[LoadResult]] = {server: [] for server in SERVERS}
        for _ in range(args.rounds):
            for server in SERVERS:
                measured = with_server_cpu(
                    load, endpoint, pid=pids[server], port=ports[server], duration_s=args.duration_s, **options
                )
                rounds[server].append(measured)
        for server in SERVERS:
            result = _median(rounds[server])
            result.body_bytes = len(http_get(endpoint, port=ports[server], headers=headers))
            results[server].append(result)
    return results


def _ratio(mine: LoadResult, reference: LoadResult) -> float:
    return mine.requests_per_s / reference.requests_per_s if reference.requests_per_s else 0.0


def _cpu_ratio(mine: LoadResult, reference: LoadResult) -> float:
    """The reference's CPU per request over ours (above 1: ours does less work per request)."""
    return _cpu_us(reference) / _cpu_us(mine) if _cpu_us(mine) else 0.0


def report(results: dict[str, list[LoadResult]], *, figures: dict[str, float], tool: str) -> None:
    """Print the results as a Markdown table plus the process figures, each against its goal."""
    print(f"\nload: {tool}, one uvicorn process per server, goals: {json.dumps(GOALS)}\n")
    columns = ["bytes", "p50 ms", "p99 ms", "req/s", "FastAPI req/s", "FastAPI p99", "ASGI req/s", "ASGI p99"]
    columns += ["×FastAPI", "×ASGI", "CPU µs/req", "FastAPI µs", "ASGI µs", "CPU ×FastAPI"]
    print("| endpoint | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for mine, bare, plain in zip(*(results[server] for server in SERVERS), strict=True):
        print(
            f"| {mine.endpoint.name} | {mine.body_bytes} | {mine.p50_ms:.2f} | {mine.p99_ms:.2f} | "
            f"{mine.requests_per_s:.0f} | {bare.requests_per_s:.0f} | {bare.p99_ms:.2f} | {plain.requests_per_s:.0f} | "
            f"{plain.p99_ms:.2f} | {_ratio(mine, bare):.2f} | {_ratio(mine, plain):.2f} | {_cpu_us(mine):.1f} | "
            f"{_cpu_us(bare):.1f} | {_cpu_us(plain):.1f} | {_cpu_ratio(mine, bare):.2f} |"
        )
    gets = [index for index, endpoint in enumerate(ENDPOINTS) if endpoint.method == "GET"]
    ours, bare, plain = (results[server] for server in SERVERS)
    verdicts = {
        "lowest ratio to bare FastAPI (GET)": (
            min(_ratio(ours[i], bare[i]) for i in gets),
            ">=",
            GOALS["ratio_fastapi"],
        ),
        "lowest ratio to plain ASGI (GET, stretch)": (
            min(_ratio(ours[i], plain[i]) for i in gets),
            ">=",
            GOALS["ratio_asgi_stretch"],
        ),
        "highest p99 ms (GET)": (max(ours[i].p99_ms for i in gets), "<=", GOALS["p99_ms"]),
        "resident MB after the load": (figures["rss_mb"], "<=", GOALS["rss_mb"]),
        "spawn to ready s (median)": (figures["ready_s"], "<=", GOALS["ready_s"]),
    }
    print()
    for name, (value, sense, goal) in verdicts.items():
        met = value >= goal if sense == ">=" else value <= goal
        print(f"- {name}: {value:.2f} (goal {sense} {goal:g}: {'met' if met else 'MISSED'})")
    cpu_ratio = min(_cpu_ratio(ours[i], bare[i]) for i in gets)
    what = "lowest ratio of bare FastAPI's CPU per request to ours (GET; not a goal: the work per request"
    print(f"- {what}, which other processes' load moves less than req/s): {cpu_ratio:.2f}")
    reference = f"{figures['fastapi_rss_mb']:.1f} MB after the load, ready in {figures['fastapi_ready_s']:.2f} s"
    print(f"- bare FastAPI reference: {reference}")
    print(f"- requests the hot path answered: {figures['hot_share']:.1%}")
    print(f"- non-2xx or failed requests during the load: {sum(result.errors for result in ours):.0f}")


def ready_s(command: list[str], *, env: dict[str, str], runs: int, log_path: Path | None) -> float:
    """The median spawn-to-ready time of ``command`` over ``runs`` starts."""
    times = []
    for _ in range(runs):
        port = free_port()
        with spawn([*command, "--port", str(port)], env=env, port=port, log_path=log_path) as served:
            times.append(served.ready_s)
    return sorted(times)[len(times) // 2]


def hot_share(port: int) -> float:
    """The share of data GETs the hot path answered, from ``/metrics``."""
    text = http_get(Endpoint("metrics", "GET", "/metrics"), port=port, headers={}).decode()
    counts = dict(re.findall(r'^dantaro_api_hot_path_total\{outcome="(\w+)"\} ([\d.e+]+)$', text, re.MULTILINE))
    answered = float(counts.get("answered", 0)) + float(counts.get("answered_at_once", 0))
    passed = float(counts.get("passed", 0))
    return answered / (answered + passed) if answered + passed else 0.0


SCALED = ("recommendations?top_n=10", "market-status")  # a 23 kB and a 2 kB body


def scaling(env: Environment, *, secret: str, bodies: dict[str, bytes], args: argparse.Namespace) -> None:
    """The machine-level run (``--scaling``): ours and the bare FastAPI reference at each process count."""

    @contextmanager
    def ours(count: int, port: int) -> Iterator[int]:
        command = [str(BIN / "dantaro"), "api", "--workers", str(count), "--port", str(port)]
        with spawn(command, env=service_env(env), port=port, log_path=api_log_path(env)) as served:
            while count > 1 and not (
                (state := read_state(env.data_dir)) and len(state.ready) == count and all(state.ready)
            ):
                time.sleep(0.05)  # every supervised process says it is ready
            yield served.process.pid

    @contextmanager
    def bare(count: int, port: int) -> Iterator[int]:
        command = [*reference_command("fastapi", bodies, port=port, workdir=env.data_dir), str(count)]
        with spawn(command, env=service_env(env), port=port) as served:
            yield served.process.pid

    before, counts = load_average(), [int(text) for text in args.scaling.split(",")]
    options = {"headers": {"Authorization": f"Bearer {secret}"}, "connections": args.connections}
    results = machine_run(
        starts={"ours": ours, "bare": bare},
        ports=free_port,
        counts=counts,
        endpoints=[endpoint for endpoint in ENDPOINTS if endpoint.name in SCALED],
        load=_load_tool(),
        options={**options, "duration_s": args.duration_s},
        rounds=args.rounds,
    )
    tool = (
        f"{'wrk' if shutil.which('wrk') else 'python asyncio'}, median of {args.rounds} rounds of {args.duration_s:g} s"
    )
    report_machine(results, tool=tool, load_before=before)


def run(args: argparse.Namespace) -> None:
    """The whole benchmark inside one cleanup scope."""
    redis_url = os.environ.get("DANTARO_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_bytecode()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dantaro-perf-")))
        database_url = stack.enter_context(postgres_database())
        prefix = stack.enter_context(redis_prefix(redis_url))
        env = Environment(database_url, redis_url, prefix, data_dir, log_level=args.log_level)
        api_log = api_log_path(env)
        secret = prepare(env)
        api_command = [str(BIN / "dantaro"), "api", "--workers", "1"]
        ports = {server: free_port() for server in SERVERS}
        api = stack.enter_context(
            spawn(
                [*api_command, "--port", str(ports["ours"])], env=service_env(env), port=ports["ours"], log_path=api_log
            )
        )
        bodies = {
            ep.name: http_get(ep, port=ports["ours"], headers={"Authorization": f"Bearer {secret}"}) for ep in ENDPOINTS
        }
        if args.scaling:
            api.process.terminate()
            scaling(env, secret=secret, bodies=bodies, args=args)
            return
        figures = {"ready_s": ready_s(api_command, env=service_env(env), runs=args.ready_runs, log_path=api_log)}
        references = {}
        for kind in REFERENCES:
            command = reference_command(kind, bodies, port=ports[kind], workdir=data_dir)
            references[kind] = stack.enter_context(spawn(command, env=service_env(env), port=ports[kind]))
        pids = {"ours": api.process.pid, **{kind: served.process.pid for kind, served in references.items()}}
        results = measure(ports, pids=pids, secret=secret, args=args)
        figures["rss_mb"] = psutil.Process(api.process.pid).memory_info().rss / 1e6
        figures["fastapi_rss_mb"] = psutil.Process(references["fastapi"].process.pid).memory_info().rss / 1e6
        figures["fastapi_ready_s"] = references["fastapi"].ready_s
        figures["hot_share"] = hot_share(ports["ours"])
        tool = "wrk" if shutil.which("wrk") else "python asyncio"
        if api_log is not None:
            print(f"\nthe API logged at {env.log_level} to a file: {log_summary(api_log)}")
        report(
            results,
            figures=figures,
            tool=f"{tool}, median of {args.rounds} interleaved rounds of {args.duration_s:g} s",
        )


def main() -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration-s", type=float, default=2.0, help="seconds of each load (endpoint, server, round)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved loads per endpoint and server (median)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("WARNING", "INFO"),
        help="the API's log level (INFO: a JSON request line per request, written to a file as journald would take it)",
    )
    parser.add_argument("--ready-runs", type=int, default=3, help="starts of the API timed for spawn-to-ready")
    parser.add_argument(
        "--scaling", metavar="COUNTS", help="the machine-level run for these process counts, e.g. 1,2,4"
    )
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
