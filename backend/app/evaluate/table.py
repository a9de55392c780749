"""The evaluation report as plain-text tables (what ``dantaro evaluate`` prints); the JSON report is the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Json = Mapping[str, Any]


def _cell(value: Any, width: int, digits: int = 4) -> str:
    if value is None:
        return f"{'n/a':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width}.{digits}f}"
    return f"{value!s:>{width}}"


def _row(label: str, cells: Sequence[tuple[Any, int, int]]) -> str:
    return f"  {label:<28}" + "".join(_cell(v, w, d) for v, w, d in cells)


def _ic_row(label: str, stats: Json) -> str:
    return _row(
        label,
        [(stats["mean_ic"], 9, 4), (stats["nw_t"], 8, 2), (stats["share_positive"], 9, 3), (stats["periods"], 8, 0)],
    )


def _difference(name: str, diff: Json) -> str:
    return (
        f"  score - {name} ({diff['against']}): {_cell(diff['mean_ic_difference'], 0)} "
        f"(NW t {_cell(diff['nw_t'], 0, 2)}, {diff['periods']} periods)"
    )


def _ic_lines(block: Json) -> list[str]:
    lines = [_row("signal", [("mean_ic", 9, 0), ("nw_t", 8, 0), ("share>0", 9, 0), ("periods", 8, 0)])]
    lines.append(_ic_row("score (served)", block["score"]))
    lines += [_ic_row(name, stats) for name, stats in block["baselines"].items()]
    factors = sorted(block["factors"].items(), key=lambda item: -(item[1]["mean_ic"] or -9.0))
    lines += [_ic_row(f"factor {name}", stats) for name, stats in factors]
    lines.append(_difference("best baseline", block["score_minus_best_baseline"]))
    lines.append(_difference("reversal_24h", block["score_minus_reversal_24h"]))
    return lines


def _label_lines(block: Json) -> list[str]:
    header = [("count", 8, 0), ("pct", 8, 0), ("excess", 11, 0), ("beat_med", 10, 0)]
    lines = [_row("label", header)]
    for label, s in block["labels"].items():
        cells = [
            (s["count"], 8, 0),
            (s["mean_percentile"], 8, 2),
            (s["mean_excess_log_return"], 11, 6),
            (s["share_beating_median"], 10, 4),
        ]
        lines.append(_row(label, cells))
    for key in ("top_5", "top_10"):
        top = block[key]
        lines.append(
            f"  {key} mean excess log return {_cell(top['mean_excess_log_return'], 0, 6)} "
            f"(NW t {_cell(top['nw_t'], 0, 2)}, {top['periods']} periods)"
        )
    return lines


def _levels_lines(levels: Json) -> list[str]:
    header = [
        ("levels", 8, 0),
        ("touch", 8, 0),
        ("bounce", 8, 0),
        ("placebo_t", 10, 0),
        ("placebo_b", 10, 0),
        ("ratio", 8, 0),
    ]
    lines = ["levels (touch within the level window, bounce vs placebo: same symbol and ATR distance, another time)"]
    lines.append(_row("group", header))
    for group, s in levels.items():
        cells = [
            (s["levels"], 8, 0),
            (s["touch_rate"], 8, 4),
            (s["bounce_rate"], 8, 4),
            (s["placebo_touch_rate"], 10, 4),
            (s["placebo_bounce_rate"], 10, 4),
            (s["bounce_ratio"], 8, 3),
        ]
        lines.append(_row(group, cells))
    return lines


def _header(report: Json) -> list[str]:
    c = report["config"]
    lines = [
        f"evaluated {report['periods']} periods {report['first_period']} .. {report['last_period']}: "
        f"{c['symbols']} symbols, analysis {c['analysis_timeframe']}, levels {c['levels_timeframe']} "
        f"({c['levels_source']}), lookback {c['lookback_candles']}, every {c['step_candles']} candles, "
        f"refit every {c['refit_interval_s']:g} s",
        _row("models", [("fits", 8, 0), ("fitted", 9, 0), ("labels_on", 10, 0), ("wf_ic", 9, 0)]),
    ]
    for name, m in report["models"].items():
        cells = [
            (m["fits"], 8, 0),
            (m["share_fitted"], 9, 3),
            (m["share_labels_active"], 10, 3),
            (m["mean_walk_forward_ic"], 9, 4),
        ]
        lines.append(_row(name, cells))
    return lines


def format_report(report: Json) -> str:
    """The report as plain-text tables: header, per horizon ICs and labels, the delayed entry, the levels."""
    lines = _header(report)
    for name, block in report["horizons"].items():
        lines.append(f"horizon {name} ({block['candles']} candles, Newey-West lags {block['nw_lags']})")
        lines += _ic_lines(block) + _label_lines(block)
    delay = report["sensitivity"]
    lines.append(f"sensitivity: entry {delay['entry_delay_candles']} candle later")
    for name, block in delay["horizons"].items():
        lines.append(f"horizon {name}")
        lines += [_ic_row("score (served)", block["score"]), _difference("best", block["score_minus_best_baseline"])]
        lines += _label_lines(block)
    return "\n".join(lines + _levels_lines(report["levels"]))
