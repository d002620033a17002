"""The instruction-following benchmark: SmolLM2-135M-Instruct aligned by DPO, iterative DPO, SPIN and SPAC (library
defaults and the theory preset) on real prompts with verifiable constraints, scored by IFEval and an
in-distribution reward, several seeds.

    python -m benchmarks.instruction_following.run                 # the CPU configuration, 3 seeds (hours: resumable)
    python -m benchmarks.instruction_following.run --seeds 5       # 2 more seeds; finished runs are reused
    python -m benchmarks.instruction_following.run --gpu           # the paper-like configuration, for a GPU
    python -m benchmarks.instruction_following.run -- --learning_rate 2e-5     # recipe overrides, for every method

Steps, in the order that gives the most informative numbers first: the preference data (mu = the SFT model sampling K
responses per prompt), then seed 0 of every method (per-iteration in-distribution reward), IFEval of the SFT model,
IFEval of every method's final iterate at seed 0, then the next seed. Every step is reused once finished and resumes
when interrupted; results.json, table.md, table.csv and instruction_following.png are rewritten after every step, so
an interrupted benchmark leaves a report marked partial that says what is left.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


# Before torch is imported: the 2 cores are shared (see benchmarks/ground_truth/run.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from spac_hf.scripts.console import quiet_libraries
from spac_hf.utils import atomic_write_json, environment_info, read_json, recorded_path, torch_threads

from benchmarks.ground_truth.run import _json_safe
from benchmarks.ground_truth.runs import declare_comparison
from benchmarks.instruction_following import stats
from benchmarks.instruction_following.ifeval import CPU_MAX_GEN_TOKS, LEADERBOARD_MAX_GEN_TOKS, run_ifeval
from benchmarks.instruction_following.methods import METHOD_NAMES, REPO_ROOT, methods, theory_preset_args
from benchmarks.instruction_following.report import write_report
from benchmarks.instruction_following.runs import final_iterate, ifeval_record, train


DEFAULT_MODEL = "outputs/smollm2/model"  # recipes/smollm2/convert.py writes it
# The CPU configuration, sized for 2 cores shared by many jobs (this machine gave one job a fifth of a core at times):
# short prompts (at most 96 tokens with the chat template), 4 samples of at most 48 tokens per prompt, 64 training
# prompts (pairs from those whose samples differ in reward), 32 held-out prompts, IFEval at the leaderboard's 1280
# new tokens. Self-play generation and IFEval run on the CTranslate2 engine in float32 (greedy texts equal to
# `generate`'s, several times faster here: benchmarks/cost/README.md). The committed results predate it: they were
# made with `generate` and IFEval at CPU_MAX_GEN_TOKS (128), as their settings record.
CPU = {
    "data": {"num_train": 64, "num_test": 32, "responses_per_prompt": 4, "max_new_tokens": 48,
             "max_prompt_tokens": 96, "batch_size": 64},
    "ifeval_max_gen_toks": LEADERBOARD_MAX_GEN_TOKS,
    "ifeval_batch_size": 64,
    "ifeval_backend": "ctranslate2",
    "overrides": ["--max_new_tokens", "48", "--true_reward_max_new_tokens", "48", "--true_reward_prompts", "32",
                  "--max_length", "160", "--generation_backend", "ctranslate2"],
}  # fmt: skip
# The paper-like configuration for one GPU: every prompt that fits, 8 samples of up to 512 tokens, IFEval as the
# leaderboard runs it (1280 new tokens), bf16, longer self-play responses.
GPU = {
    "data": {"num_train": 1300, "num_test": 200, "responses_per_prompt": 8, "max_new_tokens": 512,
             "max_prompt_tokens": 512, "batch_size": 128},
    "ifeval_max_gen_toks": LEADERBOARD_MAX_GEN_TOKS,
    "ifeval_batch_size": 128,
    "ifeval_backend": "hf",
    "overrides": ["--use_cpu", "false", "--bf16", "true", "--max_length", "1024", "--max_new_tokens", "512",
                  "--true_reward_max_new_tokens", "512", "--true_reward_prompts", "200",
                  "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "4",
                  "--generation_batch_size", "128"],
}  # fmt: skip
QUICK_OVERRIDES = ["--num_iterations", "2", "--true_reward_prompts", "4", "--max_new_tokens", "8",
                   "--true_reward_max_new_tokens", "8", "--max_length", "512", "--logging_steps", "1"]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    parser.add_argument("--methods", nargs="+", choices=METHOD_NAMES, default=list(METHOD_NAMES))
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the SFT model, also mu (default: %(default)s)")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default results/instruction_following)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the data, runs and IFEval generations go (default outputs/instruction_following)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="an existing data set folder (python -m benchmarks.instruction_following.data) instead of "
        "building <work-dir>/data",
    )
    parser.add_argument("--gpu", action="store_true", help="the paper-like configuration (see GPU in this file)")
    parser.add_argument(
        "--ifeval-max-gen-toks",
        type=int,
        default=None,
        help=f"IFEval's new-token limit (default {LEADERBOARD_MAX_GEN_TOKS}, as the leaderboard; the committed CPU "
        f"results used {CPU_MAX_GEN_TOKS})",
    )
    parser.add_argument("--no-ifeval", action="store_true", help="skip IFEval (the in-distribution reward only)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="compute nothing: write the report from the finished steps (e.g. while a run is going)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings for the tests (a tiny --model)")
    args = parser.parse_args(own)
    config = GPU if args.gpu else CPU
    args.data_settings = dict(config["data"])
    if args.quick:
        args.data_settings.update(num_train=12, num_test=4, responses_per_prompt=3, max_new_tokens=8,
                                  max_prompt_tokens=400, batch_size=16)  # fmt: skip
    args.ifeval_max_gen_toks = args.ifeval_max_gen_toks or config["ifeval_max_gen_toks"]
    args.ifeval_batch_size = config["ifeval_batch_size"]
    args.ifeval_backend = config["ifeval_backend"]
    args.overrides = config["overrides"] + (QUICK_OVERRIDES if args.quick else []) + overrides
    args.methods = [m for m in METHOD_NAMES if m in args.methods]
    args.out = args.out or REPO_ROOT / "results" / "instruction_following"
    args.work_dir = (args.work_dir or REPO_ROOT / "outputs" / "instruction_following").resolve()
    args.argv = argv
    return args


def jobs(args: argparse.Namespace) -> list[tuple[str, int | None, str | None]]:
    """(kind, seed, method) in the order that gives the most informative numbers first."""
    out = []
    for seed in range(args.seeds):
        out += [("train", seed, m) for m in args.methods]
        if not args.no_ifeval:
            if seed == 0:
                out.append(("ifeval", None, None))  # the SFT model, once
            out += [("ifeval", seed, m) for m in args.methods]
    return out


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def collect(args, table, data_info, records, ifevals, todo, started) -> dict:
    """results.json's content from what is finished so far."""
    finals = {}
    for (seed, name), record in records.items():
        finals.setdefault(name, {})[seed] = stats.final_metrics(record, ifevals.get((seed, name)))
    runs = list(records.values())
    first = runs[0]["settings"] if runs else {}
    # The command that runs (and resumes) the benchmark: a --report-only call reports on that run, it is not one.
    command = " ".join(
        ["python", "-m", "benchmarks.instruction_following.run", *(a for a in args.argv if a != "--report-only")]
    )
    return _json_safe(
        {
            "benchmark": "instruction_following",
            "status": "complete" if not todo else "partial",
            "left": [{"step": kind, "seed": seed, "method": name or "sft"} for kind, seed, name in todo],
            "command": command,
            "resume_command": command + "   (reuses every finished step)",
            "settings": {
                "seeds": list(range(args.seeds)),
                "methods": args.methods,
                "base_model": recorded_path(args.model, REPO_ROOT),
                "configuration": "gpu" if args.gpu else ("quick" if args.quick else "cpu"),
                "data": data_info,
                "overrides": args.overrides,
                "ifeval_max_gen_toks": args.ifeval_max_gen_toks,
                "ifeval_batch_size": args.ifeval_batch_size,
                "ifeval_decoding": "greedy, chat template",
                "in_dist_decoding": "greedy",
                "theory_preset": theory_preset_args(data_info["counts"]["train_pairs"])[1],
                "per_method": {
                    name: {"recipe_args": r["recipe_args"], **r["settings"]}
                    for (seed, name), r in records.items()
                    if seed == min(s for s, _ in records)
                },
                "shared_settings": {
                    k: first.get(k)
                    for k in (
                        "learning_rate",
                        "lr_scheduler_type",
                        "num_train_epochs",
                        "per_device_train_batch_size",
                        "max_length",
                    )
                },
                "threads": args.threads,
            },
            "summary": {
                "sft": stats.sft_metrics(runs, ifevals.get((None, None))),
                "cells": stats.summarise(finals),
                "paired_vs_dpo": stats.paired_against(finals),
                "curves": stats.curves(runs),
                "mu_coverage": getattr(args, "mu_coverage", None),
                "labels": {name: table[name].label for name in args.methods},
            },
            "runs": runs,
            "ifeval": {
                f"{name or 'sft'}/seed_{seed}" if name else "sft": {k: v for k, v in rec.items() if k != "examples"}
                for (seed, name), rec in ifevals.items()
            },
            "ifeval_examples": {
                f"{name or 'sft'}/seed_{seed}" if name else "sft": rec.get("examples")
                for (seed, name), rec in ifevals.items()
            },
            "runtime_seconds_this_sitting": round(time.perf_counter() - started, 1),
            "compute_seconds": {
                "mu_sampling": data_info["mu_sampling"]["seconds"],
                "training_runs": round(sum(r["wall_seconds"] for r in runs), 1),
                "ifeval": round(sum(rec["generation_seconds"] for rec in ifevals.values()), 1),
            },
            "environment": environment_info(),
        }
    )


