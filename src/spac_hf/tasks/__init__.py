"""Tasks with a programmatic ground-truth reward, so that an alignment run can be scored exactly.

`reviews`: short product reviews (the shipped default task; model and data in `recipes/default/`).
`instruction_following`: real prompts (AlpacaEval, Arena-Hard) with verifiable constraints from lm-eval's IFEval
registry, scored by lm-eval's checkers (import it explicitly: it needs lm-eval and the evaluation data; see
`benchmarks/instruction_following/`).

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
