"""PNG chart of an evaluation report (matplotlib, Agg backend; imported only when ``--plot`` is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.evaluate.scoring import BASELINES


def _series(block: dict[str, Any]) -> dict[str, float]:
    values = {"score": block["score"]["mean_ic"]} | {name: block["baselines"][name]["mean_ic"] for name in BASELINES}
    best = block["best_baseline"]
    if best in block["factors"]:
        values["best factor"] = block["factors"][best]["mean_ic"]
    return {name: value or 0.0 for name, value in values.items()}


def plot_report(report: dict[str, Any], path: Path, *, title: str) -> None:
    """Mean IC per horizon of the served score, the baselines and the best factor, and level bounce rates."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    horizons = list(report["horizons"])
    fig, (ic_ax, lv_ax) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    series = [_series(report["horizons"][h]) for h in horizons]
    width = 0.8 / max(len(s) for s in series)
    for x, values in enumerate(series):
        for i, (name, value) in enumerate(values.items()):
            ic_ax.bar(x + i * width, value, width=width, color=f"C{i}", label=name if x == 0 else None)
    ticks = [f"{h} (best factor: {report['horizons'][h]['best_baseline']})" for h in horizons]
    ic_ax.set_xticks([x + 0.4 - width / 2 for x in range(len(horizons))], ticks, fontsize=8)
    ic_ax.axhline(0.0, color="black", linewidth=0.8)
    ic_ax.set_ylabel("mean Spearman IC")
    ic_ax.set_title(f"{title}: served score vs baselines")
    ic_ax.legend(fontsize=7)
    levels = report["levels"]["all"]
    lv_ax.bar(["levels", "placebo"], [levels["bounce_rate"] or 0.0, levels["placebo_bounce_rate"] or 0.0])
    lv_ax.set_ylim(0, 1)
    lv_ax.set_title(f"bounce rate ({levels['levels']} levels)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
