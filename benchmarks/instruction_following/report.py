"""Write the benchmark's report next to results.json: table.md, table.csv, instruction_following.png and dataset/ (a
results dataset in the Hub layout, which the Space reads).

Every number comes from `results.json`, so the report can be rebuilt from it alone:
`python -m benchmarks.instruction_following.report results/instruction_following`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from spac_hf.hub import save_results_dataset
from spac_hf.scripts.script_utils import save_figure
from spac_hf.tasks.registry import TASKS
from spac_hf.utils import atomic_write_text
from spac_hf.variants import VARIANTS

from benchmarks.ground_truth.protocol_view import Pair, protocol_view, write_protocol_view
from benchmarks.ground_truth.report import over_seeds_rows


COLUMNS = (  # (results key, header)
    ("ifeval_prompt_level_strict_acc", "IFEval prompt strict"),
    ("ifeval_inst_level_strict_acc", "IFEval inst. strict"),
    ("ifeval_prompt_level_loose_acc", "IFEval prompt loose"),
    ("ifeval_inst_level_loose_acc", "IFEval inst. loose"),
    ("in_dist_true_reward", "in-dist. reward"),
    ("ifeval_mean_length_tokens", "IFEval length (tokens)"),
    ("ifeval_degenerate_fraction", "IFEval degenerate"),
    ("in_dist_mean_length_tokens", "in-dist. length"),
)
PAIRED = ("ifeval_prompt_level_strict_acc", "ifeval_inst_level_strict_acc", "in_dist_true_reward",
          "ifeval_mean_length_tokens")  # fmt: skip


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _cell(stats: dict | None, digits: int = 3) -> str:
    if not stats:
        return "–"
    if isinstance(stats, (int, float)):
        return f"{stats:.{digits}f}"
    text = f"{stats['mean']:.{digits}f}"
    if _finite(stats.get("ci95")):
        text += f" ± {stats['ci95']:.{digits}f}"
    return text + f" (n={stats['count']})"


def _final_steps(results: dict) -> dict[str, str]:
    """Optimizer steps to each method's final iterate (the budget actually spent), from the run records."""
    steps: dict[str, set] = {}
    for run in results["runs"]:
        steps.setdefault(run["method"], set()).add(run["iterations"][-1]["optimizer_steps"])
    return {name: "/".join(str(v) for v in sorted(values)) for name, values in steps.items()}


def _final_values(results: dict, key: str, digits: int = 4) -> dict[str, str]:
    """A per-run number at each method's final iterate, seed by seed ("a/b/c" over seeds)."""
    out: dict[str, list] = {}
    for run in sorted(results["runs"], key=lambda r: r["seed"]):
        value = run["iterations"][-1].get(key)
        if value is not None:
            out.setdefault(run["method"], []).append(f"{value:.{digits}f}")
    return {name: "/".join(values) for name, values in out.items()}


