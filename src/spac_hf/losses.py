"""The SPAC loss, as pure functions of per-sequence log-probabilities.

Every function here takes *summed* token log-probabilities of whole responses, one value per example, for the policy
being trained (pi_theta) and for the iterate the iteration started from (pi_t, the reference). Nothing here knows
about models, tokenizers or trainers, so the same code serves the LLM trainer and the tabular bandit benchmark.

Notation (see docs/algorithm.md for the derivation):

    h(y) = beta * (log pi_theta(y|x) - log pi_t(y|x))

is the critic f(x, y) = beta * log(pi_theta / pi_t) + beta * log Z(x) with the log-partition term dropped; it cancels
in every difference below.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


REAL_RESPONSES = ("average", "chosen", "rejected")
SMOOTHINGS = ("sigmoid", "linear")
LAM_SCALINGS = ("constant", "sqrt_n")


class LogProbs(NamedTuple):
    """Summed response log-probabilities of one model, one value per example: the loss's typed input.

    `generated` is the self-play response y ~ pi_t; it may be `None` when the pessimism term is off. Any shapes that
    broadcast together work (the tabular benchmark passes an [n, A] table of every action as `generated`).
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    generated: torch.Tensor | None = None


def scaled_lam(lam: float, scaling: str, num_pairs: int | None) -> float:
    """The lambda the loss uses: `lam` itself (`"constant"`) or `lam * sqrt(n)` (`"sqrt_n"`), n the number of
    preference pairs the iteration trains on. The theory asks lambda to grow like sqrt(n) (docs/algorithm.md)."""
    if scaling == "constant":
        return float(lam)
    if scaling == "sqrt_n":
        if num_pairs is None or not num_pairs >= 1:
            raise ValueError(f"`lam_scaling='sqrt_n'` needs the number of preference pairs n >= 1, got {num_pairs}.")
        return float(lam) * math.sqrt(num_pairs)
    raise ValueError(f"`lam_scaling` must be one of {LAM_SCALINGS}, got {scaling!r}.")


def spac_option_problems(
    *, lam: float, real: str, smoothing: str, beta: float | None = None, pessimism_weight: float = 1.0
) -> list[tuple[str, object, str]]:
    """(argument, value, what it must be) for every SPAC hyperparameter out of its domain."""
    problems = []
    if beta is not None and not beta > 0:
        problems.append(("beta", beta, "> 0"))
    if not lam >= 0:  # also rejects NaN
        problems.append(("lam", lam, ">= 0 (lambda, the weight of the preference term)"))
    if not (pessimism_weight >= 0 and math.isfinite(pessimism_weight)):
        problems.append(("pessimism_weight", pessimism_weight, ">= 0 (the weight of the pessimism term)"))
    if real not in REAL_RESPONSES:
        problems.append(("real", real, f"one of {REAL_RESPONSES}"))
    if smoothing not in SMOOTHINGS:
        problems.append(("smoothing", smoothing, f"one of {SMOOTHINGS}"))
    return problems


def check_spac_options(
    *, lam: float, real: str, smoothing: str, beta: float | None = None, pessimism_weight: float = 1.0
) -> None:
    """Raise a `ValueError` naming the option if any SPAC hyperparameter is out of its domain."""
    problems = spac_option_problems(
        lam=lam, real=real, smoothing=smoothing, beta=beta, pessimism_weight=pessimism_weight
    )
    if problems:
        raise ValueError(" ".join(f"`{name}` must be {need}, got {value!r}." for name, value, need in problems))


def real_response_reward(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, real: str) -> torch.Tensor:
    """h(y') for the data response y' ~ mu: the chosen one, the rejected one, or their average (the mean under mu)."""
    if real == "average":
        return 0.5 * (chosen_rewards + rejected_rewards)
    if real == "chosen":
        return chosen_rewards
    if real == "rejected":
        return rejected_rewards
    raise ValueError(f"`real` must be one of {REAL_RESPONSES}, got {real!r}.")


def pessimism_loss(real_rewards: torch.Tensor, generated_rewards: torch.Tensor, smoothing: str) -> torch.Tensor:
    """The adversarial critic's on-average pessimism term, per example.

    `linear` is the term of Algorithm 1, h(y) - h(y'): the critic scores self-play responses low and data responses
    high. `sigmoid` smooths it into -log sigmoid(h(y') - h(y)), which is bounded below and is SPIN's loss.
    """
    if smoothing == "sigmoid":
        return -F.logsigmoid(real_rewards - generated_rewards)
    if smoothing == "linear":
        return generated_rewards - real_rewards
    raise ValueError(f"`smoothing` must be one of {SMOOTHINGS}, got {smoothing!r}.")


