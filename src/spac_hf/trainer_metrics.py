"""The metrics `SPACTrainer` logs each step: DPO's (the same names as TRL's), per response, plus the two SPAC terms.

Every metric is reduced on the device and all of them are read back in one transfer: one gather per kind of statistic
and one host sync per step, where a gather and an `.item()` per metric cost ~25 of each (measured in benchmarks/cost;
on a GPU each `.item()` also stalls the queue before the backward is launched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .losses import real_response_reward


def step_metrics(
    inputs: dict[str, Any],
    outputs: Any,
    policy: dict[str, torch.Tensor],
    ref: dict[str, torch.Tensor],
    pessimism_losses: torch.Tensor,
    preference_losses: torch.Tensor,
    *,
    responses: tuple[str, ...],
    beta: float,
    real_response: str,
    gather: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[dict[str, float], torch.Tensor]:
    """The step's metrics averaged over the processes (one host sync), and this process's mask of processed tokens
    (a shared prompt counts once, padding not at all)."""
    n = len(responses)
    if "sequence_ids" in inputs:  # packed: every output position is an input position; masks pick the response
        sequence_ids = inputs["sequence_ids"]
        per_response = inputs["completion_lengths"].numel() // n
        mask = sequence_ids >= 0
        masks = [mask & (sequence_ids // per_response == k) for k in range(n)]
        mean_logits, is_top1, entropy = [outputs.mean_logits] * n, outputs.is_top1, outputs.entropy
        tokens = inputs["document_ids"] >= 0
    else:
        mask = inputs["completion_mask"][:, 1:]
        seq_len = mask.size(1)
        masks = mask.chunk(n, dim=0)
        mean_logits = outputs.mean_logits[:, -seq_len:].chunk(n, dim=0)
        is_top1 = outputs.is_top1[:, -seq_len:].chunk(n, dim=0)[0]
        entropy = outputs.entropy[:, -seq_len:]
        tokens = inputs["attention_mask"]

    # Token-level means: (masked sum, token count) pairs, each summed over the processes, then divided.
    token_names = ["entropy", *(f"logits/{r}" for r in responses), "mean_token_accuracy"]
    pairs = [(entropy, mask), *zip(mean_logits, masks), (is_top1.float(), masks[0])]
    sums = torch.stack([torch.stack([(v * m).sum(), m.sum().float()]) for v, m in pairs])  # [metrics, 2]
    sums = gather(sums[None]).sum(dim=0)  # [1, metrics, 2] per process
    token_means = sums[:, 0] / sums[:, 1].clamp(min=1)  # an empty mask has a zero sum: its mean is 0.0

    # Example-level means: one column per metric, gathered over the processes' examples, then averaged.
    rewards = {r: beta * (policy[r] - ref[r]).detach() for r in responses}
    margins = rewards["chosen"] - rewards["rejected"]
    columns = {}
    for response in responses:
        columns[f"rewards/{response}"] = rewards[response]
        columns[f"logps/{response}"] = policy[response].detach()
    columns["rewards/accuracies"] = (margins > 0).float()
    columns["rewards/margins"] = margins
    columns["spac/preference_loss"] = preference_losses.detach()
    if "generated" in responses:
        real = real_response_reward(rewards["chosen"], rewards["rejected"], real_response)
        real_margins = real - rewards["generated"]
        columns["rewards/real_generated_margins"] = real_margins
        columns["rewards/real_generated_accuracies"] = (real_margins > 0).float()
        columns["spac/pessimism_loss"] = pessimism_losses.detach()
    example_means = gather(torch.stack(list(columns.values()), dim=1)).mean(dim=0)
    return dict(zip([*token_names, *columns], torch.cat([token_means, example_means]).tolist())), tokens
