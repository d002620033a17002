"""Verifiable instruction following on real prompts: a real alignment task whose reward nobody here wrote.

Prompts are real user instructions, each followed by one to three verifiable constraints from lm-eval's IFEval
instruction registry ("Your response should contain at least 3 sentences."). The reward r(x, y) is the fraction of x's
constraints that y follows, by lm-eval's own strict checker (`test_instruction_following_strict`): IFEval's
instruction-level strict accuracy on one response. The data set (prompts from AlpacaEval and Arena-Hard, responses of
SmolLM2-135M-Instruct labelled by a Bradley-Terry draw on this reward) is built by
`python -m benchmarks.instruction_following.data`; its card says how.

    from spac_hf.tasks.instruction_following import reward
    reward({"prompt": ..., "instruction_id_list": [...], "kwargs": [...]}, "a response")   # in [0, 1]
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..utils import cache_root
from .metrics import task_rewards
from .reviews import mean_and_stderr


TASK_NAME = "instruction_following"
# Bradley-Terry temperature on a reward in [0, 1] that moves in steps of 1/3 to 1: a one-constraint gap (1/3) is
# labelled right 79% of the time, a full gap (0 vs 1) 98%. Noisy like human labels, yet informative.
BT_TAU = 0.25
# A response is degenerate when it is empty, or when it loops: fewer than this share of its word 4-grams are distinct
# (a fluent answer of 40+ words has nearly all distinct; a repetition loop has few), or one non-empty line recurs
# this many times.
DEGENERATE_MIN_DISTINCT_NGRAMS = 0.5
DEGENERATE_MIN_WORDS = 20
DEGENERATE_LINE_REPEATS = 3


# ---------------------------------------------------------------------------------------------------------------------
# lm-eval's registry and checkers
# ---------------------------------------------------------------------------------------------------------------------


def use_nltk_data(root: Path) -> None:
    """Put an NLTK data folder first on `NLTK_DATA` and on the path of an NLTK already imported."""
    entries = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if str(root) not in entries:
        os.environ["NLTK_DATA"] = os.pathsep.join([str(root), *entries])
    # NLTK reads NLTK_DATA once, at import: a process that already imported it needs the path added directly.
    if "nltk" in sys.modules:
        import nltk

        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))


def ifeval_modules():
    """lm-eval's IFEval registry and checking functions.

    lm-eval's `instructions_util` tries `nltk.download("punkt_tab")` at import unless NLTK finds the Punkt data.
    Offline, `benchmarks.eval_data.fetch.ensure_punkt` writes it under spac-hf's cache root (`utils.cache_root`),
    which is put on NLTK's path first when it is there. langdetect (the response-language checker) is random unless
    seeded: seeding it makes the reward a function of the response."""
    punkt = cache_root() / "nltk_data"
    if (punkt / "tokenizers" / "punkt_tab").is_dir():
        use_nltk_data(punkt)
    import langdetect
    from lm_eval.tasks.ifeval import instructions_registry, utils

    langdetect.DetectorFactory.seed = 0
    return instructions_registry, utils


# ---------------------------------------------------------------------------------------------------------------------
# Reward
# ---------------------------------------------------------------------------------------------------------------------


def follow_list(row: dict, response: str, *, loose: bool = False) -> list[bool]:
    """Per constraint of `row`, whether `response` follows it, by lm-eval's own strict (or loose) checker."""
    _, utils = ifeval_modules()
    kwargs = row["kwargs"]
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs)
    example = utils.InputExample(
        key=0, instruction_id_list=list(row["instruction_id_list"]), prompt=row["prompt"], kwargs=list(kwargs)
    )
    check = utils.test_instruction_following_loose if loose else utils.test_instruction_following_strict
    return list(check(example, response).follow_instruction_list)


def reward(row: dict, response: str) -> float:
    """r(x, y): the fraction of the prompt's constraints `response` follows (lm-eval's strict checker), in [0, 1].

    No length term: the constraints already include length limits both ways, and a reward that favoured short or long
    answers by itself would be a second objective the benchmark then has to untangle from instruction following."""
    followed = follow_list(row, response)
    return sum(followed) / len(followed)


def is_degenerate(response: str) -> bool:
    """Empty, or a repetition loop (see `DEGENERATE_*`): the benchmark reports their share beside the reward."""
    words = re.findall(r"\w+", response.lower())
    if not words:
        return True
    if len(words) >= DEGENERATE_MIN_WORDS:
        grams = list(zip(words, words[1:], words[2:], words[3:]))
        if len(set(grams)) < DEGENERATE_MIN_DISTINCT_NGRAMS * len(grams):
            return True
    lines = [line.strip() for line in response.splitlines() if line.strip()]
    return any(lines.count(line) >= DEGENERATE_LINE_REPEATS for line in set(lines))


def constraints_json(row: dict) -> str:
    """A prompt's constraints as one JSON string column (kwargs differ in keys per instruction: a struct column
    would fill every missing key with null)."""
    kwargs = json.loads(row["kwargs"]) if isinstance(row["kwargs"], str) else row["kwargs"]
    return json.dumps({"instruction_id_list": list(row["instruction_id_list"]), "kwargs": kwargs})


def row_from_messages(prompt, constraints: str) -> dict:
    """The task row of a data set row (conversational prompt + `constraints` column), for `reward`."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    return {"prompt": text, **json.loads(constraints)}


def mean_task_reward(
    model,
    tokenizer,
    rows: Sequence[dict],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 32,
    num_examples: int = 3,
    backend: str = "hf",
    engine_cache_dir: str | None = None,
) -> dict:
    """The in-distribution score of a model on task rows (greedy by default): the mean reward (instruction-level strict
    accuracy) with its standard error over prompts, the prompt-level strict accuracy, the mean response length in
    tokens, the share of responses the cap cut (no stop token within `max_new_tokens`), the share of degenerate
    responses, every response, and a few examples. `model` is a loaded model for `backend="hf"`, the path of a saved
    one for `backend="ctranslate2"` (`spac_hf.generation.generate_responses`)."""
    from ..generation import generate_responses

    started = time.perf_counter()
    prompts = [[{"role": "user", "content": row["prompt"]}] for row in rows]
    responses, finished = generate_responses(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        distributed=False,
        desc="Scoring the instruction-following reward",
        backend=backend,
        engine_cache_dir=engine_cache_dir,
        return_finished=True,
    )
    # Scored by the task's `evaluate` metric (spac_hf/metrics/instruction_following_reward), the one scoring path.
    ifeval_modules()  # NLTK's Punkt data in place before the metric imports lm-eval's checkers
    scores = task_rewards(
        f"true_reward_{TASK_NAME}",
        [row["prompt"] for row in rows],
        responses,
        constraints=[constraints_json(row) for row in rows],
    )
    rewards = scores["rewards"]
    mean, stderr = mean_and_stderr(rewards)
    lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
    return {
        "mean": mean,
        "stderr": stderr,
        "prompt_level_strict": scores["prompt_level_strict_acc"],
        "mean_length_tokens": sum(lengths) / len(lengths),
        "truncated_fraction": sum(not f for f in finished) / len(finished),
        "degenerate_fraction": sum(map(is_degenerate, responses)) / len(responses),
        "per_prompt": rewards,
        "responses": responses,
        "examples": [
            {"prompt": rows[i]["prompt"], "response": responses[i], "reward": rewards[i]}
            for i in range(min(num_examples, len(rows)))
        ],
        "n_prompts": len(rows),
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seconds": time.perf_counter() - started,
    }
