"""review_reward: the true reward of spac-hf's product-review task, as an `evaluate` metric.

Self-contained on purpose: a metric Space must run with only `evaluate` installed, not spac-hf's training stack. The
reward itself is `reviews.py` beside this file: `spac_hf/tasks/reviews.py` (pure Python, standard library only),
linked in spac-hf's repository and copied by the Space upload, so this metric and the library score with the same
code.
"""

import datasets
import evaluate

from .reviews import REWARD_RANGE, reward, reward_breakdown


_DESCRIPTION = """\
The true reward r(x, y) of spac-hf's product-review task: a program, not a learned model. A prompt asks for a short
review of one product ("Review of the blue camera:"); the reward of a response is 0.7 x a lexicon sentiment score in
(-1, 1) + 0.3 x a topic score (+1 when the response names the prompt's product and no other, 0 when it names none,
-1 when it names another), minus 0.5 for each degeneracy found (a repeated sentence or word, no sentence end, more
than 3 sentences or 30 words, more than a quarter of the words outside the task's vocabulary), clipped to [-1, 1].
An empty response scores -1. spac-hf uses it to say whether an alignment run worked: the mean reward of a model's
responses on held-out prompts.
"""

_CITATION = """\
@misc{spachf,
  title  = {{spac-hf: SPAC (Self-Play with Adversarial Critic) for TRL}},
  year   = {2026},
  url    = {https://github.com/spac-hf/spac-hf}
}
@article{ji2024spac,
  title   = {{Self-Play with Adversarial Critic: Provable and Scalable Offline Alignment for Language Models}},
  author  = {Ji, Xiang and Kulkarni, Sanjeev and Wang, Mengdi and Xie, Tengyang},
  journal = {arXiv preprint arXiv:2406.04274},
  year    = {2024},
  url     = {https://arxiv.org/abs/2406.04274}
}
"""

_KWARGS_DESCRIPTION = """
Scores each response to its prompt by the review task's true reward.
Args:
    predictions (`list` of `str`): the model's responses, one per prompt. An empty response is valid and scores -1
        (a model that answers nothing gets the minimum, as in spac-hf's own evaluation).
    prompts (`list` of `str`): the prompts the responses answer, e.g. "Review of the blue camera:"; not empty.
    breakdown (`bool`, default False): also return each reward's parts.
Returns:
    mean_reward (`float`): the mean of `rewards`.
    rewards (`list` of `float`): the reward of each response, in [-1, 1], in input order.
    degenerate_fraction (`float`): the share of responses at the minimum reward (-1: empty, collapsed, gibberish).
    breakdowns (`list` of `dict`, with `breakdown=True`): per response, its reward, sentiment in [-1, 1], topic
        (+1 on the prompt's product, -1 on another, 0 on none) and the issues that were penalised.
Examples:
    >>> review_reward = evaluate.load("spac-hf/review_reward")
    >>> results = review_reward.compute(
    ...     predictions=[" The camera is great. I love it.", " The camera is awful."],
    ...     prompts=["Review of the blue camera:", "Review of the blue camera:"],
    ... )
    >>> [round(r, 4) for r in results["rewards"]]
    [0.7667, -0.05]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReviewReward(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "prompts": datasets.Value("string")}),
            homepage="https://github.com/spac-hf/spac-hf",
            codebase_urls=["https://github.com/spac-hf/spac-hf/blob/main/src/spac_hf/tasks/reviews.py"],
        )

    def _compute(self, predictions, prompts, breakdown=False):
        # `evaluate` has already refused mismatched lengths ("Mismatch in the number of predictions (2) and prompts
        # (1)") and values of another type; a missing value (None) reaches here as None.
        if not predictions:
            raise ValueError("review_reward: nothing to score (predictions and prompts are empty lists).")
        for column, values in (("predictions", predictions), ("prompts", prompts)):
            missing = [i for i, value in enumerate(values) if not isinstance(value, str)]
            if missing:
                raise ValueError(
                    f"review_reward: {column}[{missing[0]}] is {values[missing[0]]!r}, not a string "
                    f"({len(missing)} such values in {column})."
                )
        empty = [i for i, prompt in enumerate(prompts) if not prompt.strip()]
        if empty:
            raise ValueError(
                f"review_reward: prompts[{empty[0]}] is an empty string ({len(empty)} empty prompts in all); every "
                "response needs the prompt it answers, e.g. 'Review of the blue camera:'."
            )
        rewards = [reward(prompt, response) for prompt, response in zip(prompts, predictions)]
        result = {
            "mean_reward": sum(rewards) / len(rewards),
            "rewards": rewards,
            "degenerate_fraction": sum(r <= REWARD_RANGE[0] for r in rewards) / len(rewards),
        }
        if breakdown:
            result["breakdowns"] = [reward_breakdown(prompt, answer) for prompt, answer in zip(prompts, predictions)]
        return result
