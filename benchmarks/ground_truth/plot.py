"""true_reward.png: mean true reward against training pairs seen, one line per method with its 95% CI band."""

from __future__ import annotations

import matplotlib


matplotlib.use("Agg")  # headless: no display on the benchmark machines
import matplotlib.pyplot as plt

from benchmarks.ground_truth.methods import METHODS, SFT_LABEL
from benchmarks.ground_truth.tables import budget_points, column_title, finite, methods_in


def plot_figure(summary: dict):
    """Iterative methods: a line from the SFT model through every iterate, with a CI band. Plain DPO: one diamond with
    its CI, just right of the last budget point (its only iterate has seen all the pairs). The SFT level: a dashed
    line with its band. Every seed's value is a faint dot, so the spread behind a wide interval stays visible."""
    sft, points = summary["sft"], budget_points(summary)
    width = max(points) or 1
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=130)
    ax.axhline(sft["mean"], color="black", linestyle="--", linewidth=1, label=SFT_LABEL)
    if finite(sft["ci95"]):
        ax.axhspan(sft["ci_low"], sft["ci_high"], color="black", alpha=0.06, linewidth=0)
    methods = methods_in(summary)
    for index, method in enumerate(methods):
        cells = sorted((c for c in summary["cells"] if c["method"] == method), key=lambda c: c["examples_seen"])
        colour = METHODS[method].record.colour
        shift = 0.0 if METHODS[method].iterative else width * 0.03
        if METHODS[method].iterative:
            xs = [0] + [c["examples_seen"] for c in cells]
            ax.plot(xs, [sft["mean"]] + [c["mean"] for c in cells], marker="o", color=colour, linewidth=1.8,
                    label=METHODS[method].label, zorder=3)  # fmt: skip
            bands = [sft] + cells
            if all(finite(c["ci95"]) for c in bands):
                ax.fill_between(xs, [c["ci_low"] for c in bands], [c["ci_high"] for c in bands], color=colour,
                                alpha=0.12, linewidth=0)  # fmt: skip
        else:
            for cell in cells:
                ax.errorbar([cell["examples_seen"] + shift], [cell["mean"]], marker="D", markersize=7, color=colour,
                            yerr=cell["ci95"] if finite(cell["ci95"]) else None, capsize=4, linestyle="none",
                            zorder=4, label=f"{METHODS[method].label}, 95% CI")  # fmt: skip
        jitter = (index - (len(methods) - 1) / 2) * width * 0.008  # keeps the methods' seed dots apart
        for cell in cells:
            xs = [cell["examples_seen"] + shift + jitter] * len(cell["values"])
            ax.scatter(xs, list(cell["values"].values()), s=9, color=colour, alpha=0.35, zorder=2, linewidth=0)
    ax.set_xticks(points, [column_title(p, summary).replace(" (", "\n(") for p in points], fontsize=8)
    ax.set_xlabel("training pairs seen")
    ax.set_ylabel("mean true reward (held-out prompts)")
    ax.set_title(f"Ground truth: mean over {len(summary['seeds'])} seeds, bands = 95% CI across seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
