"""DPO, SPIN and SPAC on tabular policies, through the LLM code's losses and its change of variables.

A policy is a table of logits theta[x, a]; log pi_theta(a|x) = log_softmax(theta[x])[a]. Each loss below is computed by
`spac_hf.losses` from per-response log-probabilities exactly as the LLM trainer does, so the critic is
h(y) = beta * (log pi_theta(y|x) - log pi_t(y|x)) with pi_t the iterate the iteration started from.

The only difference from the LLM code is the self-play response y ~ pi_t(.|x_j): instead of one sample per example,
the loss is averaged over every action with weights pi_t(a|x_j), which is its exact expectation over y. Because pi_t
carries no gradient, this is also the exact expectation of the sampled loss's gradient.

Tables may have a leading instance dimension ([S, X, A] logits, [S, n] data): each instance's loss is its mean over its
examples, and the objective is the sum over instances, so the instances do not interact (Adam is per-parameter), and one
vectorised run trains all seeds exactly as separate runs would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from spac_hf.losses import preference_loss, spac_loss
from spac_hf.methods import METHODS as LIBRARY_METHODS

from benchmarks.theory.bandit import PreferenceData


# The methods of `spac_hf.methods`, in its order: "dpo" is one pass over all the data, "iterative_dpo" T iterations.
METHODS = tuple(LIBRARY_METHODS)
METHOD_LABELS = {name: method.label for name, method in LIBRARY_METHODS.items()}


@dataclass(frozen=True)
class TrainConfig:
    beta: float = 0.1  # the paper's default KL strength (1 / mirror-descent step)
    lam: float = 1.0  # the paper's practical lambda
    real: str = "average"  # SPAC's default data response y': the mean over the pair, i.e. E_mu
    smoothing: str = "sigmoid"
    iterations: int = 3  # T, the number of disjoint data parts
    steps: int = 300  # full-batch optimizer steps per iteration (one-shot DPO gets iterations * steps)
    lr: float = 0.3  # Adam, on the logits


# An objective maps (log pi_theta, log pi_t, data part) to a scalar loss.
Objective = Callable[[torch.Tensor, torch.Tensor, PreferenceData], torch.Tensor]


def rows(table: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """table[..., x_j, :] for each example: [..., X, A] and [..., n] -> [..., n, A]."""
    index = contexts[..., None].expand(*contexts.shape, table.shape[-1])
    return table.gather(-2, index)


def pick(per_example: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """per_example[..., j, a_j], kept as a column: [..., n, A] and [..., n] -> [..., n, 1]."""
    return per_example.gather(-1, actions[..., None])


def dpo_objective(config: TrainConfig) -> Objective:
    """DPO's sigmoid loss with reference pi_t: the preference term alone."""

    def objective(logp: torch.Tensor, ref_logp: torch.Tensor, data: PreferenceData) -> torch.Tensor:
        logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
        chosen = config.beta * (pick(logp_x, data.chosen) - pick(ref_x, data.chosen))
        rejected = config.beta * (pick(logp_x, data.rejected) - pick(ref_x, data.rejected))
        return preference_loss(chosen, rejected).squeeze(-1).mean(-1).sum()

    return objective


def self_play_objective(config: TrainConfig, *, lam: float, real: str) -> Objective:
    """`spac_loss` with its self-play response y ~ pi_t(.|x_j) taken in exact expectation.

    The generated log-probs are passed as an [n, A] table (every action for each example's context) and the chosen and
    rejected ones as [n, 1] columns, so `spac_loss` broadcasts to one loss per (example, action); weighting by
    pi_t(a|x_j) and summing over actions gives E_{y~pi_t}[loss_j]. The preference term does not depend on y, and the
    weights sum to one, so it comes out unchanged.
    """

    def objective(logp: torch.Tensor, ref_logp: torch.Tensor, data: PreferenceData) -> torch.Tensor:
        logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
        losses, _, _ = spac_loss(
            pick(logp_x, data.chosen),
            pick(logp_x, data.rejected),
            logp_x,  # every action as the generated response
            pick(ref_x, data.chosen),
            pick(ref_x, data.rejected),
            ref_x,
            beta=config.beta,
            lam=lam,
            real=real,
            smoothing=config.smoothing,
        )
        self_play_weights = ref_x.exp()  # pi_t(a|x_j): the generator is the iterate we start from
        return (self_play_weights * losses).sum(-1).mean(-1).sum()

    return objective


def spac_objective(config: TrainConfig) -> Objective:
    return self_play_objective(config, lam=config.lam, real=config.real)


def spin_objective(config: TrainConfig) -> Objective:
    """SPIN = SPAC with no preference term and the chosen response as the real one (docs/algorithm.md)."""
    return self_play_objective(config, lam=0.0, real="chosen")


def train_iteration(
    logits: torch.Tensor, data: PreferenceData, objective: Objective, *, steps: int, lr: float
) -> torch.Tensor:
    """One iteration of the outer loop: start from pi_t, minimise the loss with reference pi_t, return pi_{t+1}."""
    ref_logp = torch.log_softmax(logits, dim=-1).detach()
    theta = logits.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        objective(torch.log_softmax(theta, dim=-1), ref_logp, data).backward()
        optimizer.step()
    return theta.detach()


def run_method(method: str, behaviour: torch.Tensor, data: PreferenceData, config: TrainConfig) -> list[torch.Tensor]:
    """Train `method` from pi_1 = mu (the SFT model is the behaviour policy); return the policies pi_1 .. pi_{T+1}."""
    logits = behaviour.log()
    policies = [behaviour]
    if not LIBRARY_METHODS[method].iterative:  # one pass: all the data, reference pi_1, the same total steps
        schedule = [(data, dpo_objective(config), config.iterations * config.steps)]
    else:
        objective = {"iterative_dpo": dpo_objective, "spin": spin_objective, "spac": spac_objective}[method](config)
        schedule = [(part, objective, config.steps) for part in data.split(config.iterations)]
    for part, objective, steps in schedule:
        logits = train_iteration(logits, part, objective, steps=steps, lr=config.lr)
        policies.append(torch.softmax(logits, dim=-1))
    return policies
