"""Tasks with a programmatic ground-truth reward, so that an alignment run can be scored exactly.

Each task is one record of `registry.TASKS` (its reward, its `evaluate` metric, its evaluator, its label):
`reviews`, short product reviews (the embedded default's task; model and data in `spac_hf/default/`), and
`instruction_following`, real prompts with verifiable constraints from lm-eval's IFEval registry, scored by lm-eval's
checkers (import it explicitly: it needs lm-eval; its data is built by `benchmarks/instruction_following/`).

    from spac_hf.tasks import reward, mean_true_reward
    reward("Review of the blue camera:", " The camera is great. I love it.")   # 0.77
"""

from .reviews import (
    BT_TAU,
    all_prompts,
    bradley_terry_label,
    preference_probability,
    reward,
    reward_breakdown,
    sample_review,
    task_vocabulary,
)
from .true_reward import mean_true_reward


__all__ = [
    "BT_TAU",
    "all_prompts",
    "bradley_terry_label",
    "mean_true_reward",
    "preference_probability",
    "reward",
    "reward_breakdown",
    "sample_review",
    "task_vocabulary",
]
