"""SPAC, iterative DPO and SPIN side by side on the embedded default: one table and one plot with all three.

    spac-hf compare                                # = make compare = python -m spac_hf.scripts.compare
    spac-hf compare --seed 1 --output-dir outputs/compare-seed1
    spac-hf compare --methods spac dpo             # a subset
    spac-hf compare -- --num_iterations 2          # options after `--` go to every recipe
    spac-hf compare --report-dir results/default   # the committed comparison (recipes/default/README.md)

Each method runs its recipe with the embedded default config (`spac_hf/default/<method>.yaml`), the same data,
model, budget and seed, into `<output-dir>/<method>/`; a finished run is reused, an interrupted one resumes. Then
`<output-dir>/comparison.md` (the true reward of every iterate of every method, the wall time of each run) and
`comparison.png` (one line per method, starting from the SFT model, error bars = 95% interval over the prompts)
are written, and `comparison.json` with the numbers. One seed: the spread over seeds is `benchmarks/ground_truth`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from pathlib import Path

from spac_hf.methods import get_method, method_of_run
from spac_hf.run.budget import run_spend
from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_json, atomic_write_text, read_json, recorded_path


RECIPES = ("spac", "dpo", "spin")  # the recipe scripts; `dpo` with T > 1 iterations is iterative DPO
TIMING_FILE = "compare_timing.json"  # in each run folder: how long the run took when it ran, and the machine's load
Z95 = 1.959964
# How the embedded default's settings were chosen (recipes/default/tuning/search.json, a test ties the count to it):
# one joint search, the same candidates for every method, scored on a validation split of the training prompts.
DEFAULT_TUNING = {
    "trials": 6,
    "how": "the embedded default's joint search (recipes/default/tuning/search.json): 6 candidates of learning "
    "rate, epochs and beta for every method, scored on 150 held-out training prompts",
}
PROTOCOL_KEYS = ("spent", "config_sha256", "tuning_trials", "tuning")  # what the protocol asks of each arm
UNTUNED = "0: options after `--` change the tuned default, which no search covered"


def parse_args(argv: list[str]) -> argparse.Namespace:
    own, passthrough = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], prog="spac-hf compare")
    parser.add_argument("--output-dir", default="outputs/default", help="runs and the comparison go here")
    parser.add_argument("--seed", type=int, default=None, help="the seed of every run (default: the YAMLs', 42)")
    parser.add_argument("--methods", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--report-dir", help="write comparison.{md,png,json} here (default: --output-dir)")
    args = parser.parse_args(own)
    args.passthrough = passthrough
    return args


def run_methods(args: argparse.Namespace) -> dict[str, dict]:
    """Run (or reuse) each method's recipe; returns method -> {"summary", "wall_seconds"}."""
    from spac_hf.scripts.self_play import run_recipe

    runs = {}
    for name in args.methods:
        out = Path(args.output_dir) / name
        recipe_args = ["--output_dir", str(out), *(["--seed", str(args.seed)] if args.seed is not None else [])]
        print(f"\n=== {name}: {out} ===", flush=True)
        fresh, started, cpu_started = not (out / "summary.json").exists(), time.perf_counter(), time.process_time()
        load_before = os.getloadavg()[0]
        result = run_recipe(name, [*recipe_args, *args.passthrough])
        if fresh:  # the time of the run itself, kept beside it: a later comparison reusing the run reports it too
            atomic_write_json(
                out / TIMING_FILE,
                {
                    "wall_seconds": round(time.perf_counter() - started, 1),
                    "cpu_seconds": round(time.process_time() - cpu_started, 1),
                    "load_average": [load_before, os.getloadavg()[0]],
                },
            )
        timing = read_json(out / TIMING_FILE, {"wall_seconds": None, "load_average": None})
        spent = {
            **run_spend(result.summary, out),
            "wall_s": timing["wall_seconds"],
            "cpu_s": timing.get("cpu_seconds"),
        }
        runs[name] = {
            "summary": result.summary,
            "output_dir": str(out),
            **timing,
            "spent": spent,
            **run_protocol(name, args.passthrough),
        }
    return runs


def run_protocol(recipe: str, passthrough: list[str]) -> dict:
    """What the protocol asks a comparison to record of an arm besides its spend: the hash of its config (the
    embedded YAML; options after `--` are recorded beside it) and the tuning trials its settings came from."""
    config = EMBEDDED_DEFAULT / f"{get_method(recipe).paper.key}.yaml"  # the base config `run_recipe` parses
    tuned = not passthrough
    return {
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest()[:16],
        "tuning_trials": DEFAULT_TUNING["trials"] if tuned else 0,
        "tuning": DEFAULT_TUNING["how"] if tuned else UNTUNED,
    }


