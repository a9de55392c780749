"""The machine-level run of ``performance_test.py --scaling 1,2,4``: N processes of ours against N processes of the
bare FastAPI reference, both serving the same bytes, for each N.

Ours is ``dantaro api --workers N`` (N = 1: one unsupervised process, as before), the reference N forked uvicorn
servers on ``SO_REUSEPORT`` sockets of one port (``reference_servers``). Each endpoint is loaded on both in
interleaved rounds (figures are medians). Reported per N: requests/s of each, our ratio to the reference, the
scaling factor from one process, resident memory per serving process and in total (the supervisor or the forking
parent included), and the load average before and after (other work on the machine skews everything). Because
throughput on a shared machine says little about scaling, each load's CPU time is counted too: the server
processes' (psutil, the whole process tree) and the load generator's (wrk: this process's waited-for children; the
Python generator: this process). Requests per server CPU-second that stay flat from 1 to N mean the processes add
no overhead; the N-process throughput a machine can reach is then its free cores divided by the CPU a request
costs the server and the load generator together.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import psutil

from benchmarks.load_generators import Endpoint, LoadResult

Start = Callable[[int, int], AbstractContextManager[int]]  # (processes, port) -> the top process's pid, all ready
Load = Callable[..., LoadResult]
SIDES = ("ours", "bare")


@dataclass
class Side:
    """One server at one process count: requests/s per endpoint, failed requests, memory."""

    rates: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    per_process_mb: list[float] = field(default_factory=list)
    total_mb: float = 0.0
    requests: int = 0  # over every measured round
    server_cpu_s: float = 0.0
    loader_cpu_s: float = 0.0


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every process under it so far."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def loader_cpu_s() -> float:
    """CPU seconds the load generator has used so far: wrk runs as a child, the Python generator in this process."""
    who = resource.RUSAGE_CHILDREN if shutil.which("wrk") else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def with_server_cpu(load: Load, endpoint: Endpoint, *, pid: int, **options: Any) -> LoadResult:
    """One load, with the CPU the server (``pid`` and its process tree) spent meanwhile in ``server_cpu_s``."""
    before_s = tree_cpu_s(pid)
    result = load(endpoint, **options)
    result.server_cpu_s = tree_cpu_s(pid) - before_s
    return result


def _measured(
    load: Load, endpoint: Endpoint, *, port: int, pid: int, side: Side, options: dict[str, Any]
) -> LoadResult:
    """One measured load, its requests and the CPU it cost the server and the load generator added to ``side``."""
    loader_s = loader_cpu_s()
    result = with_server_cpu(load, endpoint, pid=pid, port=port, **options)
    side.server_cpu_s += result.server_cpu_s
    side.loader_cpu_s += loader_cpu_s() - loader_s
    side.requests += result.requests
    return result


def tree_memory_mb(pid: int) -> tuple[list[float], float]:
    """Resident MB of each serving process under ``pid`` (``pid`` itself when it has no children) and of all."""
    root = psutil.Process(pid)
    children = root.children(recursive=True)
    serving = [child.memory_info().rss / 1e6 for child in children] or [root.memory_info().rss / 1e6]
    return serving, sum(serving) + (root.memory_info().rss / 1e6 if children else 0.0)


def machine_run(
    *,
    starts: dict[str, Start],
    ports: Callable[[], int],
    counts: Sequence[int],
    endpoints: Sequence[Endpoint],
    load: Load,
    options: dict[str, Any],
    rounds: int,
) -> dict[int, dict[str, Side]]:
    """Each count of processes: start both servers, load every endpoint on both in ``rounds`` interleaved rounds
    (``options``: the load's ``headers``, ``connections``, ``duration_s``), then measure their memory."""
    results: dict[int, dict[str, Side]] = {}
    for count in counts:
        port = {side: ports() for side in SIDES}
        with starts["ours"](count, port["ours"]) as ours, starts["bare"](count, port["bare"]) as bare:
            sides = {side: Side() for side in SIDES}
            for endpoint in endpoints:
                runs: dict[str, list[LoadResult]] = {side: [] for side in SIDES}
                for side in SIDES:  # warm-up
                    load(endpoint, port=port[side], **{**options, "duration_s": 1.0})
                for _ in range(rounds):
                    for side, pid in (("ours", ours), ("bare", bare)):
                        measured = _measured(
                            load, endpoint, port=port[side], pid=pid, side=sides[side], options=options
                        )
                        runs[side].append(measured)
                for side in SIDES:
                    sides[side].rates[endpoint.name] = statistics.median(run.requests_per_s for run in runs[side])
                    sides[side].errors += sum(run.errors for run in runs[side])
            for side, pid in (("ours", ours), ("bare", bare)):
                sides[side].per_process_mb, sides[side].total_mb = tree_memory_mb(pid)
        results[count] = sides
    return results


def report_machine(results: dict[int, dict[str, Side]], *, tool: str, load_before: str) -> None:
    """Print the scaling and memory tables (Markdown) and the load average."""
    counts = sorted(results)
    base = results[counts[0]]
    print(f"\nmachine-level run ({tool}); load average before: {load_before}, after: {load_average()}\n")
    print("| processes | endpoint | ours req/s | bare FastAPI req/s | ×bare | ours scaling | bare scaling |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for count in counts:
        ours, bare = results[count]["ours"], results[count]["bare"]
        for name, rate in ours.rates.items():
            ratio = rate / bare.rates[name] if bare.rates[name] else 0.0
            ours_scale = rate / base["ours"].rates[name] if base["ours"].rates[name] else 0.0
            bare_scale = bare.rates[name] / base["bare"].rates[name] if base["bare"].rates[name] else 0.0
            cells = [str(count), name, f"{rate:.0f}", f"{bare.rates[name]:.0f}", f"{ratio:.2f}"]
            print("| " + " | ".join([*cells, f"{ours_scale:.2f}×", f"{bare_scale:.2f}×"]) + " |")
    print(
        "\n| processes | ours MB per process | ours MB total | bare MB per process | bare MB total | failed requests |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        ours, bare = results[count]["ours"], results[count]["bare"]
        print(
            f"| {count} | {_spread(ours.per_process_mb)} | {ours.total_mb:.1f} | {_spread(bare.per_process_mb)} | "
            f"{bare.total_mb:.1f} | {ours.errors} / {bare.errors} |"
        )
    columns = [
        "ours requests per server CPU-s",
        "bare requests per server CPU-s",
        "load generator CPU-s per 10k requests",
    ]
    print("\n| processes | " + " | ".join(columns) + " |")
    print("|---:|---:|---:|---:|")
    for count in counts:
        ours, bare = results[count]["ours"], results[count]["bare"]
        loader_s = (ours.loader_cpu_s + bare.loader_cpu_s) / max(1, ours.requests + bare.requests) * 10_000
        print(f"| {count} | {_per_cpu(ours)} | {_per_cpu(bare)} | {loader_s:.2f} |")


def _per_cpu(side: Side) -> str:
    return f"{side.requests / side.server_cpu_s:.0f}" if side.server_cpu_s else "-"


def _spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.1f}" if high - low < 0.05 else f"{low:.1f} – {high:.1f}"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
