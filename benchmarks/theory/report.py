"""table.md, table.csv, suboptimality.png and budget.png from results.json alone (all written atomically)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_text

from benchmarks.protocol import quote


def _pyplot():
    """pyplot on the headless backend (no display on the benchmark machines), imported only to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


REFERENCE_LABELS = {
    "behaviour": "behaviour policy mu (= pi_1)",
    "good_action": "always the covered good action",
    "optimal": "optimal policy (not covered in general)",
}
RULES = {"validation": "checkpoint and trial chosen on the tuning seeds", "last": "last checkpoint (fixed budget)"}


def _cell(row: dict) -> str:
    return f"{row['mean']:.3f} ± {row['ci95']:.3f}"


def _params(row: dict) -> str:
    text = ", ".join(f"{k} {v:g}" for k, v in row["params"].items())
    return f"{text}, step {row['checkpoint']}"


def summary_table(results: dict, instance: str, budget: int, rule: str) -> str:
    rows = [
        r for r in results["summary"] if (r["instance"], r["budget"], r["checkpoint_rule"]) == (instance, budget, rule)
    ]
    ns = sorted({r["n"] for r in rows})
    lines = ["| arm | " + " | ".join(f"n = {n}" for n in ns) + " |", "|" + "---|" * (len(ns) + 1)]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        cells = {r["n"]: r for r in rows if r["arm"] == arm}
        label = next(iter(cells.values()))["label"]
        lines.append(f"| {label} | " + " | ".join(_cell(cells[n]) if n in cells else "" for n in ns) + " |")
    regimes = {r["n"]: r for r in results["regimes"] if (r["instance"], r["budget"]) == (instance, budget)}
    for key, label in REFERENCE_LABELS.items():
        lines.append(f"| *{label}* | " + " | ".join(_cell(regimes[n]["references"][key]) for n in ns) + " |")
    return "\n".join(lines)


def choices_table(results: dict, instance: str, budget: int) -> str:
    rows = [r for r in results["summary"] if (r["instance"], r["budget"]) == (instance, budget)]
    ns = sorted({r["n"] for r in rows})
    lines = ["| arm | " + " | ".join(f"n = {n}" for n in ns) + " |", "|" + "---|" * (len(ns) + 1)]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        cells = {r["n"]: r for r in rows if r["arm"] == arm and r["checkpoint_rule"] == "validation"}
        lines.append(f"| {arm} | " + " | ".join(_params(cells[n]) if n in cells else "" for n in ns) + " |")
    return "\n".join(lines)


def verdict_table(results: dict, instance: str, budget: int, rule: str) -> str:
    """Every contrast at every n: the paired mean difference and the verdict (the lines below give the intervals)."""
    rows = [
        d
        for d in results["decisions"]
        if (d["instance"], d["budget"], d["checkpoint_rule"]) == (instance, budget, rule)
    ]
    ns = sorted({d["n"] for d in rows})
    lines = [f"| contrast ({rule} rule) | " + " | ".join(f"n = {n}" for n in ns) + " |", "|" + "---|" * (len(ns) + 1)]
    for contrast in dict.fromkeys(d["contrast"] for d in rows):
        cells = {d["n"]: d for d in rows if d["contrast"] == contrast}
        verdict = {
            n: d["line"].rsplit(": ", 1)[1] if d["verdict"] == "no worse than" else d["verdict"]
            for n, d in cells.items()
        }
        text = {n: f"{cells[n]['mean']:+.3f} {verdict[n]}" if n in cells else "" for n in ns}
        lines.append(f"| {contrast} | " + " | ".join(text[n] for n in ns) + " |")
    return "\n".join(lines)


def decision_lines(results: dict, instance: str, budget: int, rule: str) -> list[str]:
    rows = [
        d
        for d in results["decisions"]
        if (d["instance"], d["budget"], d["checkpoint_rule"]) == (instance, budget, rule)
    ]
    out = []
    for n in sorted({d["n"] for d in rows}):
        for d in (d for d in rows if d["n"] == n):
            chosen = f" ({d['a_arm']} vs {d['b_arm']})" if "best" in d["contrast"] else ""
            out.append(f"- {quote(d)}{chosen}")
    return out


def table_markdown(results: dict) -> str:
    design = results["design"]
    seeds = len(results["comparisons"][0]["test_seeds"])
    parts = [
        "# Theory benchmark under the fair-comparison protocol: suboptimality against the best covered policy",
        "",
    ]
    if results["partial"]:
        parts += [
            f"**PARTIAL: {results['regimes_done']} of {results['regimes_total']} regimes.** Resume with "
            f"`{results['resume']}`.",
            "",
        ]
    parts += [
        f"Test seeds: {seeds} (a new bandit and data set each). Mean ± half-width of the 95% t-interval; lower is "
        "better; 0 = the best policy with concentrability <= C; negative = better than it. Every arm: the same step "
        f"budget, {results['comparisons'][0]['trials_per_arm']} tuning trials on held-out seeds, the same checkpoints."
        " "
        "Decision lines, `[instance n=... steps=..., rule] line` as READMEs quote them: paired differences over the "
        "test seeds, a minus b (negative: a better); 'wins' counts the "
        f"seeds in which a was better; non-inferiority margin delta = {design['delta']}.",
    ]
    if results["spent_flags"]:
        parts += ["", "Runs whose spend differs from the budget by more than 5%:", ""]
        parts += [f"- {flag}" for flag in results["spent_flags"]]
    primary = design["primary_budget"]
    budgets = sorted({r["budget"] for r in results["regimes"]}, key=lambda b: (b != primary, b))  # primary first
    for instance in dict.fromkeys(r["instance"] for r in results["regimes"]):
        for budget in [
            b for b in budgets if any((r["instance"], r["budget"]) == (instance, b) for r in results["regimes"])
        ]:
            parts += ["", f"## {instance}, {budget} optimizer steps: {design['descriptions'][instance]}"]
            for rule, what in RULES.items():
                parts += ["", f"Suboptimality, {what}:", "", summary_table(results, instance, budget, rule)]
            parts += [
                "",
                "Chosen on the tuning seeds (validation rule): trial settings and checkpoint:",
                "",
                choices_table(results, instance, budget),
            ]
            for rule, what in RULES.items():
                parts += [
                    "",
                    f"Decisions, {what} (a minus b, negative: a better):",
                    "",
                    verdict_table(results, instance, budget, rule),
                    "",
                    *decision_lines(results, instance, budget, rule),
                ]
    return "\n".join(parts) + "\n"