def table_markdown(results: dict) -> str:
    s = results["summary"]
    settings = results["settings"]
    lines = []
    if results["status"] != "complete":
        lines += [(f"**PARTIAL RESULTS**: {len(results['left'])} steps left. Resume with `{results['command']}` "
                  "(finished steps are reused)."), ""]  # fmt: skip
    lines += [
        (
            f"Base model (SFT, also mu): `{settings['base_model']}`; configuration `{settings['configuration']}`; "
            f"IFEval: all 541 prompts, greedy, at most {settings['ifeval_max_gen_toks']} new tokens (the leaderboard: "
            "1280); in-distribution reward: greedy, held-out constructed prompts. Mean ± 95% CI half-width across "
            "seeds "
            "(n = seeds done)."
        ),
        "",
        "| method | optimizer steps | " + " | ".join(h for _, h in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
        "| SFT | 0 | " + " | ".join(_cell(s["sft"].get(k), 1 if "length" in k else 3) for k, _ in COLUMNS) + " |",
    ]
    steps = _final_steps(results)
    for name, cells in s["cells"].items():
        label = s["labels"].get(name, name)
        lines.append(
            f"| {label} | {steps.get(name, '')} | "
            + " | ".join(_cell(cells.get(k), 1 if "length" in k else 3) for k, _ in COLUMNS)
            + " |"
        )
    lines += [
        "",
        "Paired differences against DPO (same seed), mean ± 95% CI half-width:",
        "",
        "| method | " + " | ".join(dict(COLUMNS)[k] for k in PAIRED) + " |",
        "|---|" + "---|" * len(PAIRED),
    ]
    for name, rows in s["paired_vs_dpo"].items():
        label = s["labels"].get(name, name)
        lines.append(
            f"| {label} − DPO | " + " | ".join(_cell(rows.get(k), 1 if "length" in k else 3) for k in PAIRED) + " |"
        )
    return "\n".join(lines) + "\n"


def table_csv(results: dict) -> str:
    s = results["summary"]
    lines = ["method,metric,mean,ci95,count"]
    for key, value in s["sft"].items():
        lines.append(f"sft,{key},{value},,1")
    for name, cells in s["cells"].items():
        for key, stats in cells.items():
            ci = stats["ci95"] if _finite(stats["ci95"]) else ""
            lines.append(f"{name},{key},{stats['mean']},{ci},{stats['count']}")
    return "\n".join(lines) + "\n"


def plot_figure(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    for name, points in s["curves"].items():
        xs = [p["examples_seen"] for p in points]
        ys = [p["mean"] for p in points]
        errors = [p["ci95"] if _finite(p["ci95"]) else 0.0 for p in points]
        left.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=s["labels"].get(name, name))
    left.set_xlabel("preference pairs trained on (0 = SFT)")
    left.set_ylabel("in-distribution reward (constraints followed)")
    left.set_title("Held-out constructed prompts, by iteration")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    names = ["SFT"] + [s["labels"].get(n, n) for n in s["cells"]]
    metric = "ifeval_inst_level_strict_acc"
    values = [s["sft"].get(metric)] + [c.get(metric, {}).get("mean") for c in s["cells"].values()]
    errors = [0.0] + [c.get(metric, {}).get("ci95") or 0.0 for c in s["cells"].values()]
    xs = range(len(names))
    right.bar(
        xs,
        [v if _finite(v) else 0.0 for v in values],
        yerr=[e if _finite(e) else 0.0 for e in errors],
        capsize=3,
        color=["grey"] + ["C0"] * (len(names) - 1),
    )
    right.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=7)
    right.set_ylabel("IFEval instruction-level strict accuracy")
    right.set_title(f"IFEval (541 prompts, {results['settings']['ifeval_max_gen_toks']} new tokens)")
    if not any(_finite(v) for v in values):
        right.text(0.5, 0.5, "IFEval not scored yet", transform=right.transAxes, ha="center", va="center")
    if _finite(s["sft"].get(metric)):
        right.axhline(s["sft"][metric], color="grey", linestyle="--", linewidth=1)
    right.grid(alpha=0.3, axis="y")
    if results["status"] != "complete":
        fig.suptitle("PARTIAL: not every seed and method is done", color="red")
    fig.tight_layout()
    return fig


README_START = "<!-- results: written by report.py from results/instruction_following/results.json -->"
README_END = "<!-- end of results -->"


def _signed(stats: dict, digits: int = 3) -> str:
    text = f"{stats['mean']:+.{digits}f}"
    if _finite(stats.get("ci95")):
        text += f" ± {stats['ci95']:.{digits}f}"
    return text


def _coverage_lines(coverage: dict | None) -> list[str]:
    if not coverage:
        return []
    never = [k for k, v in coverage.items() if v["followed"] == 0]
    samples = sum(v["samples"] for v in coverage.values())
    followed = sum(v["followed"] for v in coverage.values())
    return [
        "",
        (
            f"Coverage: mu's samples followed {followed} of the {samples} constraints they were given "
            f"({followed / samples:.0%}); {len(never)} of the {len(coverage)} kinds of constraint drawn were never "
            f"followed in any sample ({', '.join(f'`{k}`' for k in never)})."
        ),
    ]


