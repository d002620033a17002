"""One (method, seed) training run, and one IFEval pass, each reused when it already finished.

Training runs go through the ground-truth benchmark's runner (`benchmarks.ground_truth.runs.run_method`: the recipe
code
path, a record per run folder, a finished run read back, a run recorded with other arguments an error), on
`recipes/smollm2/<recipe>.yaml`. This module adds what the instruction-following task records beside the reward of each
iterate: the prompt-level accuracy, the mean response length and the share of degenerate responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spac_hf.utils import read_json

from benchmarks.ground_truth.runs import run_dir, run_method
from benchmarks.instruction_following.methods import Method


def train(method: Method, seed: int, work_dir: Path, overrides: Sequence[str]) -> tuple[dict, bool]:
    """Run (or read back) `method` with `seed`; each iteration's record gets the task's extra numbers."""
    record, reused = run_method(method, seed, work_dir, overrides)
    # The loop's summary holds every evaluation as the task's evaluator returned it (lengths, per-prompt rewards).
    evaluations = read_json(run_dir(work_dir, method, seed) / "summary.json", {}).get("evaluations", {})
    start = evaluations.get("0", {}).get("per_prompt")
    for entry in record["iterations"]:
        evaluation = evaluations.get(str(entry["iteration"]), {})
        metrics = next(iter(evaluation.get("results", {}).values()), {})
        entry["prompt_level_strict"] = metrics.get("prompt_level_strict")
        for key in ("mean_length_tokens", "degenerate_fraction", "truncated_fraction"):
            entry[key] = evaluation.get(key)
        # How far the policy moved, seen through the reward: held-out prompts whose (greedy) reward differs from the
        # starting model's. A mean can stay put while answers change; this shows whether anything changed at all.
        now = evaluation.get("per_prompt")
        if start is not None and now is not None:
            entry["prompts_changed_vs_sft"] = sum(abs(a - b) > 1e-9 for a, b in zip(start, now))
    return record, reused


def final_iterate(record: dict, work_dir: Path, method: Method) -> Path:
    """The model a method ends with: its last iterate."""
    return run_dir(work_dir, method, record["seed"]) / f"iter_{record['iterations'][-1]['iteration']}"


def ifeval_record(work_dir: Path, method: Method | None, seed: int | None) -> Path:
    """Where a model's IFEval record goes: beside its run, or `<work>/sft/ifeval.json` for the starting model."""
    if method is None:
        return Path(work_dir).resolve() / "sft" / "ifeval.json"
    return run_dir(work_dir, method, seed) / "ifeval.json"
