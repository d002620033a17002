"""How the embedded default's learning rate, epochs and beta were chosen: a small grid, scored on a validation split.

The validation split is carved out of the shipped *training* pairs (`data/tuning/`): 150 of the 810 training prompts
are held out and the other 660 pairs are trained on, in three thirds as the default does. The 150 test prompts
(`data/test.jsonl`) are never used here; they only score the chosen setting afterwards (`benchmarks/ground_truth`).

Each candidate is one run of the ground-truth benchmark (`benchmarks.ground_truth.run`, the recipe code path on
the default YAMLs) with the candidate's flags and the tuning data as overrides, for iterative DPO, SPIN and SPAC over
a few seeds. A candidate is scored by its worst case: the lowest gain over the starting model of any iterate of any
method and seed (the default must never fall below the model it starts from), then by the mean gain of the last
iterates; a candidate with a degenerate collapse (more than 5% degenerate answers in any iterate) is ruled out.

    python -m benchmarks.default_tuning.run --build-split   # data/tuning/ from data/train.jsonl (deterministic)
    OMP_NUM_THREADS=1 nice python -m benchmarks.default_tuning.run --seeds 2   # screening -> recipes/default/tuning/
    python -m benchmarks.ground_truth.run --seeds 5 --methods iterative_dpo spin spac --threads 1 \
        --out recipes/default/tuning/confirmation                    # the chosen setting, 5 seeds, test prompts
    python -m benchmarks.default_tuning.run --degenerate   # each confirmation run's largest degenerate share
    python -m benchmarks.default_tuning.run --readme       # the tables of recipes/default/README.md, from those files
    python -m benchmarks.ground_truth.report recipes/default/tuning/confirmation \
        --tuning-search recipes/default/tuning/search.json  # the confirmation's protocol.json (trials: the search)
    python -m benchmarks.default_tuning.run --protocol     # results/default/protocol.json (spac-hf compare, one seed)

Runs resume (each candidate's runs live in `outputs/default_tuning/<candidate>/`); `search.json` and `search.md` are
rewritten after every candidate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

from spac_hf.scripts import EMBEDDED_DEFAULT


ROOT = Path(__file__).resolve().parents[2]
DATA = EMBEDDED_DEFAULT / "data"
TUNING_DATA = DATA / "tuning"
RESULTS = ROOT / "recipes" / "default" / "tuning"  # the recipe's record of how its settings were chosen
VALIDATION_PROMPTS = 150
SPLIT_SEED = 0
METHODS = ("iterative_dpo", "spin", "spac")
DEGENERATE_LIMIT = 0.05

# (learning rate, epochs per iteration, beta). The first is the old default (5e-4, 1 epoch, beta 0.1), which
# zig-zagged; the others trade step size for stability (a smaller learning rate, more epochs at it, a larger beta
# keeping each iterate closer to its reference).
CANDIDATES = (
    (5e-4, 1, 0.1),
    (2e-4, 1, 0.1),
    (2e-4, 2, 0.1),
    (1e-4, 3, 0.1),
    (5e-4, 1, 0.5),
    (2e-4, 2, 0.5),
)


def candidate_name(lr: float, epochs: int, beta: float) -> str:
    return f"lr{lr:g}_ep{epochs}_beta{beta:g}"


def build_split() -> dict:
    """data/tuning/{train,validation}.jsonl: 150 training prompts held out (seeded), the rest kept in file order."""
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines() if line.strip()]
    test_prompts = {json.loads(line)["prompt"] for line in (DATA / "test.jsonl").read_text().splitlines() if line}
    prompts = sorted({r["prompt"] for r in rows})
    held_out = set(random.Random(SPLIT_SEED).sample(prompts, VALIDATION_PROMPTS))
    splits = {
        "train": [r for r in rows if r["prompt"] not in held_out],
        "validation": [r for r in rows if r["prompt"] in held_out],
    }
    assert not test_prompts & {r["prompt"] for r in rows}, "the training prompts overlap the test prompts"
    TUNING_DATA.mkdir(parents=True, exist_ok=True)
    from spac_hf.utils import atomic_write_text

    for split, split_rows in splits.items():
        atomic_write_text(TUNING_DATA / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in split_rows))
    return {split: len(split_rows) for split, split_rows in splits.items()}


def score_candidate(results: dict) -> dict:
    """Per method: each seed's gains over its starting model by iteration, the worst gain, the last iterate's gain, and
    the largest degenerate fraction; then the candidate's worst gain and mean final gain over all methods."""
    from spac_hf.utils import read_json

    from benchmarks.ground_truth.runs import run_folder_of

    per_method = {}
    for run in results["runs"]:
        summary = read_json(run_folder_of(run) / "summary.json", {})
        degenerate = [e.get("degenerate_fraction", 0.0) for t, e in summary.get("evaluations", {}).items() if t != "0"]
        rewards = [r["true_reward"] for r in run["iterations"]]
        gains = [round(r - rewards[0], 4) for r in rewards[1:]]
        entry = per_method.setdefault(run["method"], {"seeds": {}})
        entry["seeds"][str(run["seed"])] = {
            "true_reward": [round(r, 4) for r in rewards],
            "gains": gains,
            "max_degenerate_fraction": max(degenerate, default=0.0),
        }
    for entry in per_method.values():
        seeds = entry["seeds"].values()
        entry["worst_gain"] = min(g for s in seeds for g in s["gains"])
        entry["mean_final_gain"] = round(sum(s["gains"][-1] for s in seeds) / len(seeds), 4)
        entry["max_degenerate_fraction"] = max(s["max_degenerate_fraction"] for s in seeds)
    return {
        "methods": per_method,
        "worst_gain": min(e["worst_gain"] for e in per_method.values()),
        "mean_final_gain": round(sum(e["mean_final_gain"] for e in per_method.values()) / len(per_method), 4),
        "collapsed": any(e["max_degenerate_fraction"] > DEGENERATE_LIMIT for e in per_method.values()),
        "wall_seconds_per_run": {r["method"]: r["wall_seconds"] for r in results["runs"] if r["seed"] == 0},
    }


