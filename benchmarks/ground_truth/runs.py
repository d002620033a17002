"""One (method, seed) run through the recipe code path, reused when it already finished with the same arguments.

A run lives in `<work_dir>/<method>/seed_<seed>/`: the loop's own output folder (iterates, generated data, evaluations;
the loop resumes an interrupted run by itself), plus `benchmark_run.json`, written by this module: the recipe
arguments and a hash of the YAML when the run starts, and the per-iteration numbers once it is done. A folder whose
record says done with the same arguments is read back instead of being run again; a folder recorded with other
arguments is an error, never silently mixed into the results.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from spac_hf.utils import atomic_write_json, read_json, recorded_path

from .methods import REPO_ROOT, Method
from benchmarks.protocol import Arm, Budget, Comparison, Contrast, SearchSpace


RECORD_FILE = "benchmark_run.json"


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """The default configs use paths relative to the repository root (`src/spac_hf/default/model`): run from there."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_dir(work_dir: Path, method: Method, seed: int) -> Path:
    return Path(work_dir).resolve() / method.name / f"seed_{seed}"


def recipe_args(method: Method, seed: int, overrides: Sequence[str]) -> list[str]:
    """The recipe's arguments, without `--output_dir`: the embedded default YAML, the benchmark's overrides, the seed,
    then the method's own flags. The seed is the only source of randomness the recipes have: it sets the data split,
    the training order, the self-play sampling and the evaluation sampling (see README)."""
    config = method.config_path.relative_to(REPO_ROOT).as_posix()
    return ["--config", config, *overrides, "--seed", str(seed), *method.extra_args]


def config_hash(method: Method) -> str:
    return hashlib.sha256(method.config_path.read_bytes()).hexdigest()[:16]


def _budget_settings(script_args, training_args, model_args) -> dict:
    """What the README's "same budget" claim is about, read from the parsed arguments (not from the YAML text)."""
    settings = {
        "model_name_or_path": recorded_path(model_args.model_name_or_path, REPO_ROOT),
        "num_iterations": training_args.num_iterations,
        "iteration_data": training_args.iteration_data,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "optim": str(getattr(training_args.optim, "value", training_args.optim)),
        "beta": training_args.beta,
        "max_length": training_args.max_length,
        "max_new_tokens": training_args.max_new_tokens,
        "temperature": training_args.temperature,
        "history_iterations": training_args.history_iterations,
        "true_reward_task": script_args.true_reward_task,
        "true_reward_prompts": script_args.true_reward_prompts,
        "true_reward_samples": script_args.true_reward_samples,
        "max_train_samples": script_args.max_train_samples,
    }
    for name in ("lam", "lam_scaling", "pessimism_weight", "real_response", "smoothing", "use_pessimism"):  # SPAC only
        if hasattr(training_args, name):
            settings[name] = getattr(training_args, name)
    return settings


def run_folder_of(record: dict) -> Path:
    """The run folder a committed record names (relative to the checkout; older records hold an absolute path).
    A benchmark that knows its work dir finds a run with `run_dir` instead."""
    return REPO_ROOT / record["output_dir"]


def iteration_records(summary: dict, task_key: str, run_dir: Path) -> list[dict]:
    """Per model of the run (0 = the starting model): cumulative training examples and optimizer steps (counted as
    `spac_hf.run.budget` counts a run's spend), its true reward (mean over prompts) and the standard error over
    prompts, and the iteration's training loss."""
    from spac_hf.run.budget import spend_by_iterate

    evaluation = summary["evaluations"]["0"]["results"][task_key]
    records = [{
        "iteration": 0, "examples_seen": 0, "optimizer_steps": 0, "true_reward": evaluation["mean"],
        "true_reward_stderr_over_prompts": evaluation.get("mean_stderr"), "train_loss": None,
    }]  # fmt: skip
    for iterate, spent in zip(summary["iterates"], spend_by_iterate(summary, run_dir)):
        t = iterate["iteration"]
        evaluation = summary["evaluations"][str(t)]["results"][task_key]
        records.append({
            "iteration": t, "examples_seen": spent["pairs_seen"], "optimizer_steps": spent["optimizer_steps"],
            "true_reward": evaluation["mean"], "true_reward_stderr_over_prompts": evaluation.get("mean_stderr"),
            "train_loss": iterate.get("train_metrics", {}).get("train_loss"),
        })  # fmt: skip
    return records


