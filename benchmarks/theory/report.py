"""Turn the sweep's results into table.md, table.csv and suboptimality.png (all written atomically)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib


matplotlib.use("Agg")  # headless: no display on the benchmark machines
import matplotlib.pyplot as plt

from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_text


REFERENCE_LABELS = {
    "behaviour": "behaviour policy mu (= pi_1)",
    "good_action": "always the covered good action",
    "optimal": "optimal policy (not covered in general)",
}


def _cell(mean: float, ci95: float) -> str:
    return f"{mean:.3f} ± {ci95:.3f}"


def markdown_table(environment: dict) -> str:
    ns = sorted({row["n"] for row in environment["rows"]})
    header = "| method | " + " | ".join(f"n = {n}" for n in ns) + " |"
    lines = [header, "|" + "---|" * (len(ns) + 1)]
    methods = dict.fromkeys(row["method"] for row in environment["rows"])
    for method in methods:
        cells = {row["n"]: row for row in environment["rows"] if row["method"] == method}
        label = cells[ns[0]]["label"]
        lines.append(f"| {label} | " + " | ".join(_cell(cells[n]["mean"], cells[n]["ci95"]) for n in ns) + " |")
    for key, label in REFERENCE_LABELS.items():
        ref = environment["references"][key]
        lines.append(f"| *{label}* | " + " | ".join([_cell(ref["mean"], ref["ci95"])] * len(ns)) + " |")
    return "\n".join(lines)


def paired_table(environment: dict) -> str:
    ns = sorted({row["n"] for row in environment["paired_differences"]})
    comparisons = dict.fromkeys(row["comparison"] for row in environment["paired_differences"])
    lines = ["| paired difference | " + " | ".join(f"n = {n}" for n in ns) + " |", "|" + "---|" * (len(ns) + 1)]
    for comparison in comparisons:
        cells = {row["n"]: row for row in environment["paired_differences"] if row["comparison"] == comparison}
        lines.append(f"| {comparison} | " + " | ".join(_cell(cells[n]["mean"], cells[n]["ci95"]) for n in ns) + " |")
    return "\n".join(lines)


def table_markdown(results: dict) -> str:
    n_seeds = len(results["settings"]["seeds"])
    parts = [
        "# Theory benchmark: suboptimality against the best covered policy",
        "",
        f"Mean ± half-width of the 95% t-interval over {n_seeds} seeds; lower is better; 0 = the best policy with "
        "concentrability <= C; negative = better than it. Output of each method: its last iterate, or the uniform "
        "mixture of its iterates where the label says so (Algorithm 1 always).",
    ]
    for environment in results["environments"]:
        coverage = environment["coverage"]
        parts += [
            "",
            f"## {environment['name']}: {environment['description']}",
            "",
            f"Coverage constant C = {coverage['constructed']:g} (good-action policy); optimal policy's "
            f"concentrability (mean over seeds) = {coverage['optimal_policy_mean']:.3g}.",
            "",
            markdown_table(environment),
            "",
            "Paired differences a - b by seed (same bandit, same data; negative: a better):",
            "",
            paired_table(environment),
        ]
    if results.get("budget_sweep"):
        parts += ["", budget_markdown(results["budget_sweep"])]
    return "\n".join(parts) + "\n"


def budget_markdown(budget: dict) -> str:
    """Suboptimality and the paired difference against DPO, by optimizer steps per iteration."""
    lines = [
        f"## Optimisation budget ({budget['environment']}): optimizer steps per iteration",
        "",
        "One-shot DPO gets T = 3 times the steps of one iteration (the paper settings' T).",
        "",
        "| method | n | " + " | ".join(f"{s} steps" for s in budget["steps"]) + " |",
        "|" + "---|" * (len(budget["steps"]) + 2),
    ]
    for n in budget["ns"]:
        for method in budget["methods"]:
            cells = {r["steps"]: r for r in budget["rows"] if r["n"] == n and r["method"] == method}
            label = next(iter(cells.values()))["label"]
            lines.append(
                f"| {label} | {n} | "
                + " | ".join(_cell(cells[s]["mean"], cells[s]["ci95"]) for s in budget["steps"])
                + " |"
            )
    lines += [
        "",
        "| paired difference | n | " + " | ".join(f"{s} steps" for s in budget["steps"]) + " |",
        "|" + "---|" * (len(budget["steps"]) + 2),
    ]
    for n in budget["ns"]:
        for comparison in dict.fromkeys(r["comparison"] for r in budget["paired"]):
            cells = {r["steps"]: r for r in budget["paired"] if r["n"] == n and r["comparison"] == comparison}
            lines.append(
                f"| {comparison} | {n} | "
                + " | ".join(_cell(cells[s]["mean"], cells[s]["ci95"]) for s in budget["steps"])
                + " |"
            )
    return "\n".join(lines)


def table_csv(results: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["environment", "method", "n", "mean", "ci95_half_width", "std", "seeds"])
    for environment in results["environments"]:
        for row in environment["rows"]:
            writer.writerow(
                [
                    environment["name"],
                    row["method"],
                    row["n"],
                    f"{row['mean']:.6f}",
                    f"{row['ci95']:.6f}",
                    f"{row['std']:.6f}",
                    row["count"],
                ]  # fmt: skip
            )
    return buffer.getvalue()


def plot_suboptimality(results: dict):
    environments = results["environments"]
    columns = min(2, len(environments))
    lines = (len(environments) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(7.0 * columns, 5.0 * lines), squeeze=False)
    for ax in axes.flat[len(environments) :]:
        ax.set_visible(False)
    for ax, environment in zip(axes.flat, environments):
        methods = dict.fromkeys(row["method"] for row in environment["rows"])
        for method in methods:
            rows = sorted((r for r in environment["rows"] if r["method"] == method), key=lambda r: r["n"])
            ns = [r["n"] for r in rows]
            mean = [r["mean"] for r in rows]
            lo = [r["mean"] - r["ci95"] for r in rows]
            hi = [r["mean"] + r["ci95"] for r in rows]
            style = "-" if method.startswith(("spac_theory", "algorithm1")) else "--"
            (line,) = ax.plot(ns, mean, marker="o", ls=style, label=rows[0]["label"])
            ax.fill_between(ns, lo, hi, color=line.get_color(), alpha=0.18)
        references = environment["references"]
        ax.axhline(references["behaviour"]["mean"], color="grey", ls="--", lw=1, label="behaviour policy mu")
        ax.axhline(0.0, color="black", lw=1, label="best covered policy")
        if abs(references["optimal"]["mean"]) > 1e-9:
            ax.axhline(references["optimal"]["mean"], color="grey", ls=":", lw=1, label="optimal policy")
        ax.set_xscale("log")
        ax.set_xlabel("number of preference pairs n (all T iterations together)")
        ax.set_ylabel("suboptimality  J(best covered) - J(learned)")
        ax.set_title(f"{environment['name']} (C = {environment['coverage']['constructed']:g})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    n_seeds = len(results["settings"]["seeds"])
    fig.suptitle(f"Contextual bandit, exact expectations: mean and 95% CI over {n_seeds} seeds", fontsize=11)
    fig.tight_layout()
    return fig


def write_report(results: dict, out: Path) -> None:
    atomic_write_text(out / "table.md", table_markdown(results))
    atomic_write_text(out / "table.csv", table_csv(results))
    save_figure(plot_suboptimality(results), out / "suboptimality.png", dpi=130)
