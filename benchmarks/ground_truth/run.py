"""The ground-truth benchmark: SFT, DPO, iterative DPO, SPIN and SPAC on the shipped reviews task, several seeds.

    python -m benchmarks.ground_truth.run                   # the committed run: 5 seeds, about 6 min on 2 CPU cores
    python -m benchmarks.ground_truth.run --seeds 8         # 3 more seeds; seeds 0-4 are reused from the first run
    python -m benchmarks.ground_truth.run --quick           # seconds: 2 seeds, DPO and SPAC, tiny budget (tests)
    python -m benchmarks.ground_truth.run -- --true_reward_samples 4      # recipe overrides, for every method

Each (method, seed) is one run of the recipe code path on its embedded default (`recipes/default/<recipe>.yaml`),
in `<work-dir>/<method>/seed_<seed>/`; a finished run is reused. Writes results.json (every per-seed, per-iteration
number, the settings and the machine), table.md, table.csv, true_reward.png and dataset/ (Hub layout) to --out.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path


# Before torch is imported: the model is tiny and the 2 cores are shared, so a second OpenMP thread mostly waits
# (one thread ran a SPAC run in 49 s, two in 67 s, on the loaded machine); passive waiting stops spinning threads
# from stealing the other processes' cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from spac_hf.hub import check_repo_id, push_folder
from spac_hf.utils import (
    atomic_write_json,
    environment_info,
    torch_threads,
)

from benchmarks.ground_truth.coverage import coverage_name, ensure_coverage_data
from benchmarks.ground_truth.methods import METHODS, REPO_ROOT
from benchmarks.ground_truth.report import write_report
from benchmarks.ground_truth.runs import declare_comparison, run_method
from benchmarks.ground_truth.stats import (
    final_paired_differences,
    gains_over_sft,
    method_cells,
    paired_differences,
    sft_by_seed,
)


QUICK = {
    "seeds": 2,  # two, so that the confidence intervals exist
    "methods": ["dpo", "spac"],
    # 64 pairs: one pass for DPO and 2 x 32 for SPAC are 4 optimizer steps each (batch 16, 1 epoch): equal budgets.
    "overrides": ["--max_train_samples", "64", "--num_iterations", "2", "--true_reward_prompts", "10",
                  "--true_reward_samples", "1", "--max_new_tokens", "16", "--num_train_epochs", "1"],
}  # fmt: skip
# Settings that must be equal across methods for "the same budget" to hold; checked on the parsed arguments.
SAME_BUDGET_KEYS = ("model_name_or_path", "learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs",
                    "per_device_train_batch_size", "gradient_accumulation_steps", "optim", "beta", "max_length",
                    "true_reward_prompts", "true_reward_samples", "max_train_samples")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds, 0..N-1 (default 5; --quick: 2)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None, help="default: all four")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default results/ground_truth)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the runs (models, generations) go (default outputs/ground_truth)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help=f"tiny run for the tests: {QUICK}")
    parser.add_argument(
        "--coverage",
        nargs=2,
        metavar=("GOOD_MASS", "RARE"),
        default=None,
        help="train on pairs from a behaviour policy with this mass on one good response per prompt "
        "and RARE rare responses (benchmarks/ground_truth/coverage.py) instead of the shipped pairs",
    )
    parser.add_argument(
        "--push-to-hub",
        metavar="DATASET_ID",
        default=None,
        help="also upload the results dataset (`dataset/`) to this Hub dataset repo when done",
    )
    args = parser.parse_args(own)
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)  # before any run, not after ten minutes
    suffix = "_quick" if args.quick else ""
    if args.coverage:  # its own runs and results: never mixed with the shipped data's
        good_mass, rare = float(args.coverage[0]), int(args.coverage[1])
        args.coverage = {"good_mass": good_mass, "rare": rare}
        suffix += "_" + coverage_name(good_mass, rare)
    args.seeds = args.seeds if args.seeds is not None else (QUICK["seeds"] if args.quick else 5)
    args.methods = args.methods or (QUICK["methods"] if args.quick else list(METHODS))
    args.methods = [m for m in METHODS if m in args.methods]  # a fixed order: the table and the plot follow it
    default_out = "outputs/ground_truth_quick/report" if args.quick else f"results/ground_truth{suffix}"
    args.out = args.out or REPO_ROOT / default_out
    args.work_dir = args.work_dir or REPO_ROOT / f"outputs/ground_truth{suffix}"
    args.overrides = (QUICK["overrides"] if args.quick else []) + overrides
    if args.coverage:
        data = ensure_coverage_data(args.work_dir, args.coverage["good_mass"], args.coverage["rare"])
        args.overrides = ["--dataset_name", str(data), *args.overrides]
    args.argv = argv
    return args


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run_all(args: argparse.Namespace) -> tuple[list[dict], int]:
    """Every (seed, method) run, seed by seed (an interrupted benchmark leaves whole seeds behind). Returns the run
    records and how many were reused."""
    jobs = [(seed, name) for seed in range(args.seeds) for name in args.methods]
    records, reused, fresh_seconds, started = [], 0, [], time.perf_counter()
    for index, (seed, name) in enumerate(jobs, start=1):
        print(f"\n[{index}/{len(jobs)}] {METHODS[name].label}, seed {seed}: starting", flush=True)
        record, was_reused = run_method(METHODS[name], seed, args.work_dir, args.overrides)
        records.append(record)
        scores = " ".join(f"{r['true_reward']:.3f}" for r in record["iterations"])
        if was_reused:
            reused += 1
            status = "reused a finished run"
        else:
            fresh_seconds.append(record["wall_seconds"])
            status = f"done in {record['wall_seconds']:.0f} s"
        remaining = (len(jobs) - index) * (sum(fresh_seconds) / len(fresh_seconds)) if fresh_seconds else 0.0
        elapsed = _minutes(time.perf_counter() - started)
        print(
            f"[{index}/{len(jobs)}] {METHODS[name].label}, seed {seed}: {status}; true reward by iteration: "
            f"{scores}; elapsed {elapsed}, about {_minutes(remaining)} left",
            flush=True,
        )
    return records, reused


def budget_check(records: list[dict]) -> dict:
    """Each same-budget setting's values across all runs (one value each when the claim holds), and the optimizer steps
    and pairs seen at each method's last iterate."""
    values = {key: sorted({str(r["settings"].get(key)) for r in records}) for key in SAME_BUDGET_KEYS}
    final = {}
    for record in records:
        last = record["iterations"][-1]
        final.setdefault(record["method"], set()).add((last["examples_seen"], last["optimizer_steps"]))
    return {
        "settings": values,
        "all_equal": all(len(v) == 1 for v in values.values()),
        "final_pairs_and_steps": {m: sorted(v) for m, v in final.items()},
    }