def readme_block(results: dict) -> str:
    """The README's results paragraph, every number from `results`: a test checks the README holds exactly this."""
    s = results["summary"]
    done_seeds = sorted({r["seed"] for r in results["runs"]})
    lines = [README_START, ""]
    if results["status"] != "complete":
        lines += [
            (
                f"**Partial**: {len(results['left'])} steps left (seeds done so far: {done_seeds}; IFEval scored "
                f"for {len(results['ifeval'])} models). Resume: `{results['command']}`."
            ),
            "",
        ]
    data = results["settings"]["data"]
    mu = data["mu_sampling"]
    lines += [
        (
            f"Data: {data['counts']['train_pairs']} pairs from {data['counts']['train_prompts']} training prompts "
            f"({data['counts']['prompts_without_pair']} prompts had all {data['settings']['responses_per_prompt']} of "
            "mu's "
            f"responses at the same reward, so no pair); mu's mean reward {data['mu_reward']['mean']:.3f}; mu sampled "
            f"{mu['tokens']} tokens in {mu['seconds']:.0f} s ({mu['tokens_per_second']} tokens/s)."
        ),
        *_coverage_lines(s.get("mu_coverage")),
        "",
        (
            "| method | optimizer steps | final train loss | held-out answers changed vs SFT | in-dist. reward "
            "(final) "
            "| − DPO (paired) | IFEval inst. strict | − DPO (paired) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    sft = s["sft"]
    sft_ifeval = f"{sft['ifeval_inst_level_strict_acc']:.3f}" if "ifeval_inst_level_strict_acc" in sft else "–"
    lines.append(f"| SFT | 0 | | | {sft.get('in_dist_true_reward', float('nan')):.3f} | | {sft_ifeval} | |")
    steps, losses, changed = (
        _final_steps(results),
        _final_values(results, "train_loss"),
        _final_values(results, "prompts_changed_vs_sft", digits=0),
    )
    n_test = len(results["runs"][0]["iterations"]) and data["counts"]["test_prompts"]
    for name, cells in s["cells"].items():
        paired = s["paired_vs_dpo"].get(name, {})
        row = [
            s["labels"].get(name, name),
            steps.get(name, ""),
            losses.get(name, ""),
            f"{changed[name]} of {n_test}" if name in changed else "",
            _cell(cells.get("in_dist_true_reward")),
            _signed(paired["in_dist_true_reward"]) if "in_dist_true_reward" in paired else "",
            _cell(cells.get("ifeval_inst_level_strict_acc")),
            _signed(paired["ifeval_inst_level_strict_acc"]) if "ifeval_inst_level_strict_acc" in paired else "",
        ]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    compute = results["compute_seconds"]
    lines += [
        "",
        (
            f"Compute so far: mu sampling {compute['mu_sampling']:.0f} s, training runs (with their "
            f"in-distribution scoring) {compute['training_runs']:.0f} s, IFEval {compute['ifeval']:.0f} s."
        ),
    ]
    scored = list(results["ifeval"].values())
    if scored:
        tokens = sum(r["generated_tokens"] for r in scored)
        seconds = sum(r["generation_seconds"] for r in scored)
        lines[-1] += (
            f" IFEval generation: {len(scored)} passes of 541 prompts, {tokens} tokens in {seconds:.0f} s "
            f"({tokens / seconds:.1f} tokens/s, greedy, batches of "
            f"{results['settings']['ifeval_batch_size']}, on the machine in `environment`)."
        )
    lines += ["", README_END]
    return "\n".join(lines)


def update_readme(results: dict, readme: Path) -> None:
    text = Path(readme).read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    atomic_write_text(readme, text[:start] + readme_block(results) + text[end:])


# What the results dataset carries, as tasks (the Space ranks models by the mean of their tasks' `mean_over_seeds`).
DATASET_TASKS = {
    "ifeval_inst_level_strict_acc": "ifeval_inst_level_strict_acc",
    "ifeval_prompt_level_strict_acc": "ifeval_prompt_level_strict_acc",
    "in_dist_true_reward": TASKS["instruction_following"].key,
}
MODEL_PREFIX = "smollm2-if/"  # keeps these models apart from the review task's `sft`, `spac-iter3`, ... in the Space


def dataset_rows(results: dict) -> list[dict]:
    """Results-dataset rows in the ground-truth benchmark's shape: the SFT model and every method's final iterate; per
    task of `DATASET_TASKS` the mean over seeds (`stderr`: the standard error across seeds), the 95% CI half-width
    and the seed count. The SFT model is scored once (greedy decoding: the same at every seed). The theory preset is
    a SPAC model (`method` "spac", `variant` "spac_theory", cut to 4 iterations here: its schedule is in
    protocol.json)."""
    summary, settings = results["summary"], results["settings"]
    seeds = len(settings["seeds"])
    rows = []
    models = [("sft", None, 0, {k: {"mean": v, "std": None, "ci95": None, "count": seeds}
                                for k, v in summary["sft"].items()})]  # fmt: skip
    models += [(name, name, settings["per_method"].get(name, {}).get("num_iterations"), cells)
               for name, cells in summary["cells"].items()]  # fmt: skip
    for name, variant, iteration, cells in models:
        method = VARIANTS[variant].method if variant else None  # an arm is a variant of spac_hf.variants
        common = {
            "model": MODEL_PREFIX + name,
            "base_model": settings["base_model"],
            "method": method,
            "variant": variant,
            "iteration": iteration,
        }
        for key, task in DATASET_TASKS.items():
            stats = cells.get(key)
            if stats is not None and _finite(stats["mean"]):
                rows += over_seeds_rows({**common, "task": task}, stats)
    return rows


PROTOCOL_SCORE = "inst_level_strict_acc"  # IFEval, instruction level, strict: the held-out score the contrasts use


def write_protocol(results: dict, out: Path) -> Path:
    """protocol.json: the protocol's view of this run (benchmarks/ground_truth/protocol_view.py), its contrasts on
    IFEval's instruction-level strict accuracy of each arm's last iterate."""
    from benchmarks.ground_truth.runs import config_hash
    from benchmarks.instruction_following.methods import methods

    methods_run = results["settings"]["methods"]
    table = methods(results["settings"]["data"]["counts"]["train_pairs"])
    scores = {}
    for key, record in results["ifeval"].items():
        if "/seed_" in key:
            arm, seed = key.split("/seed_")
            scores[(arm, int(seed))] = record[PROTOCOL_SCORE]
    pairs = [Pair("spac", m) for m in methods_run if m not in ("spac", "spac_theory")]
    pairs += [Pair("spac_theory", m) for m in methods_run if m != "spac_theory"]
    view = protocol_view(
        results,
        regime=f"IFEval {PROTOCOL_SCORE}, {results['settings']['data']['counts']['train_pairs']} pairs",
        pairs=[p for p in pairs if p.a in methods_run],
        score_of=scores,
        score_name=f"IFEval {PROTOCOL_SCORE} (541 held-out prompts) of each arm's last iterate",
        config_hashes_now={m: config_hash(table[m]) for m in methods_run if m in table},
        written_by="python -m benchmarks.instruction_following.report " + Path(out).as_posix(),
    )
    return write_protocol_view(view, out)


def write_report(results: dict, out: Path) -> None:
    out = Path(out)
    if results["runs"]:
        write_protocol(results, out)
    atomic_write_text(out / "table.md", table_markdown(results))
    atomic_write_text(out / "table.csv", table_csv(results))
    save_figure(plot_figure(results), out / "instruction_following.png")
    description = (
        "The instruction-following benchmark of spac-hf: SmolLM2-135M-Instruct (SFT) and its alignment by DPO, "
        "iterative DPO, SPIN and SPAC (defaults and the theory preset) on real prompts with IFEval's verifiable "
        "constraints; IFEval's 541 prompts (held out) and the in-distribution reward (the "
        "`spac-hf/instruction_following_reward` metric). Values are means over seeds (`*_mean_over_seeds`, `stderr` "
        "across seeds), with the 95% CI half-width and the number of seeds. "
        + ("Complete." if results["status"] == "complete" else "PARTIAL: not every seed and method is done yet.")
    )
    save_results_dataset(dataset_rows(results), out / "dataset", dataset_name="spac-hf-instruction-following-results",
                         description=description)  # fmt: skip


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/instruction_following")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    write_report(results, folder)
    update_readme(results, Path(__file__).resolve().parent / "README.md")
    print(
        f"rewrote table.md, table.csv, instruction_following.png, dataset/ and protocol.json in {folder}, and the "
        "README's results"
    )
