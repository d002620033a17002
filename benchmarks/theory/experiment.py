"""The sweep: for each environment and data size n, train every method on every seed and measure exact suboptimality.

Suboptimality = J(best covered policy) - J(learned policy), J the exact expected true reward; the comparator is the
best
policy whose concentrability is at most the coverage we built into mu (1 / good_mass), so it is 0 by construction, and
it is negative when a method finds better actions that the data covers only sparsely.

Every (environment, method, n) cell is written to `<cells>/<environment>/<method>_n<n>.json` as soon as it is done and
read back on a rerun with the same settings, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import torch

from spac_hf.utils import atomic_write_json, read_json

from benchmarks.theory.bandit import (
    Bandit,
    BanditConfig,
    best_covered_policy,
    concentrability,
    expected_reward,
    greedy_policy,
    make_instances,
)
from benchmarks.theory.methods import METHOD_BY_NAME, Method, TrainConfig, run_method_full
from benchmarks.theory.stats import mean_ci95


# The sparse-coverage family: one good action per context, optimal and carrying half of mu's mass (so "always g" has
# concentrability 2); every other action shares the other half and is worse, r* ~ Uniform(-1, 0.5).
SPARSE = {"good_reward": 1.0, "reward_min": -1.0, "reward_max": 0.5}
ENVIRONMENTS = {
    "sparse-30": BanditConfig(n_actions=30, **SPARSE),  # the headline instance
    # Every sparse action is worse than the covered good action: the comparator is the optimal policy.
    "covered-optimal": BanditConfig(reward_max=3.0),
    # Some sparse actions beat the covered good action: the optimum is not covered, the comparator is not optimal.
    "uncovered-better": BanditConfig(),
    "sparse-100": BanditConfig(n_actions=100, **SPARSE),  # the stress test
}
ENVIRONMENT_DESCRIPTIONS = {
    "uncovered-better": "10 actions; r*(x,g)=3, other actions U(0,4): about a quarter of the sparse actions beat g",
    "covered-optimal": "10 actions; r*(x,g)=3, other actions U(0,3): g is optimal, every sparse action is worse",
    "sparse-30": "30 actions; r*(x,g)=1 (optimal), the 29 others U(-1,0.5) share half of mu's mass (1/58 each)",
    "sparse-100": "100 actions (stress); r*(x,g)=1 (optimal), the 99 others U(-1,0.5) share half of mu's mass",
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


def summarise(per_seed: torch.Tensor | list[float]) -> dict:
    values = [float(v) for v in per_seed]
    return {**mean_ci95(values), "per_seed": values}


def method_config(
    method: Method, bandit_config: BanditConfig, steps: int | None = None, steps_scale: float = 1.0
) -> TrainConfig:
    """The method's settings on this environment: the bounded methods' class holds r* up to a shift ([-B, B] with
    B = half the reward range); `steps` (the budget sweep) replaces the steps per iteration, `steps_scale` (the smoke
    run) scales them."""
    config = replace(method.config, critic_bound=bandit_config.reward_range / 2)
    if steps is None:
        steps = max(1, round(config.steps * steps_scale))
    return replace(config, steps=steps)


def run_cell(
    method: Method, config: TrainConfig, bandit: Bandit, data, j_best: torch.Tensor, memo: dict | None = None
) -> dict:
    """One method at one n on all seeds: the output's suboptimality per seed and every iterate's. Methods that differ
    only in their output (last iterate or mixture) share one training run through `memo`."""
    started = time.perf_counter()
    key = (method.kind, config, len(data))
    memo = {} if memo is None else memo
    if key not in memo:
        memo[key] = run_method_full(method, bandit.behaviour, data, config)
    run = memo[key]
    per_iterate = torch.stack([j_best - expected_reward(bandit, policy) for policy in run.policies[1:]])  # [T, S]
    # The mixture samples one trained iterate per prompt, uniformly: J is linear in the policy, so J(mixture) is the
    # mean of the iterates' J (the library's `spac_hf.mixture` stores iter_1 .. iter_T, pi_2 .. pi_{T+1} here).
    output = per_iterate.mean(0) if method.output == "mixture" else per_iterate[-1]
    return {
        **summarise(output),
        "per_iterate_mean": [float(s.mean()) for s in per_iterate],
        "last_iterate_mean": float(per_iterate[-1].mean()),
        "mixture_mean": float(per_iterate.mean(0).mean()),
        "critic_residual": run.critic_residual,
        "seconds": round(time.perf_counter() - started, 2),
    }


def cached(path: Path | None, identity: dict, compute: Callable[[], dict]) -> dict:
    """`compute()`, or its earlier result from `path` when that was made with the same `identity`."""
    if path is not None:
        record = read_json(path)
        if record is not None and record.get("identity") == json.loads(json.dumps(identity)):
            return record["result"]
    result = compute()
    if path is not None:
        atomic_write_json(path, {"identity": identity, "result": result})
    return result


def run_environment(
    name: str,
    bandit_config: BanditConfig,
    methods: list[str],
    ns: list[int],
    seeds: list[int],
    *,
    data_size: int | None = None,
    cells: Path | None = None,
    steps_scale: float = 1.0,
    on_step: Callable[[str], None] = lambda description: None,
) -> dict:
    """All methods x data sizes on one environment; all seeds at once (one vectorised instance per seed). The data
    sets are nested: size n is the first n pairs of one data set of `data_size` (default max(ns)) pairs per seed."""
    data_size = data_size or max(ns)
    bandit, data = make_instances(bandit_config, seeds, data_size)
    coverage = 1.0 / bandit_config.good_mass
    references = reference_policies(bandit, coverage)
    j_best = expected_reward(bandit, references["best_covered"])
    rows = []
    for n in ns:
        memo = {}
        for method_name in methods:
            method = METHOD_BY_NAME[method_name]
            config = method_config(method, bandit_config, steps_scale=steps_scale)
            identity = {"bandit": asdict(bandit_config), "seeds": seeds, "n": n, "data_size": data_size,
                        "method": method.identity, "config": asdict(config)}  # fmt: skip
            path = cells / name / f"{method_name}_n{n}.json" if cells else None
            cell = cached(path, identity, partial(run_cell, method, config, bandit, data.head(n), j_best, memo))
            rows.append({"environment": name, "method": method_name, "label": method.label, "n": n, **cell})
            on_step(f"{name} n={n} {method_name}")
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
        "references": {key: summarise(j_best - expected_reward(bandit, policy)) for key, policy in references.items()},
        "j_best_covered": summarise(j_best),
        "rows": rows,
        "paired_differences": paired_differences(rows),
    }


def run_budget_sweep(
    name: str,
    bandit_config: BanditConfig,
    methods: list[str],
    ns: list[int],
    steps: list[int],
    seeds: list[int],
    *,
    data_size: int | None = None,
    cells: Path | None = None,
    on_step: Callable[[str], None] = lambda description: None,
) -> dict:
    """The optimisation budget per iteration (`steps`; one-shot DPO gets T times as many) against n, on one
    environment: whether "each iteration optimised well" matters for the comparison."""
    data_size = data_size or max(ns)
    bandit, data = make_instances(bandit_config, seeds, data_size)
    j_best = expected_reward(bandit, best_covered_policy(bandit, 1.0 / bandit_config.good_mass))
    rows = []
    for n in ns:
        for budget in steps:
            for method_name in methods:
                method = METHOD_BY_NAME[method_name]
                config = method_config(method, bandit_config, steps=budget)
                identity = {"bandit": asdict(bandit_config), "seeds": seeds, "n": n, "data_size": data_size,
                            "method": method.identity, "config": asdict(config)}  # fmt: skip
                path = cells / f"budget-{name}" / f"{method_name}_n{n}_steps{budget}.json" if cells else None
                cell = cached(path, identity, partial(run_cell, method, config, bandit, data.head(n), j_best))
                rows.append({"method": method_name, "label": method.label, "n": n, "steps": budget, **cell})
                on_step(f"budget {name} n={n} steps={budget} {method_name}")
    paired = []
    for n in ns:
        for budget in steps:
            by_method = {r["method"]: r["per_seed"] for r in rows if r["n"] == n and r["steps"] == budget}
            if "dpo" in by_method:
                for method_name, values in by_method.items():
                    if method_name != "dpo":
                        diffs = [a - b for a, b in zip(values, by_method["dpo"])]
                        comparison = f"{method_name} - dpo"
                        paired.append({"n": n, "steps": budget, "comparison": comparison, **mean_ci95(diffs)})
    return {"environment": name, "ns": ns, "steps": steps, "methods": methods, "rows": rows, "paired": paired}


# Paired comparisons: every method against DPO (beta 0.1), and the theory preset against every baseline.
THEORY_BASELINES = ("dpo_beta1", "iterative_dpo", "dpo_bounded", "spin", "spac", "spac_theory_no_pessimism")


def paired_differences(rows: list[dict]) -> list[dict]:
    """suboptimality(a) - suboptimality(b), paired by seed (same bandit, same data): negative = a better."""
    by_key = {(row["method"], row["n"]): row["per_seed"] for row in rows}
    methods = list(dict.fromkeys(row["method"] for row in rows))
    pairs = [(m, "dpo") for m in methods if m != "dpo" and "dpo" in methods]
    pairs += [("spac_theory", m) for m in THEORY_BASELINES if m in methods and "spac_theory" in methods]
    out = []
    for n in sorted({row["n"] for row in rows}):
        for a, b in pairs:
            diffs = [x - y for x, y in zip(by_key[(a, n)], by_key[(b, n)])]
            out.append({"n": n, "comparison": f"{a} - {b}", "a": a, "b": b, **mean_ci95(diffs)})
    return out
