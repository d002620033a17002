"""One panel per task column of a ranking: score against iteration, one line per method or variant, error bars = the
95% CI (said on the figure).

Every iterative method's line starts at the SFT model (iteration 0) of the same ranking. A method with a single
model trained in one pass over all the data (one-pass DPO) is not an iteration of anything: it is drawn as a
horizontal reference line with its interval as a band, labelled, never joined to an iterative line.
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd

# A bare Figure, not pyplot: pyplot keeps every figure it made alive (a leak on a long-running server) and wants a GUI.
from matplotlib.figure import Figure

from results import SFT, _method_key, style


ONE_PASS = {"dpo"}  # one model trained on all the pairs at once: a reference level, not a curve
MAX_COLUMNS = 3
PANEL_WIDTH = 5.2  # inches
CHARS_PER_INCH = 9  # of a 10-point title: titles are wrapped to their panel's (or figure's) width, never cut
ERROR_BARS = "error bars: 95% CI"


def fitted(text: str, inches: float, points: float = 10) -> str:
    """`text` wrapped to lines that fit `inches` at a font of `points`."""
    return "\n".join(textwrap.wrap(text, max(16, int(inches * CHARS_PER_INCH * 10 / points)))) or text


def iteration_curves(models: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """task column -> method -> its points (iteration, value, ci), sorted by iteration, from `models_frame` rows.

    Iterative methods start at the SFT model's point; models without an iteration cannot be placed and are left out.
    """
    models = models[models["iteration"].notna()]
    curves: dict[str, dict[str, pd.DataFrame]] = {}
    for column, rows in models.groupby("column", sort=False):
        start = rows[rows["method"] == SFT]
        methods = sorted((m for m in rows["method"].unique() if m and m != SFT), key=_method_key)
        curves[column] = {}
        for method in methods:
            own = rows[rows["method"] == method]
            points = own if method in ONE_PASS else pd.concat([start, own])
            curves[column][method] = points.sort_values("iteration")[["iteration", "value", "ci"]]
        if not methods and not start.empty:
            curves[column][SFT] = start[["iteration", "value", "ci"]]
    return curves


def _axis_label(column: str) -> str:
    """`true_reward_reviews (mean_over_seeds)` -> `mean_over_seeds of true_reward_reviews`."""
    task, _, rest = column.partition(" (")
    return f"{rest.rstrip(')')} of {task}" if rest else column


def results_figure(models: pd.DataFrame, title: str | None = None) -> Figure:
    curves = iteration_curves(models)
    if not curves:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "No results with an iteration yet.", ha="center", va="center")
        return fig
    columns = min(MAX_COLUMNS, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig = Figure(figsize=(PANEL_WIDTH * columns, 3.8 * rows + (0.6 if title else 0)), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (column, methods) in zip(axes.flat, curves.items()):
        last = max((int(p["iteration"].max()) for p in methods.values()), default=1)
        for method, points in methods.items():
            label, color = style(method)
            errors = points["ci"].astype(float)
            errors = errors if errors.notna().any() else None
            if method in ONE_PASS:
                value, ci = float(points["value"].iloc[-1]), float(points["ci"].iloc[-1])
                ax.axhline(value, color=color, linestyle="--", label=label)  # one model: a level, not a curve
                if not math.isnan(ci):
                    ax.axhspan(value - ci, value + ci, color=color, alpha=0.12)
                continue
            ax.errorbar(points["iteration"].astype(int), points["value"].astype(float), yerr=errors, label=label,
                        color=color, marker="o", capsize=3)  # fmt: skip
        ax.set_title(fitted(column, PANEL_WIDTH), fontsize=10)
        ax.set_xlabel("iteration (0 = the SFT model)")
        ax.set_ylabel(_axis_label(column))
        ax.set_xticks(range(0, max(last, 1) + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=ERROR_BARS, title_fontsize=8)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    if title:
        fig.suptitle(fitted(title, PANEL_WIDTH * columns, points=12), fontsize=12)
    return fig