def preference_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """The Bradley-Terry likelihood term L_D, per example: DPO's sigmoid loss."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards)


LOGPS_NAMES = tuple(f"{model}_{response}_logps" for model in ("policy", "ref")
                    for response in ("chosen", "rejected", "generated"))  # fmt: skip


def _log_probs_arguments(policy, ref, legacy: tuple, logps: dict) -> tuple[LogProbs, LogProbs]:
    """`spac_loss`'s three call forms -> (policy, ref): two `LogProbs`, six positional tensors, six named ones."""
    unknown = sorted(set(logps) - set(LOGPS_NAMES))
    if unknown:
        raise TypeError(
            f"spac_loss got unexpected keyword arguments {unknown}; the log-probs are {list(LOGPS_NAMES)}."
        )
    if logps:
        if policy is not None or ref is not None or legacy:
            raise TypeError("spac_loss takes the log-probs either positionally or by name, not both.")
        missing = [n for n in LOGPS_NAMES if "generated" not in n and logps.get(n) is None]
        if missing:
            raise TypeError(f"spac_loss is missing the log-probs {missing}.")
        tensors = [logps.get(n) for n in LOGPS_NAMES]
        return LogProbs(*tensors[:3]), LogProbs(*tensors[3:])
    if legacy:
        if len(legacy) != 4:
            raise TypeError(
                "spac_loss takes `(policy: LogProbs, ref: LogProbs)` or the six log-prob tensors (policy chosen, "
                f"rejected, generated, then the reference's), got {2 + len(legacy)} positional arguments."
            )
        return LogProbs(policy, ref, legacy[0]), LogProbs(*legacy[1:])
    if policy is None or ref is None:
        raise TypeError("spac_loss needs the policy's and the reference's log-probs (`policy`, `ref`).")
    return policy, ref


def spac_loss(
    policy: LogProbs | torch.Tensor | None = None,
    ref: LogProbs | torch.Tensor | None = None,
    *legacy: torch.Tensor | None,
    beta: float = 0.1,
    lam: float = 1.0,
    real: str = "average",
    smoothing: str = "sigmoid",
    pessimism: bool = True,
    pessimism_weight: float = 1.0,
    **logps: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example SPAC loss (Algorithm 2 of arXiv 2406.04274, as derived in docs/algorithm.md).

        loss = pessimism_weight * pessimism(h(y'), h(y_gen)) + lam * (-log sigmoid(h(y+) - h(y-)))

    Args:
        policy: `LogProbs(chosen, rejected, generated)`, the summed log-probs of the chosen (y+), rejected (y-) and
            self-play generated (y_gen ~ pi_t) responses under the policy being trained, shape [batch].
        ref: the same under the reference pi_t (the iterate the iteration started from). They carry no gradient.
        legacy: the six-tensor form `spac_loss(policy_chosen_logps, policy_rejected_logps, policy_generated_logps,
            ref_chosen_logps, ref_rejected_logps, ref_generated_logps, ...)` is accepted too: six tensors instead of
            two `LogProbs`, positional or by those names (TRL's names for log-probs).
        beta: 1 / eta, the inverse mirror-descent step; the KL strength, as in DPO.
        lam: weight of the preference (Bradley-Terry) term, lambda, as the loss uses it (already scaled: see
            `scaled_lam`); 0 leaves only the pessimism term.
        real: which data response plays y' ~ mu: `"chosen"`, `"rejected"` or `"average"` (h(y') is the mean of both).
        smoothing: `"sigmoid"` (default, -log sigmoid(h(y') - h(y_gen))) or `"linear"` (h(y_gen) - h(y')).
        pessimism: `False` drops the pessimism term (an ablation; the loss is then lam times DPO's loss); the
            generated log-probs may then be `None`.
        pessimism_weight: weight of the pessimism term. (w, lam) gives w times the loss of (1, lam / w): weighting
            the pessimism term by 1/lam instead of the preference term by lam is the same family of objectives.

    Returns:
        `(losses, pessimism_losses, preference_losses)`, each of shape [batch], with
        `losses == pessimism_weight * pessimism_losses + lam * preference_losses` (the two terms are returned
        unweighted; `pessimism_losses` is zeros when `pessimism=False`).
    """
    policy, ref = _log_probs_arguments(policy, ref, legacy, logps)
    check_spac_options(lam=lam, real=real, smoothing=smoothing, beta=beta, pessimism_weight=pessimism_weight)
    chosen_rewards = beta * (policy.chosen - ref.chosen.detach())
    rejected_rewards = beta * (policy.rejected - ref.rejected.detach())
    preference_losses = preference_loss(chosen_rewards, rejected_rewards)
    if pessimism:
        if policy.generated is None or ref.generated is None:
            raise ValueError("The pessimism term needs the generated response's log-probs (`LogProbs.generated`).")
        generated_rewards = beta * (policy.generated - ref.generated.detach())
        real_rewards = real_response_reward(chosen_rewards, rejected_rewards, real)
        pessimism_losses = pessimism_loss(real_rewards, generated_rewards, smoothing)
    else:
        pessimism_losses = torch.zeros_like(preference_losses)
    return pessimism_weight * pessimism_losses + lam * preference_losses, pessimism_losses, preference_losses
