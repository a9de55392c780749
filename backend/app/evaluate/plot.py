"""PNG chart of an evaluation report (matplotlib, Agg backend; imported only when ``--plot`` is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.evaluate.walk import METHODS


def plot_report(report: dict[str, Any], path: Path, *, title: str) -> None:
    """Mean IC per horizon and method, and the level bounce rates, written to ``path``."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    horizons = list(report["horizons"])
    fig, (ic_ax, lv_ax) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        values = [report["horizons"][h][method]["mean_ic"] or 0.0 for h in horizons]
        ic_ax.bar([x + i * width for x in range(len(horizons))], values, width=width, label=method)
    ic_ax.set_xticks([x + 0.4 - width / 2 for x in range(len(horizons))], [f"{h} candles" for h in horizons])
    ic_ax.axhline(0.0, color="black", linewidth=0.8)
    ic_ax.set_ylabel("mean Spearman IC")
    ic_ax.set_title(f"{title}: score vs baselines")
    ic_ax.legend(fontsize=8)
    levels = report["levels"]
    lv_ax.bar(["levels", "random"], [levels["bounce_rate"] or 0.0, levels["random_bounce_rate"] or 0.0])
    lv_ax.set_ylim(0, 1)
    lv_ax.set_title(f"bounce rate ({levels['events']} events)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