def planned_spend(method: Method, seed: int, overrides: Sequence[str] = ()) -> tuple[int, int]:
    """(optimizer steps, pairs seen) that `method` will spend with these arguments, before it runs: its parsed
    schedule on its training split, cut as the loop cuts it (`spac_hf.data.split_into_parts`: T nearly equal parts, or
    all the data T times)."""
    from spac_hf.scripts.self_play import load_preference_data, parse_recipe_args

    with _working_directory(REPO_ROOT):
        script_args, training_args, _, dataset_args = parse_recipe_args(
            method.config_class(),
            method.config_path,
            argv=[*recipe_args(method, seed, overrides), "--output_dir", "-"],
        )
        train, _ = load_preference_data(script_args, dataset_args, seed)
    n, parts = len(train), training_args.num_iterations
    if training_args.iteration_data == "full":
        sizes = [n] * parts
    else:
        sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
    batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    epochs = training_args.num_train_epochs
    steps = sum(math.ceil(math.ceil(size / batch) * epochs) for size in sizes)
    return steps, int(sum(sizes) * epochs)


# Each arm runs its recipe YAML once: one trial, no search, so no tuning data (the embedded default's settings were
# chosen on a validation split of the training pairs, benchmarks/default_tuning, before a benchmark runs).
ONE_TRIAL = "none: each arm runs its recipe YAML once"


def declare_comparison(benchmark: str, arms: dict[str, Method], seeds: int, overrides: Sequence[str]) -> Comparison:
    """The comparison a recipe-runner benchmark makes, each arm with its planned budget; its `validate()` refuses it
    before any run when the arms' optimizer steps or pairs differ, or when no primary contrast (SPAC, or else the
    theory preset, minus each other arm) can be declared. `arms` maps each arm's name to how it runs."""
    planned = {name: planned_spend(method, 0, overrides) for name, method in arms.items()}
    subject = next((name for name in ("spac", "spac_theory") if name in arms), None)
    steps, pairs = planned[subject or next(iter(arms))]
    contrasts = tuple(
        Contrast(f"{arms[subject].label} minus {arms[other].label}", subject, other)
        for other in arms
        if subject and other != subject
    )
    return Comparison(
        benchmark=benchmark,
        arms=tuple(
            Arm(name, SearchSpace({}), trials=1, budget=Budget(s, p, (s,))) for name, (s, p) in planned.items()
        ),
        budget=Budget(steps, pairs, (steps,)),
        trials_per_arm=1,
        tuning_seeds=(ONE_TRIAL,),
        test_seeds=tuple(range(seeds)),
        contrasts=contrasts,
    )


def run_method(method: Method, seed: int, work_dir: Path, overrides: Sequence[str] = ()) -> tuple[dict, bool]:
    """Run `method` with `seed` (or read back its finished run). Returns (the run's record, whether it was reused)."""
    from spac_hf.scripts.self_play import main, parse_recipe_args

    out = run_dir(work_dir, method, seed)
    args = recipe_args(method, seed, overrides)
    identity = {"method": method.name, "seed": seed, "recipe_args": args, "config_sha256": config_hash(method)}
    record = read_json(out / RECORD_FILE)
    if record is not None:
        recorded = {key: record.get(key) for key in identity}
        if recorded != identity:
            raise ValueError(
                f"{out} holds a run with other arguments ({recorded} != {identity}). Use another --work-dir, or "
                "delete that folder to run it again."
            )
        if record.get("status") == "done":
            return record, True
    atomic_write_json(out / RECORD_FILE, {**identity, "status": "running"})

    started = time.perf_counter()
    with _working_directory(REPO_ROOT):
        script_args, training_args, model_args, dataset_args = parse_recipe_args(
            method.config_class(), method.config_path, argv=[*args, "--output_dir", str(out)]
        )
        if not script_args.true_reward_task:
            raise ValueError(f"{method.name}: the benchmark needs `true_reward_task` ({method.config_path.name}).")
        result = main(method.recipe, script_args, training_args, model_args, dataset_args)
    task_key = f"true_reward_{script_args.true_reward_task}"
    record = {
        **identity,
        "status": "done",
        "output_dir": recorded_path(out, REPO_ROOT),  # relative to the checkout: read back with run_folder_of
        "wall_seconds": round(time.perf_counter() - started, 2),
        "settings": _budget_settings(script_args, training_args, model_args),
        "iterations": iteration_records(result.summary, task_key, out),
    }
    atomic_write_json(out / RECORD_FILE, record)
    return record, False