def table_csv(results: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "kind",
            "instance",
            "budget",
            "n",
            "arm_or_contrast",
            "checkpoint_rule",
            "mean",
            "ci95_or_low",
            "count_or_high",
            "params",
            "checkpoint",
            "val_score",
            "verdict",
        ]
    )
    for r in results["summary"]:
        writer.writerow(
            [
                "suboptimality",
                r["instance"],
                r["budget"],
                r["n"],
                r["arm"],
                r["checkpoint_rule"],
                f"{r['mean']:.6f}",
                f"{r['ci95']:.6f}",
                r["count"],
                json.dumps(r["params"]),
                r["checkpoint"],
                f"{r['val_score']:.6f}",
                "",
            ]
        )
    for d in results["decisions"]:
        writer.writerow(
            [
                "decision",
                d["instance"],
                d["budget"],
                d["n"],
                d["contrast"],
                d["checkpoint_rule"],
                f"{d['mean']:.6f}",
                f"{d['ci_low']:.6f}",
                f"{d['ci_high']:.6f}",
                json.dumps([d["a_arm"], d["b_arm"]]),
                "",
                "",
                d["verdict"],
            ]
        )
    return buffer.getvalue()


def _colours(arms: list[str]) -> dict[str, tuple]:
    cmap = _pyplot().get_cmap("tab10")
    return {arm: cmap(i % 10) for i, arm in enumerate(arms)}


def plot_suboptimality(results: dict, path: Path, budget: int) -> None:
    instances = list(dict.fromkeys(r["instance"] for r in results["regimes"] if r["budget"] == budget))
    if not instances:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(instances), figsize=(5.2 * len(instances), 4.4), squeeze=False)
    arms = list(dict.fromkeys(r["arm"] for r in results["summary"]))
    colours = _colours(arms)
    for ax, instance in zip(axes[0], instances, strict=True):
        rows = [
            r
            for r in results["summary"]
            if (r["instance"], r["budget"], r["checkpoint_rule"]) == (instance, budget, "validation")
        ]
        for arm in arms:
            cells = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["n"])
            if not cells:
                continue
            ns = [r["n"] for r in cells]
            means = [r["mean"] for r in cells]
            ci = [r["ci95"] for r in cells]
            style = "-" if arm.startswith(("spac", "algorithm1")) else "--"
            ax.plot(ns, means, style, marker="o", ms=3, color=colours[arm], label=cells[0]["label"])
            ax.fill_between(
                ns,
                [m - c for m, c in zip(means, ci)],
                [m + c for m, c in zip(means, ci)],
                color=colours[arm],
                alpha=0.12,
            )
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_title(f"{instance} ({budget} steps)")
        ax.set_xlabel("n (preference pairs)")
        ax.set_ylabel("suboptimality (lower is better), 95% CI")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_budget(results: dict, path: Path) -> None:
    sweep = results["design"]["sweep"]
    rows = [
        r for r in results["summary"] if r["instance"] == sweep["instance"] and r["checkpoint_rule"] == "validation"
    ]
    budgets = sorted({r["budget"] for r in rows})
    if len(budgets) < 2:
        return
    plt = _pyplot()
    ns = sorted({r["n"] for r in rows})
    fig, axes = plt.subplots(1, len(ns), figsize=(3.6 * len(ns), 3.8), squeeze=False, sharey=False)
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colours = _colours(arms)
    for ax, n in zip(axes[0], ns, strict=True):
        for arm in arms:
            cells = sorted((r for r in rows if r["arm"] == arm and r["n"] == n), key=lambda r: r["budget"])
            if not cells:
                continue
            xs = [r["budget"] for r in cells]
            means = [r["mean"] for r in cells]
            ci = [r["ci95"] for r in cells]
            style = "-" if arm.startswith(("spac", "algorithm1")) else "--"
            ax.errorbar(
                xs, means, yerr=ci, fmt=style, marker="o", ms=3, capsize=2, color=colours[arm], label=cells[0]["label"]
            )
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_title(f"{sweep['instance']}, n = {n}")
        ax.set_xlabel("optimizer steps (budget)")
    axes[0][0].set_ylabel("suboptimality (lower is better), 95% CI")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "table.md", table_markdown(results))
    atomic_write_text(out / "table.csv", table_csv(results))
    plot_suboptimality(results, out / "suboptimality.png", results["design"]["primary_budget"])
    plot_budget(results, out / "budget.png")


if __name__ == "__main__":  # rebuild the report from a results.json: python -m benchmarks.theory.report results/theory
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/theory")
    write_report(json.loads((folder / "results.json").read_text()), folder)
