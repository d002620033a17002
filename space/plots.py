"""One panel per task (task, metric, shots): value against iteration, one line per method, from results rows."""

from __future__ import annotations

import math

import pandas as pd

# A bare Figure, not pyplot: pyplot keeps every figure it made alive (a leak on a long-running server) and wants a GUI.
from matplotlib.figure import Figure

from results import METHOD_ORDER, METHODS, task_column


MAX_COLUMNS = 3


def _method_key(method: str) -> tuple[int, str]:
    return METHOD_ORDER.get(method, len(METHOD_ORDER)), method


def iteration_curves(frame: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """task column -> method -> rows sorted by iteration.

    Rows at iteration 0 without a method are the shared starting (SFT) model: every method's line starts there.
    Rows without an iteration cannot be placed on the x axis and are left out.
    """
    frame = frame[frame["iteration"].notna()]
    frame = frame.assign(column=[task_column(*key) for key in zip(frame.task, frame.metric, frame.num_fewshot)])
    curves: dict[str, dict[str, pd.DataFrame]] = {}
    for column, rows in frame.groupby("column", sort=False):
        start = rows[rows["method"].isna() & (rows["iteration"] == 0)]
        methods = sorted(rows["method"].dropna().unique(), key=_method_key)
        curves[column] = {
            method: pd.concat([start, rows[rows["method"] == method]]).sort_values("iteration") for method in methods
        }
        if not methods and not start.empty:
            curves[column]["sft"] = start
    return curves


def results_figure(frame: pd.DataFrame) -> Figure:
    curves = iteration_curves(frame)
    if not curves:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "No results with an iteration yet.", ha="center", va="center")
        return fig
    columns = min(MAX_COLUMNS, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig = Figure(figsize=(4.5 * columns, 3.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (title, methods) in zip(axes.flat, curves.items()):
        for method, points in methods.items():
            label, color = METHODS.get(method, (method, None))
            stderr = points["stderr"].astype(float) if points["stderr"].notna().any() else None
            ax.errorbar(
                points["iteration"].astype(int), points["value"], yerr=stderr, label=label, color=color,
                marker="o", capsize=3,
            )  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