def choose(scored: dict) -> str | None:
    """Among candidates without a collapse, the best worst-case gain, ties (within 0.01) broken by the final gain."""
    ok = {name: s for name, s in scored.items() if not s["collapsed"]}
    if not ok:
        return None
    best_worst = max(s["worst_gain"] for s in ok.values())
    close = {name: s for name, s in ok.items() if s["worst_gain"] >= best_worst - 0.01}
    return max(close, key=lambda name: close[name]["mean_final_gain"])


def write_report(search: dict) -> None:
    from spac_hf.utils import atomic_write_json, atomic_write_text

    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "search.json", search)
    lines = [
        "# Tuning the embedded default on the validation split",
        "",
        f"Command: `{search['command']}`. Validation: {search['split']['validation']} held-out training prompts; "
        f"training: the other {search['split']['train']} pairs in three thirds; seeds {search['seeds']}. "
        "Gain = an iterate's true reward minus its starting model's (same seed).",
        "",
        "| candidate | worst gain | mean final gain | "
        + " | ".join(f"{m} final gain" for m in METHODS)
        + " | max degenerate | chosen |",
        "|" + "---|" * (5 + len(METHODS)),
    ]
    for name, s in search["candidates"].items():
        finals = [f"{s['methods'][m]['mean_final_gain']:+.3f}" if m in s["methods"] else "" for m in METHODS]
        degenerate = max(e["max_degenerate_fraction"] for e in s["methods"].values())
        lines.append(
            f"| {name} | {s['worst_gain']:+.3f} | {s['mean_final_gain']:+.3f} | "
            + " | ".join(finals)
            + f" | {degenerate:.0%} | {'**yes**' if name == search.get('chosen') else ''} |"
        )
    atomic_write_text(RESULTS / "search.md", "\n".join(lines) + "\n")


CONFIRMATION = RESULTS / "confirmation" / "results.json"
COMPARISON = ROOT / "results" / "default" / "comparison.json"
LABELS = {"iterative_dpo": "iterative DPO", "spin": "SPIN", "spac": "SPAC"}