def comparison_rows(runs: dict[str, dict]) -> dict[str, dict]:
    """method -> {label, task, points: [{iteration, mean, stderr, degenerate_fraction}], wall_seconds, output_dir}."""
    rows = {}
    for name, run in runs.items():
        summary = run["summary"]
        evaluations = summary.get("evaluations", {})
        tasks = sorted({task for e in evaluations.values() for task in e.get("results", {})})
        if len(tasks) != 1:
            raise ValueError(f"{name}: the comparison needs exactly one true-reward task per run, got {tasks}")
        points = [
            {
                "iteration": int(t),
                "mean": e["results"][tasks[0]]["mean"],
                "stderr": e["results"][tasks[0]].get("mean_stderr"),
                "degenerate_fraction": e.get("degenerate_fraction"),
            }
            for t, e in sorted(evaluations.items(), key=lambda item: int(item[0]))
        ]
        method = method_of_run(summary["method"], len(summary["iterates"]))
        rows[name] = {
            "method": method.name,
            "label": method.label,
            "task": tasks[0],
            "points": points,
            "wall_seconds": run["wall_seconds"],
            "load_average": run.get("load_average"),
            "output_dir": recorded_path(run["output_dir"]),
            **{key: run[key] for key in PROTOCOL_KEYS if key in run},
        }
    return rows


def comparison_markdown(rows: dict[str, dict], seed) -> str:
    iterations = sorted({p["iteration"] for r in rows.values() for p in r["points"]})
    labels = [r["label"] for r in rows.values()]
    task = next(iter(rows.values()))["task"]
    lines = [
        "# SPAC vs DPO vs SPIN on the embedded default",
        "",
        f"Mean true reward (`{task}`) on the held-out prompts ± its 95% CI (1.96 standard errors over the prompts); "
        f"seed {seed}. Iteration 0 is the SFT model every method starts from.",
        "",
        "| model | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for t in iterations:
        cells = []
        for r in rows.values():
            point = next((p for p in r["points"] if p["iteration"] == t), None)
            if point is None:
                cells.append("")
                continue
            text = f"{point['mean']:.3f} ± {_ci95(point['stderr']):.3f}"
            if (point.get("degenerate_fraction") or 0) >= 0.005:
                text += f" ({point['degenerate_fraction']:.0%} degenerate)"
            cells.append(text)
        lines.append(f"| {'SFT model' if t == 0 else f'iterate {t}'} | " + " | ".join(cells) + " |")
    lines += ["", "| run | output folder | wall time (load average before, after) |", "|---|---|---|"]
    for r in rows.values():
        seconds = "not recorded" if r["wall_seconds"] is None else f"{r['wall_seconds']:.0f} s"
        load = f" ({r['load_average'][0]:.1f}, {r['load_average'][1]:.1f})" if r.get("load_average") else ""
        lines.append(f"| {r['label']} | `{r['output_dir']}` | {seconds}{load} |")
    lines += ["", "![true reward by iteration](comparison.png)"]
    return "\n".join(lines) + "\n"


def _ci95(stderr) -> float:
    """The half-width of a 95% normal interval: the one uncertainty every table and plot of spac-hf shows."""
    return Z95 * stderr if stderr is not None and math.isfinite(stderr) else 0.0


def comparison_figure(rows: dict[str, dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spac_hf.methods import METHODS

    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
    for r in rows.values():
        xs = [p["iteration"] for p in r["points"]]
        ys = [p["mean"] for p in r["points"]]
        errors = [_ci95(p["stderr"]) for p in r["points"]]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=r["label"], color=METHODS[r["method"]].colour)
    ax.set_xlabel("iteration (0 = the SFT model)")
    ax.set_ylabel(f"mean true reward ({next(iter(rows.values()))['task']})")
    ax.set_title("SPAC vs DPO vs SPIN on the embedded default")
    ax.set_xticks(sorted({p["iteration"] for r in rows.values() for p in r["points"]}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="error bars: 95% CI", title_fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    rows = comparison_rows(run_methods(args))
    out = Path(args.report_dir or args.output_dir)
    seed = (
        args.seed
        if args.seed is not None
        else read_json(Path(args.output_dir) / args.methods[0] / "self_play_run.json", {}).get("seed", "of the YAMLs")
    )
    command = " ".join(["spac-hf compare", *(argv if argv is not None else sys.argv[1:])])
    atomic_write_json(
        out / "comparison.json", {"command": command, "seed": seed, "methods": rows, "passthrough": args.passthrough}
    )
    atomic_write_text(out / "comparison.md", comparison_markdown(rows, seed))
    save_figure(comparison_figure(rows), out / "comparison.png")
    print(
        f"\n{comparison_markdown(rows, seed)}\nWrote {out / 'comparison.md'}, {out / 'comparison.png'} and "
        f"{out / 'comparison.json'}; the runs are in {', '.join(r['output_dir'] for r in rows.values())}."
    )
    return rows


if __name__ == "__main__":
    from spac_hf.scripts.arguments import run_with_clean_errors

    run_with_clean_errors(main)