def _json_safe(value):
    """NaN (a CI from one seed) is not JSON: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # Before any run: equal budgets, equal trials, a decision rule.
    declare_comparison("ground_truth", {m: METHODS[m] for m in args.methods}, args.seeds, args.overrides).validate()
    started = time.perf_counter()
    with torch_threads(args.threads):
        records, reused = run_all(args)
    cells = method_cells(records)
    baselines = [m for m in args.methods if m not in ("spac", "spac_theory")]
    sft = sft_by_seed(records)
    summary = {
        "seeds": list(range(args.seeds)),
        "sft": sft,
        "cells": cells,
        "paired": paired_differences(cells, "spac", baselines) if "spac" in args.methods else [],
        "paired_final": [
            row
            for subject in ("spac", "spac_theory")
            for row in final_paired_differences(
                records, subject, [m for m in args.methods if m not in ("spac", "spac_theory")]
            )
        ],
        "gains_over_sft": gains_over_sft(cells, sft),
    }
    check = budget_check(records)
    if not check["all_equal"]:
        print(f"WARNING: the methods do not share the same budget settings: {check['settings']}", flush=True)
    first = records[0]["settings"]
    results = _json_safe(
        {
            "benchmark": "ground_truth",
            "command": " ".join(["python", "-m", "benchmarks.ground_truth.run", *args.argv]),
            "settings": {
                "seeds": summary["seeds"],
                "methods": args.methods,
                "coverage": args.coverage,
                "overrides": args.overrides,
                "base_model": first["model_name_or_path"],
                "true_reward_task": first["true_reward_task"],
                "true_reward_prompts": first["true_reward_prompts"],
                "true_reward_samples": first["true_reward_samples"],
                "threads": args.threads,
                "per_method": {
                    r["method"]: {"recipe_args": r["recipe_args"], **r["settings"]} for r in records if r["seed"] == 0
                },
                "budget_check": check,
            },
            "summary": summary,
            "runs": records,
            "runtime_seconds": round(time.perf_counter() - started, 1),
            "runs_reused": reused,
            "compute_seconds_of_all_runs": round(sum(r["wall_seconds"] for r in records), 1),
            "environment": environment_info(),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    write_report(results, args.out)
    if args.push_to_hub:
        print(
            f"Pushed the results dataset: {push_folder(args.out / 'dataset', args.push_to_hub, repo_type='dataset')}"
        )
    print(
        f"\nwrote {args.out}/results.json, table.md, table.csv, true_reward.png, dataset/ in "
        f"{_minutes(results['runtime_seconds'])} ({reused} of {len(records)} runs reused)",
        flush=True,
    )
    return results


if __name__ == "__main__":
    main()
