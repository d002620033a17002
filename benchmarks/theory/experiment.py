"""The sweep: for each environment and data size n, train every method on every seed and measure exact suboptimality.

Suboptimality = J(best covered policy) - J(learned policy), J the exact expected true reward; the comparator is the best
policy whose concentrability is at most the coverage we built into mu (1 / good_mass), so it is 0 by construction, and
it is negative when a method finds better actions that the data covers only sparsely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch

from benchmarks.theory.bandit import (
    Bandit,
    BanditConfig,
    best_covered_policy,
    concentrability,
    expected_reward,
    greedy_policy,
    make_instances,
)
from benchmarks.theory.methods import METHOD_LABELS, METHODS, TrainConfig, run_method
from benchmarks.theory.stats import mean_ci95


ENVIRONMENTS = {
    # Some sparse actions beat the covered good action: the optimum is not covered, the comparator is not optimal.
    "uncovered-better": BanditConfig(),
    # Every sparse action is worse than the covered good action: the comparator is the optimal policy.
    "covered-optimal": BanditConfig(reward_max=3.0),
}
ENVIRONMENT_DESCRIPTIONS = {
    "uncovered-better": "r*(x,g)=3, other actions U(0,4): about a quarter of the sparse actions beat g",
    "covered-optimal": "r*(x,g)=3, other actions U(0,3): g is optimal, every sparse action is worse",
}


def good_policy(bandit: Bandit) -> torch.Tensor:
    """The policy that always plays the covered good action g(x)."""
    return torch.nn.functional.one_hot(bandit.good_action, bandit.rewards.shape[-1]).to(bandit.rewards.dtype)


def reference_policies(bandit: Bandit, coverage: float) -> dict[str, torch.Tensor]:
    return {
        "best_covered": best_covered_policy(bandit, coverage),
        "behaviour": bandit.behaviour,
        "good_action": good_policy(bandit),
        "optimal": greedy_policy(bandit.rewards),
    }


def summarise(per_seed: torch.Tensor) -> dict:
    values = [float(v) for v in per_seed]
    return {**mean_ci95(values), "per_seed": values}


def run_environment(
    name: str,
    bandit_config: BanditConfig,
    train_config: TrainConfig,
    ns: list[int],
    seeds: list[int],
    on_step: Callable[[str], None] = lambda description: None,
) -> dict:
    """All methods x data sizes on one environment; all seeds at once (one vectorised instance per seed)."""
    bandit, data = make_instances(bandit_config, seeds, max(ns))
    coverage = 1.0 / bandit_config.good_mass
    references = reference_policies(bandit, coverage)
    j_best = expected_reward(bandit, references["best_covered"])
    rows = []
    for n in ns:
        for method in METHODS:
            policies = run_method(method, bandit.behaviour, data.head(n), train_config)
            per_iterate = [j_best - expected_reward(bandit, policy) for policy in policies[1:]]
            rows.append(
                {
                    "environment": name,
                    "method": method,
                    "label": METHOD_LABELS[method],
                    "n": n,
                    **summarise(per_iterate[-1]),  # the last iterate is the output, as in the LLM recipes
                    "per_iterate_mean": [float(s.mean()) for s in per_iterate],
                }
            )
            on_step(f"{name} n={n} {method}")
    return {
        "name": name,
        "description": ENVIRONMENT_DESCRIPTIONS.get(name, ""),
        "bandit": asdict(bandit_config),
        "coverage": {
            "constructed": coverage,  # C(good-action policy) = 1 / mu(g|x)
            "best_covered_policy_max": float(concentrability(references["best_covered"], bandit.behaviour).max()),
            "optimal_policy_mean": float(concentrability(references["optimal"], bandit.behaviour).mean()),
            "min_behaviour_prob": float(bandit.behaviour.min()),
        },
        "references": {
            key: summarise(j_best - expected_reward(bandit, policy)) for key, policy in references.items()
        },
        "j_best_covered": summarise(j_best),
        "rows": rows,
        "paired_differences": paired_differences(rows, "spac"),
    }


def paired_differences(rows: list[dict], method: str) -> list[dict]:
    """suboptimality(method) - suboptimality(other), paired by seed (same bandit, same data): negative = method better."""
    by_key = {(row["method"], row["n"]): row["per_seed"] for row in rows}
    out = []
    for (other, n), other_values in by_key.items():
        if other == method:
            continue
        diffs = [a - b for a, b in zip(by_key[(method, n)], other_values)]
        out.append({"n": n, "comparison": f"{method} - {other}", **mean_ci95(diffs)})
    return out
