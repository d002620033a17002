"""Each task's evaluator: `evaluator(test, tokenizer, *, num_prompts, num_samples, max_new_tokens, seed)` returns the
`evaluate(model_path, iteration)` a run calls on its starting model and every iterate (`run_self_play(evaluate=...)`),
scoring on the held-out prompts of `test` through the task's `evaluate` metric. `spac_hf.tasks.registry` names each
task's evaluator (`evaluator_of`); the recipes pick it by `--true_reward_task`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from ..utils import atomic_write_json, cache_root, read_json
from .registry import TASKS, Task


logger = logging.getLogger(__name__)


def reward_of(task: Task) -> Callable:
    """The task's true reward r(x, y), from its module (imported now: instruction following needs lm-eval)."""
    return importlib.import_module(f"spac_hf.tasks.{task.module}").reward


def evaluator_of(task: Task) -> Callable:
    """The task's evaluator, a function of this module."""
    return globals()[task.evaluator]


def _load_for_evaluation(model_path: str):
    """The saved model at `model_path` in float32, on the GPU when there is one: how every evaluator scores it."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    return model.to("cuda" if torch.cuda.is_available() else "cpu")


def review_evaluator(
    test, tokenizer, *, num_prompts: int, num_samples: int = 2, max_new_tokens: int | None = None, seed: int = 0
):
    """The reviews task: the mean true reward of `num_samples` sampled responses on each of the first `num_prompts`
    distinct held-out prompts, with its standard error over prompts and the share of degenerate responses."""
    from .true_reward import DEFAULT_MAX_NEW_TOKENS

    unique = {json.dumps(p, sort_keys=True): p for p in test["prompt"]}  # conversational prompts are not hashable
    prompts = list(unique.values())[:num_prompts]

    def evaluate(model_path: str, iteration: int) -> dict:
        from .true_reward import mean_true_reward

        score = mean_true_reward(
            _load_for_evaluation(model_path),
            tokenizer,
            prompts,
            num_samples=num_samples,
            seed=seed,
            max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        )
        logger.info(
            "Evaluation: true reward of %s %.3f ± %.3f (%.0f%% degenerate)",
            "the starting model" if iteration == 0 else f"iterate {iteration}",
            score["mean"],
            score["stderr"],
            100 * score["degenerate_fraction"],
        )
        return {
            "results": {TASKS["reviews"].key: {"mean": score["mean"], "mean_stderr": score["stderr"]}},
            "degenerate_fraction": score["degenerate_fraction"],  # beside the results: a share, not a score to average
            "examples": score["examples"],
        }

    return evaluate


# Greedy responses of at most this many tokens score the in-distribution reward: the data's response budget.
DEFAULT_EVAL_MAX_NEW_TOKENS = 48


def _weights_stamp(model_path: str) -> str:
    """What identifies a saved model's weights cheaply: the weight files' names, sizes and modification times."""
    files = sorted(Path(model_path).glob("*.safetensors")) + sorted(Path(model_path).glob("*.bin"))
    return json.dumps([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def _distinct_prompt_rows(test, num_prompts: int) -> list[dict]:
    """The task's rows (prompt and constraints) of the first `num_prompts` distinct prompts of `test`."""
    from .instruction_following import row_from_messages

    if "constraints" not in test.column_names:
        raise ValueError(
            "`true_reward_task: instruction_following` needs a test split with a `constraints` column "
            f"(built by benchmarks.instruction_following.data); its columns: {test.column_names}."
        )
    rows, seen = [], set()
    for prompt, constraints in zip(test["prompt"], test["constraints"]):
        row = row_from_messages(prompt, constraints)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    return rows[:num_prompts]


def _score_key(model_path: str, rows: list[dict], max_new_tokens: int) -> str:
    """What a greedy score depends on: the model (its path and weights), the prompts and the length."""
    identity = [
        str(Path(model_path).resolve()),
        _weights_stamp(model_path),
        [r["prompt"] for r in rows],
        max_new_tokens,
    ]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]


def _instruction_following_result(score: dict, max_new_tokens: int) -> dict:
    """An evaluation as the run keeps it: the task's metric under `results`, what explains it beside."""
    from .instruction_following import TASK_NAME

    results = {
        "mean": score["mean"],
        "mean_stderr": score["stderr"],
        "prompt_level_strict": score["prompt_level_strict"],
    }
    return {
        "results": {TASKS[TASK_NAME].key: results},
        # Beside the results: shares and lengths that make a win by writing longer or looping visible.
        "degenerate_fraction": score["degenerate_fraction"],
        "mean_length_tokens": score["mean_length_tokens"],
        "truncated_fraction": score["truncated_fraction"],
        "per_prompt": score["per_prompt"],
        "examples": score["examples"],
        "max_new_tokens": max_new_tokens,
        "seconds": score["seconds"],
    }


def instruction_following_evaluator(
    test,
    tokenizer,
    *,
    num_prompts: int,
    num_samples: int = 1,
    max_new_tokens: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
):
    """The recipes' `evaluate(model_path, iteration)` for `true_reward_task: instruction_following`: the greedy
    in-distribution reward on the first `num_prompts` held-out prompts of `test` (a split with a `constraints` column).

    Greedy scores do not depend on the seed, so the starting model's score is cached (in `cache_dir`, default
    `<cache root>/instruction_following`, keyed by its weights, the prompts and the length): every run of a benchmark
    starts from the same model, and scoring it once instead of once per run saves minutes a run on a CPU. Greedy:
    `num_samples` is not used."""
    from .instruction_following import TASK_NAME, mean_task_reward

    rows = _distinct_prompt_rows(test, num_prompts)
    max_new_tokens = max_new_tokens or DEFAULT_EVAL_MAX_NEW_TOKENS
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / TASK_NAME

    def evaluate(model_path: str, iteration: int) -> dict:
        cached = cache / f"{_score_key(model_path, rows, max_new_tokens)}.json"
        score = read_json(cached) if iteration == 0 else None
        if score is None:
            model = _load_for_evaluation(model_path)
            score = mean_task_reward(model, tokenizer, rows, max_new_tokens=max_new_tokens, seed=seed)
            if iteration == 0:
                atomic_write_json(cached, score)
        logger.info(
            "Instruction-following reward of %s: %.3f +- %.3f (mean length %.0f tokens)",
            "the starting model" if iteration == 0 else f"iterate {iteration}",
            score["mean"],
            score["stderr"],
            score["mean_length_tokens"],
        )
        return _instruction_following_result(score, max_new_tokens)

    return evaluate