def record_degenerate() -> list[dict]:
    """`confirmation/degenerate.jsonl`: per confirmation run, the largest share of degenerate answers of any iterate
    (the benchmark's results.json keeps the rewards only; the runs' own summaries have the shares)."""
    from spac_hf.utils import atomic_write_text, read_json

    from benchmarks.ground_truth.runs import run_folder_of

    results = json.loads(CONFIRMATION.read_text())
    rows = []
    for run in results["runs"]:
        evaluations = read_json(run_folder_of(run) / "summary.json", {})["evaluations"]
        shares = [e.get("degenerate_fraction", 0.0) for t, e in evaluations.items() if t != "0"]
        rows.append({"method": run["method"], "seed": run["seed"], "max_degenerate_fraction": max(shares)})
    atomic_write_text(CONFIRMATION.parent / "degenerate.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def readme_tables() -> str:
    """The numbers of recipes/default/README.md, rendered from the committed result files (a test compares them)."""
    search = json.loads((RESULTS / "search.json").read_text())
    chosen = search["candidates"][search["chosen"]]
    lines = [
        f"Chosen on validation: learning rate {chosen['learning_rate']:g}, {chosen['num_train_epochs']} epochs per "
        f"iteration, beta {chosen['beta']:g} ({len(search['candidates'])} candidates, seeds {search['seeds']}; "
        f"worst gain of any iterate over its SFT model {chosen['worst_gain']:+.3f}).",
    ]
    if CONFIRMATION.exists():
        results = json.loads(CONFIRMATION.read_text())
        sft = results["summary"]["sft"]
        lines += ["", "| method | SFT model | iterate 1 | iterate 2 | iterate 3 |", "|---|---|---|---|---|"]
        for method in results["settings"]["methods"]:
            cells = sorted(
                (c for c in results["summary"]["cells"] if c["method"] == method), key=lambda c: c["iteration"]
            )
            lines.append(
                f"| {LABELS.get(method, method)} | {sft['mean']:.3f} ± {sft['ci95']:.3f} | "
                + " | ".join(f"{c['mean']:.3f} ± {c['ci95']:.3f}" for c in cells)
                + " |"
            )
        lines += ["", "| method | seed | true reward: SFT / iterate 1 / 2 / 3 |", "|---|---|---|"]
        order = results["settings"]["methods"]
        for run in sorted(results["runs"], key=lambda r: (order.index(r["method"]), r["seed"])):
            rewards = " / ".join(f"{r['true_reward']:.3f}" for r in run["iterations"])
            lines.append(f"| {run['method']} | {run['seed']} | {rewards} |")
        worst = min(
            r["true_reward"] - run["iterations"][0]["true_reward"]
            for run in results["runs"]
            for r in run["iterations"][1:]
        )
        lines += ["", f"Lowest gain of any iterate over its SFT model, any method and seed: {worst:+.3f}."]
    if COMPARISON.exists():
        comparison = json.loads(COMPARISON.read_text())
        times = ", ".join(f"{m['label']} {m['wall_seconds']:.0f} s" for m in comparison["methods"].values())
        lines += ["", f"Wall time of one run (`{comparison['command']}`, one process, 2 shared cores): {times}."]
    return "\n".join(lines) + "\n"


def comparison_protocol() -> dict:
    """results/default/protocol.json: the protocol's view of the one-seed `spac-hf compare` run (comparison.json).

    comparison.json records each arm's true reward per iterate and its wall time, not its optimizer steps, pairs,
    config or seeds beyond one: those fields say "not recorded", no spend can be checked, and one seed gives no
    paired interval, so no contrast is decided."""
    from spac_hf.utils import atomic_write_json
    from spac_hf.variants import VARIANTS

    from benchmarks.ground_truth.protocol_view import NOT_RECORDED, PROTOCOL_FILE
    from benchmarks.protocol import Spent

    comparison = json.loads(COMPARISON.read_text())
    arms = {}
    for row in comparison["methods"].values():
        spent = {f.name: NOT_RECORDED for f in dataclasses.fields(Spent)}
        spent["wall_s"] = row.get("wall_seconds") if row.get("wall_seconds") is not None else NOT_RECORDED
        # Newer comparison.json files hold the protocol's fields (`spac-hf compare` records them: spac_hf.run.budget).
        spent.update({key: value for key, value in row.get("spent", {}).items() if value is not None})
        arms[row["method"]] = {
            "variant": row["method"],
            "label": VARIANTS[row["method"]].label,
            "spent": spent,
            "tuning_trials": row.get("tuning_trials", NOT_RECORDED),
            "tuning": row.get(
                "tuning",
                "not recorded: comparison.json names no config (the embedded default's YAMLs were tuned by a "
                "joint search, recipes/default/tuning/search.json, but this file does not say which YAMLs ran)",
            ),
            "seeds": [comparison["seed"]],
            "config_sha256": row.get("config_sha256", NOT_RECORDED),
        }
    recorded = all(arm["spent"]["optimizer_steps"] != NOT_RECORDED for arm in arms.values())
    contrasts = [("spac", b) for b in arms if b != "spac"] if "spac" in arms else []
    view = {
        "benchmark": "spac-hf compare (the embedded default, one seed)",
        "source": "comparison.json (this folder)",
        "written_by": "python -m benchmarks.default_tuning.run --protocol",
        "regime": "reviews, the embedded default",
        "score": "true_reward: the mean true reward on the held-out test prompts",
        "declared_budget": NOT_RECORDED,
        "checkpoint_rule": "last: each arm's last iterate (no validation split recorded)",
        "arms": arms,
        "spent_flags": [
            "not checked: no budget was declared (each arm's spend is above)"
            if recorded
            else "not checked: no arm's optimizer steps or pairs seen are recorded"
        ],
        "validate": [
            f"test_seeds: need at least 2 distinct seeds for an interval, got ({comparison['seed']},)",
            *([] if recorded else ["tuning trials not recorded"]),
            "contrasts: none declared when it ran",
        ],
        "decisions": [
            {
                "regime": "reviews, the embedded default",
                "checkpoint_rule": "last",
                "a_arm": a,
                "b_arm": b,
                "seeds": [comparison["seed"]],
                "line": f"{VARIANTS[a].label} minus {VARIANTS[b].label}: no decision (1 paired seed; decide needs 2)",
            }
            for a, b in contrasts
        ],
    }
    atomic_write_json(COMPARISON.parent / PROTOCOL_FILE, view)
    return view


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-split", action="store_true", help="rewrite data/tuning/ and stop")
    parser.add_argument("--readme", action="store_true", help="print the tables of recipes/default/README.md")
    parser.add_argument("--degenerate", action="store_true", help="write confirmation/degenerate.jsonl")
    parser.add_argument("--protocol", action="store_true", help="write results/default/protocol.json and stop")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--candidates", nargs="*", help="names to run (default: all), e.g. lr0.0002_ep2_beta0.1")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "default_tuning")
    args = parser.parse_args(argv)
    if args.build_split:
        print(build_split())
        return {}
    if args.degenerate:
        print(record_degenerate())
        return {}
    if args.protocol:
        print(json.dumps(comparison_protocol()["decisions"], indent=1))
        return {}
    if args.readme:
        print(readme_tables(), end="")
        return {}
    from benchmarks.ground_truth.run import main as run_benchmark

    split = {s: sum(1 for _ in open(TUNING_DATA / f"{s}.jsonl")) for s in ("train", "validation")}
    previous = json.loads((RESULTS / "search.json").read_text()) if (RESULTS / "search.json").exists() else {}
    search = {
        "command": "python -m benchmarks.default_tuning.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "split": split,
        "seeds": list(range(args.seeds)),
        "methods": list(METHODS),
        "candidates": previous.get("candidates", {}) if previous.get("seeds") == list(range(args.seeds)) else {},
    }
    for lr, epochs, beta in CANDIDATES:
        name = candidate_name(lr, epochs, beta)
        if args.candidates and name not in args.candidates:
            continue
        started = time.perf_counter()
        results = run_benchmark(
            [
                "--seeds",
                str(args.seeds),
                "--methods",
                *METHODS,
                "--threads",
                "1",
                "--work-dir",
                str(args.work_dir / name),
                "--out",
                str(args.work_dir / name / "report"),
                "--",
                "--dataset_config",
                "tuning",
                "--dataset_test_split",
                "validation",
                "--learning_rate",
                f"{lr:g}",
                "--num_train_epochs",
                str(epochs),
                "--beta",
                f"{beta:g}",
            ]
        )
        search["candidates"][name] = {
            "learning_rate": lr,
            "num_train_epochs": epochs,
            "beta": beta,
            **score_candidate(results),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        search["chosen"] = choose(search["candidates"])
        write_report(search)
        print(
            f"{name}: worst gain {search['candidates'][name]['worst_gain']:+.3f}, "
            f"mean final gain {search['candidates'][name]['mean_final_gain']:+.3f}; chosen so far: "
            f"{search['chosen']}",
            flush=True,
        )
    return search


if __name__ == "__main__":
    main()