def _finished(args, table, kind, seed, name, records) -> bool:
    """Whether a step is done (for --report-only): a run recorded done, or an IFEval record with the run's settings."""
    from benchmarks.ground_truth.runs import RECORD_FILE, run_dir

    if kind == "train":
        return (read_json(run_dir(args.work_dir, table[name], seed) / RECORD_FILE) or {}).get("status") == "done"
    if name is not None and (seed, name) not in records:
        return False
    record = read_json(ifeval_record(args.work_dir, table[name] if name else None, seed))
    return record is not None and record["settings"]["max_gen_toks"] == args.ifeval_max_gen_toks


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.instruction_following.data import build_preference_data, mu_coverage

    args = parse_args(argv)
    quiet_libraries()  # no "Loading weights" bar per model scored
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("spac_hf").setLevel(logging.INFO)
    logging.getLogger("benchmarks").setLevel(logging.INFO)  # the data builder's progress
    started = time.perf_counter()
    if args.data is not None:
        data_dir = args.data.resolve()
    else:
        with torch_threads(args.threads):
            data_dir = build_preference_data(args.model, args.work_dir / "data", threads=args.threads,
                                             **args.data_settings)  # fmt: skip
    data_info = read_json(data_dir / "provenance.json")
    # Which constraints mu ever follows: what offline preference data from mu can teach at all.
    args.mu_coverage = mu_coverage(data_dir) if (data_dir / "samples.jsonl").exists() else None
    print(
        f"data: {data_info['counts']}; mu's reward {data_info['mu_reward']['mean']:.3f}; "
        f"mu sampling {data_info['mu_sampling']['tokens_per_second']} tokens/s",
        flush=True,
    )
    table = methods(data_info["counts"]["train_pairs"])
    overrides = ["--model_name_or_path", str(Path(args.model).resolve()), "--dataset_name", str(data_dir),
                 *args.overrides]  # fmt: skip
    # Before any training: equal budgets, equal trials, a decision rule (the data set is not an arm's: built first).
    arms = {name: table[name] for name in args.methods}
    declare_comparison("instruction_following", arms, args.seeds, overrides).validate()
    todo = jobs(args)
    records, ifevals, skipped = {}, {}, []
    args.out.mkdir(parents=True, exist_ok=True)
    total = len(todo)
    results = None
    while todo:
        kind, seed, name = todo[0]
        step = total - len(todo) + 1
        label = "SFT" if name is None else f"{table[name].label}, seed {seed}"
        if args.report_only and not _finished(args, table, kind, seed, name, records):
            skipped.append(todo.pop(0))
            continue
        print(
            f"\n[{step}/{total}] {kind} {label}: starting ({_minutes(time.perf_counter() - started)} elapsed)",
            flush=True,
        )
        t0 = time.perf_counter()
        with torch_threads(args.threads):
            if kind == "train":
                records[(seed, name)], reused = train(table[name], seed, args.work_dir, overrides)
                rewards = " ".join(f"{r['true_reward']:.3f}" for r in records[(seed, name)]["iterations"])
                print(
                    f"[{step}/{total}] {label}: {'reused' if reused else 'done'}; in-distribution reward by "
                    f"iteration {rewards}",
                    flush=True,
                )
            else:
                last = None if name is None else final_iterate(records[(seed, name)], args.work_dir, table[name])
                model = args.model if name is None else last
                record = ifeval_record(args.work_dir, table[name] if name else None, seed)
                ifevals[(seed, name)] = run_ifeval(
                    model,
                    record,
                    max_gen_toks=args.ifeval_max_gen_toks,
                    batch_size=args.ifeval_batch_size,
                    backend=args.ifeval_backend,
                )
                print(
                    f"[{step}/{total}] IFEval {label}: prompt strict "
                    f"{ifevals[(seed, name)]['prompt_level_strict_acc']:.3f}, inst strict "
                    f"{ifevals[(seed, name)]['inst_level_strict_acc']:.3f}",
                    flush=True,
                )
        todo.pop(0)
        print(f"[{step}/{total}] took {_minutes(time.perf_counter() - t0)}", flush=True)
        if not args.report_only:
            results = collect(args, table, data_info, records, ifevals, skipped + todo, started)
            atomic_write_json(args.out / "results.json", results)
            write_report(results, args.out)
    if args.report_only or results is None:
        results = collect(args, table, data_info, records, ifevals, skipped, started)
        atomic_write_json(args.out / "results.json", results)
        write_report(results, args.out)
    print(
        f"\nwrote {args.out}/results.json, table.md, table.csv, instruction_following.png in "
        f"{_minutes(time.perf_counter() - started)}",
        flush=True,
    )
    return results


if __name__ == "__main__":
    main()
