"""table.md and table.csv from the benchmark's summary (see stats.py for what a cell holds)."""

from __future__ import annotations

import csv
import io
import math

from benchmarks.ground_truth.methods import METHODS, SFT_LABEL


CSV_COLUMNS = ("method", "label", "iteration", "examples_seen", "optimizer_steps", "count", "mean", "std", "ci95",
               "ci_low", "ci_high")  # fmt: skip


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def methods_in(summary: dict) -> list[str]:
    """The methods present, in METHODS order (baselines first, SPAC last), not in the cells' alphabetical order."""
    present = {c["method"] for c in summary["cells"]}
    return [m for m in METHODS if m in present]


def ordered_cells(summary: dict) -> list[dict]:
    order = {m: i for i, m in enumerate(methods_in(summary))}
    return sorted(summary["cells"], key=lambda c: (order[c["method"]], c["examples_seen"]))


def budget_points(summary: dict) -> list[int]:
    """The columns: training pairs seen, 0 (the SFT model) to all of them."""
    return sorted({0, *(c["examples_seen"] for c in summary["cells"])})


def column_title(examples: int, summary: dict) -> str:
    if examples == 0:
        return "SFT (0 pairs)"
    iterations = {c["iteration"] for c in summary["cells"]
                  if c["examples_seen"] == examples and METHODS[c["method"]].iterative}  # fmt: skip
    name = f"iter {iterations.pop()}" if len(iterations) == 1 else "budget"
    return f"{name} ({examples} pairs)"


def _cell(stats: dict, mark: str = "") -> str:
    if not finite(stats.get("ci95")):
        return f"{stats['mean']:.3f}{mark} (1 seed)"
    return f"{stats['mean']:.3f} ± {stats['ci95']:.3f}{mark}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main_table(summary: dict) -> str:
    points, sft = budget_points(summary), summary["sft"]
    lines = [_row(["method", *(column_title(p, summary) for p in points)]), "|---" * (len(points) + 1) + "|"]
    lines.append(_row([SFT_LABEL, _cell(sft), *[""] * (len(points) - 1)]))
    for method in methods_in(summary):
        by_point = {c["examples_seen"]: c for c in summary["cells"] if c["method"] == method}
        mark = "" if METHODS[method].iterative else "†"
        cells = [_cell(sft) if p == 0 else _cell(by_point[p], mark) if p in by_point else "—" for p in points]
        lines.append(_row([METHODS[method].label, *cells]))
    return "\n".join(lines)


def per_seed_table(summary: dict) -> str:
    seeds = [str(s) for s in summary["seeds"]]
    final = max(budget_points(summary))
    lines = [_row(["method", *(f"seed {s}" for s in seeds)]), "|---" * (len(seeds) + 1) + "|"]
    lines.append(_row([SFT_LABEL, *(f"{summary['sft']['values'][s]:.3f}" for s in seeds)]))
    for cell in ordered_cells(summary):
        if cell["examples_seen"] == final:
            values = [f"{cell['values'][s]:.3f}" if s in cell["values"] else "" for s in seeds]
            lines.append(_row([METHODS[cell["method"]].label, *values]))
    return "\n".join(lines)


def paired_table(summary: dict) -> str:
    lines = [_row(["comparison", "pairs seen", "mean difference ± 95% CI", "per seed"]), "|---" * 4 + "|"]
    for row in summary["paired"]:
        comparison = f"{METHODS[row['subject']].label} − {METHODS[row['baseline']].label}"
        ci = f" ± {row['ci95']:.3f}" if finite(row.get("ci95")) else " (1 seed)"
        per_seed = ", ".join(f"{v:+.3f}" for v in row["differences"].values())
        lines.append(_row([comparison, str(row["examples_seen"]), f"{row['mean']:+.3f}{ci}", per_seed]))
    return "\n".join(lines)


def final_paired_table(summary: dict) -> str:
    """Last iterate against last iterate, each method at its own budget (theory issue: the theory preset)."""
    lines = [_row(["comparison (last iterates)", "mean difference ± 95% CI", "per seed"]), "|---" * 3 + "|"]
    for row in summary.get("paired_final", []):
        comparison = f"{METHODS[row['subject']].label} − {METHODS[row['baseline']].label}"
        ci = f" ± {row['ci95']:.3f}" if finite(row.get("ci95")) else " (1 seed)"
        per_seed = ", ".join(f"{v:+.3f}" for v in row["differences"].values())
        lines.append(_row([comparison, f"{row['mean']:+.3f}{ci}", per_seed]))
    return "\n".join(lines)


def gains_table(summary: dict) -> str:
    """Each method's iterates minus the SFT model, paired by seed, one column per budget point."""
    points = [p for p in budget_points(summary) if p > 0]
    lines = [_row(["method − SFT", *(column_title(p, summary) for p in points)]), "|---" * (len(points) + 1) + "|"]
    for method in methods_in(summary):
        by_point = {g["examples_seen"]: g for g in summary.get("gains_over_sft", []) if g["method"] == method}
        cells = []
        for p in points:
            gain = by_point.get(p)
            ci = f" ± {gain['ci95']:.3f}" if gain and finite(gain.get("ci95")) else ""
            cells.append(f"{gain['mean']:+.3f}{ci}" if gain else "—")
        lines.append(_row([METHODS[method].label, *cells]))
    return "\n".join(lines)


def table_markdown(results: dict) -> str:
    summary, settings = results["summary"], results["settings"]
    seeds = summary["seeds"]
    return "\n".join([
        "# Ground-truth benchmark: mean true reward on held-out prompts",
        "",
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); {settings['true_reward_prompts']} held-out prompts, "
        f"{settings['true_reward_samples']} sampled response(s) each. Each cell: the mean over seeds of the mean true "
        "reward ± the half-width of the 95% Student-t interval across seeds. The interval is computed from the "
        "between-seed spread, which includes the data split, the training order, the self-play samples and the "
        "evaluation samples; the held-out prompts are the same for every seed.",
        "",
        main_table(summary),
        "",
        "† DPO (one pass): one iteration over all the pairs from the SFT model, the same number of pairs and "
        "optimizer steps as the iterative methods' last iterate.",
        "",
        "## Per seed, at the full budget",
        "",
        per_seed_table(summary),
        "",
        "## Paired differences (same seed: same data split and evaluation seed)",
        "",
        paired_table(summary),
        "",
        *(["## Last iterates, each method at its own budget (paired by seed)", "", final_paired_table(summary), ""]
          if summary.get("paired_final") else []),
        "## Gain over the SFT model (paired by seed)",
        "",
        gains_table(summary),
        "",
        f"SFT scores of one seed's runs agree to {summary['sft']['max_discrepancy']:.1e} (same model, same seed).",
        "",
    ])  # fmt: skip


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6f}" if math.isfinite(value) else ""
    return "" if value is None else value


def table_csv(summary: dict) -> str:
    """One row per model (the SFT model, then each method's iterates) with its per-seed values as extra columns."""
    seeds = [str(s) for s in summary["seeds"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"seed_{s}" for s in seeds)])
    sft = {"method": "sft", "label": SFT_LABEL, "iteration": 0, "examples_seen": 0, "optimizer_steps": 0,
           **summary["sft"]}  # fmt: skip
    for row in [sft, *({**c, "label": METHODS[c["method"]].label} for c in ordered_cells(summary))]:
        per_seed = [_csv_value(row["values"].get(s)) for s in seeds]
        writer.writerow([_csv_value(row.get(k)) for k in CSV_COLUMNS] + per_seed)
    return buffer.getvalue()
