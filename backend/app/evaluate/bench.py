"""``dantaro benchmark analysis``: all three products for many symbols built from the real bundled 1h series.

Invariants: the input is real candles (the bundled 1h series cycled; copy ``i`` of a series uses a window shifted by
``7 * i`` candles and prices scaled by ``1 + i / 100``, on the open times of the series' newest window so that every
copy ends at the same time), built before the clock starts. The timed call is exactly ``analyse_served`` with
per-horizon models fitted (and calibrated) on the same universe beforehand, outside the clock. Peak memory: process
peak RSS (``resource``) and the Python allocation peak of a second, traced run.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from app.analysis import FitSettings
from app.analysis.options import FIT_WARMUP_CANDLES, AnalysisOptions
from app.analysis.served import analyse_served, refit
from app.domain import Candle, default_horizons, utc_now
from app.evaluate.candle_files import DataError, load_folder

SHIFT_CANDLES = 7


@dataclass(frozen=True, slots=True)
class BenchmarkResult:
    """Wall time of the fastest run, Python allocation peak and process peak RSS."""

    symbols: int
    candles: int
    wall_s: float
    traced_peak_mb: float
    peak_rss_mb: float


def build_universe(real: dict[str, list[Candle]], *, symbols: int, candles: int) -> dict[str, dict[str, list[Candle]]]:
    """``symbols`` series of ``candles`` real 1h candles each (cycled, shifted and scaled copies)."""
    sources = sorted((s, c) for s, c in real.items() if len(c) >= candles + SHIFT_CANDLES * (symbols // len(real) + 1))
    if not sources:
        raise DataError(f"no series has the {candles} candles needed (plus shifts)")
    out: dict[str, dict[str, list[Candle]]] = {}
    for i in range(symbols):
        symbol, series = sources[i % len(sources)]
        copy = i // len(sources)
        start = len(series) - candles - SHIFT_CANDLES * copy
        k = 1.0 + copy / 100.0
        times = [c.open_time_ms for c in series[-candles:]]  # every copy ends at the same time (none is stale)
        window = [
            Candle(t, c.open * k, c.high * k, c.low * k, c.close * k, c.volume)
            for t, c in zip(times, series[start : start + candles], strict=True)
        ]
        out[f"{symbol.split('/')[0]}{copy}/{symbol.split('/')[1]}"] = {"1h": window}
    return out


def benchmark_options(candles: int) -> AnalysisOptions:
    """The default hourly configuration (1h, 4h, 24h), its fit window shortened to what ``candles`` can hold."""
    window = max(48, candles - FIT_WARMUP_CANDLES - 24)
    return AnalysisOptions(
        analysis_timeframe="1h",
        levels_timeframe="1h",
        lookback_candles=candles,
        horizons=default_horizons("1h"),
        default_horizon="1h",
        fit=FitSettings(window_candles=window, min_cross_sections=min(window, 48)),
        refit_interval_s=86_400.0,
    )


def run_benchmark(data_dir: Path, *, symbols: int, candles: int, repeats: int = 3) -> BenchmarkResult:
    """Time the served analysis (``analyse_served`` with fitted, calibrated per-horizon models) on the built
    universe (best of ``repeats``) and measure its memory; the models are fitted first, outside the clock."""
    universe = build_universe(load_folder(data_dir / "1h", timeframe="1h"), symbols=symbols, candles=candles)
    options = benchmark_options(candles)
    models = refit({s: by_tf["1h"] for s, by_tf in universe.items()}, options, fitted_at=utc_now())
    timings: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        analyse_served(universe, tickers={}, options=options, models=models)
        timings.append(time.perf_counter() - started)
    tracemalloc.start()
    analyse_served(universe, tickers={}, options=options, models=models)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return BenchmarkResult(symbols, candles, min(timings), peak / 2**20, rss_kb / 1024)


def format_result(result: BenchmarkResult) -> str:
    """One line for the terminal."""
    return (
        f"analysis benchmark: {result.symbols} symbols x {result.candles} candles (1h, real series): "
        f"wall {result.wall_s:.3f} s (best of runs), Python peak {result.traced_peak_mb:.1f} MiB (tracemalloc), "
        f"process peak RSS {result.peak_rss_mb:.1f} MiB"
    )
