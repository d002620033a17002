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

import torch
import torch.nn.functional as F


REAL_RESPONSES = ("average", "chosen", "rejected")
SMOOTHINGS = ("sigmoid", "linear")


def check_spac_options(*, lam: float, real: str, smoothing: str, beta: float | None = None) -> None:
    """Raise a `ValueError` naming the option if any SPAC hyperparameter is out of its domain."""
    if beta is not None and not beta > 0:
        raise ValueError(f"`beta` must be > 0, got {beta}.")
    if not lam >= 0:  # also rejects NaN
        raise ValueError(f"`lam` (the weight of the preference term, lambda) must be >= 0, got {lam}.")
    if real not in REAL_RESPONSES:
        raise ValueError(f"`real` must be one of {REAL_RESPONSES}, got {real!r}.")
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"`smoothing` must be one of {SMOOTHINGS}, got {smoothing!r}.")


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


def spac_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    policy_generated_logps: torch.Tensor | None,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    ref_generated_logps: torch.Tensor | None,
    *,
    beta: float = 0.1,
    lam: float = 1.0,
    real: str = "average",
    smoothing: str = "sigmoid",
    pessimism: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example SPAC loss (Algorithm 2 of arXiv 2406.04274, as derived in docs/algorithm.md).

        loss = pessimism(h(y'), h(y_gen)) + lam * (-log sigmoid(h(y+) - h(y-)))

    Args:
        policy_*_logps: summed log-probs of the chosen (y+), rejected (y-) and self-play generated (y_gen ~ pi_t)
            responses under the policy being trained, shape [batch].
        ref_*_logps: the same under the reference pi_t (the iterate the iteration started from), shape [batch].
            They carry no gradient.
        beta: 1 / eta, the inverse mirror-descent step; the KL strength, as in DPO.
        lam: weight of the preference (Bradley-Terry) term, lambda; 0 leaves only the pessimism term.
        real: which data response plays y' ~ mu: `"chosen"`, `"rejected"` or `"average"` (h(y') is the mean of both).
        smoothing: `"sigmoid"` (default, -log sigmoid(h(y') - h(y_gen))) or `"linear"` (h(y_gen) - h(y')).
        pessimism: `False` drops the pessimism term (an ablation; the loss is then lam times DPO's loss); the
            generated log-probs may then be `None`.

    Returns:
        `(losses, pessimism_losses, preference_losses)`, each of shape [batch], with
        `losses == pessimism_losses + lam * preference_losses` (`pessimism_losses` is zeros when `pessimism=False`).
    """
    check_spac_options(lam=lam, real=real, smoothing=smoothing, beta=beta)
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps.detach())
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps.detach())
    preference_losses = preference_loss(chosen_rewards, rejected_rewards)
    if pessimism:
        generated_rewards = beta * (policy_generated_logps - ref_generated_logps.detach())
        real_rewards = real_response_reward(chosen_rewards, rejected_rewards, real)
        pessimism_losses = pessimism_loss(real_rewards, generated_rewards, smoothing)
    else:
        pessimism_losses = torch.zeros_like(preference_losses)
    return pessimism_losses + lam * preference_losses, pessimism_losses, preference_losses
