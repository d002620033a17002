"""Score a model by the true reward of the reviews task: sample responses with HF `generate`, average r(x, y).

This is how the project says whether alignment worked: the mean true reward of the starting model and of each iterate
on the held-out prompts, with its standard error over prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .metrics import task_rewards
from .registry import TASKS
from .reviews import REWARD_RANGE, mean_and_stderr


# Long enough for the longest review of the grammar (5 sentences, ~40 tokens); a review cut off here is penalised.
DEFAULT_MAX_NEW_TOKENS = 48


def mean_true_reward(
    model,
    tokenizer,
    prompts: Sequence[str | list[dict]],
    *,
    num_samples: int = 1,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    num_examples: int = 5,
) -> dict:
    """The model's mean true reward on `prompts`, from `num_samples` sampled responses per prompt.

    Returns a dict:
      mean, stderr   mean over prompts of the per-prompt mean reward, and its standard error over prompts (NaN if
                     fewer than two prompts);
      degenerate_fraction  share of the responses at the minimum reward (empty, collapsed or gibberish);
      per_prompt     the per-prompt mean rewards, in the order of `prompts`;
      examples       the first sample for the first `num_examples` prompts: {"prompt", "response", "reward"};
      n_prompts, num_samples, temperature, seconds (wall time of generation and scoring).
    """
    from ..generation import generate_responses  # torch: `spac_hf.tasks` (the rewards, the registry) loads without it

    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
    prompts = list(prompts)
    started = time.perf_counter()
    # Sample k responses per prompt as k consecutive rows of one flat list: one generate pass, one seed.
    flat_prompts = [p for p in prompts for _ in range(num_samples)]
    responses = generate_responses(
        model,
        tokenizer,
        flat_prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        distributed=False,
        desc="Scoring the true reward",
    )
    # Scored by the task's `evaluate` metric (spac_hf/metrics/review_reward), the one scoring path; a conversational
    # prompt by its last user message, the review request.
    texts = [p if isinstance(p, str) else p[-1]["content"] for p in flat_prompts]
    rewards = task_rewards(TASKS["reviews"].key, texts, responses)["rewards"]
    per_prompt = [sum(rewards[i * num_samples : (i + 1) * num_samples]) / num_samples for i in range(len(prompts))]
    mean, stderr = mean_and_stderr(per_prompt)
    # Collapsed iterates (repetition loops, gibberish) score the minimum: their share makes a collapse visible.
    degenerate = sum(r <= REWARD_RANGE[0] for r in rewards) / len(rewards) if rewards else float("nan")
    examples = [
        {"prompt": prompts[i], "response": responses[i * num_samples], "reward": rewards[i * num_samples]}
        for i in range(min(num_examples, len(prompts)))
    ]
    return {
        "mean": mean,
        "stderr": stderr,
        "degenerate_fraction": degenerate,
        "per_prompt": per_prompt,
        "examples": examples,
        "n_prompts": len(prompts),
        "num_samples": num_samples,
        "temperature": temperature,
        "seconds": time.perf_counter() - started,
    }
