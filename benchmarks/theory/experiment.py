"""The theory benchmark under the fair-comparison protocol (benchmarks/protocol.py): the declared design, and one
regime (instance, data size n, step budget) run end to end: tuning trials on held-out seeds, the selected trials on the
test seeds, protocol records and decision lines.

Suboptimality = J(best covered policy) - J(learned policy), J the exact expected true reward; the comparator is the
best policy whose concentrability is at most the coverage built into mu (1 / good_mass), so it is 0 by construction,
and it is negative when a method finds better actions that the data covers only sparsely. Lower is better.

Every (regime, arm, split, trial) run is written to `<cells>/...json` as soon as it is done and read back on a rerun
with the same settings, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from spac_hf.methods import METHODS
from spac_hf.utils import atomic_write_json, read_json
from spac_hf.variants import get_variant, variant_config

from benchmarks.protocol import (
    Arm,
    Budget,
    Comparison,
    Contrast,
    SearchSpace,
    check_spent,
    decide,
    group_arm,
    record,
    select_checkpoint,
)
from benchmarks.theory.bandit import (
    Bandit,
    BanditConfig,
    PreferenceData,
    best_covered_policy,
    concentrability,
    expected_reward,
    greedy_policy,
    make_instances,
)
from benchmarks.theory.methods import TrainConfig, procedure, train
from benchmarks.theory.stats import mean_ci95


# ----------------------------------------------------------------------------------------------- the instances

# The sparse-coverage family: one good action per context, optimal and carrying half of mu's mass (so "always g" has
# concentrability 2); every other action shares the other half and is worse, r* ~ Uniform(-1, 0.5).
SPARSE = {"good_reward": 1.0, "reward_min": -1.0, "reward_max": 0.5}
ENVIRONMENTS = {
    "sparse-30": BanditConfig(n_actions=30, **SPARSE),  # the headline instance
    # Every sparse action is worse than the covered good action: the comparator is the optimal policy.
    "covered-optimal": BanditConfig(reward_max=3.0),
    # Some sparse actions beat the covered good action: the optimum is not covered, the comparator is not optimal.
    "uncovered-better": BanditConfig(),
}
ENVIRONMENT_DESCRIPTIONS = {
    "sparse-30": "30 actions; r*(x,g)=1 (optimal), the 29 others U(-1,0.5) share half of mu's mass (1/58 each)",
    "covered-optimal": "10 actions; r*(x,g)=3, other actions U(0,3): g is optimal, every sparse action is worse",
    "uncovered-better": "10 actions; r*(x,g)=3, other actions U(0,4): about a quarter of the sparse actions beat g",
}

# ----------------------------------------------------------------------------------------------- the design
# Declared before the run (benchmarks/theory/README.md "Design"); changing any of it changes the comparison.

TUNING_SEEDS = tuple(range(100, 110))  # held-out instances: a new bandit and data set each, never a test seed
TEST_SEEDS = tuple(range(20))
NS = (30, 100, 300, 1000, 3000)
PRIMARY_BUDGET = 300  # optimizer steps (full batch) per run, every arm
BUDGETS = (30, 150, 300)  # the budget sweep, on the headline instance, at every n
SWEEP_INSTANCE = "sparse-30"
CHECKPOINTS_PER_RUN = 10  # every arm is scored at steps S/10, 2S/10, ..., S
TRIALS_PER_ARM = 4
LEARNING_RATES = [0.03, 0.3]  # Adam on the logits (or the bounded table)
DELTA = 0.05  # non-inferiority margin, in suboptimality (the behaviour policy's is 0.6 to 0.75 on these instances)


def _space(**strength: list) -> SearchSpace:
    return SearchSpace({**strength, "learning_rate": LEARNING_RATES})


# Each arm: its strength parameter x the learning rate, 2 x 2 = 4 trials; the steps are chosen by early stopping (the
# checkpoint rule), the same for every arm. The SPAC presets keep their beta (part of what the preset is), tune lambda.
ARMS = (
    Arm("dpo", _space(beta=[0.1, 1.0])),
    Arm("iterative_dpo", _space(beta=[0.1, 1.0])),
    Arm("dpo_bounded", _space(beta=[0.1, 1.0])),
    Arm("spin", _space(beta=[0.1, 1.0])),
    Arm("spac", _space(beta=[0.1, 1.0])),
    Arm("spac_theory", _space(lam=[0.1, 0.3])),
    Arm("spac_theory", _space(lam=[0.1, 0.3]), name="spac_theory_sampled", settings={"self_play": "sampled"}),
    Arm("spac_theory_no_pessimism", _space(lam=[0.1, 0.3])),
    Arm("algorithm1", _space(lam=[0.1, 0.3])),
)
SPAC_ARMS = ("spac", "spac_theory", "spac_theory_sampled", "algorithm1")
BASELINE_ARMS = ("dpo", "iterative_dpo", "dpo_bounded", "spin")
LOWER = {"higher_is_better": False}  # suboptimality: a minus b < 0 means a is better
CONTRASTS = (
    Contrast("best SPAC arm minus best baseline", SPAC_ARMS, BASELINE_ARMS, "noninferiority", DELTA, **LOWER),
    Contrast("SPAC (theory preset) minus DPO", "spac_theory", "dpo", **LOWER),
    Contrast("SPAC (theory preset) minus iterative DPO", "spac_theory", "iterative_dpo", **LOWER),
    Contrast("SPAC (theory preset) minus bounded-reward DPO", "spac_theory", "dpo_bounded", **LOWER),
    Contrast("SPAC (theory preset) minus SPIN", "spac_theory", "spin", **LOWER),
    Contrast("SPAC (paper settings) minus DPO", "spac", "dpo", **LOWER),
    Contrast("SPAC (theory preset) minus pessimism off", "spac_theory", "spac_theory_no_pessimism", **LOWER),
    Contrast(
        "SPAC (theory preset), one sampled y minus exact",
        "spac_theory_sampled",
        "spac_theory",
        "noninferiority",
        DELTA,
        **LOWER,
    ),
)
ARM_LABELS = {arm.name: get_variant(arm.variant).label for arm in ARMS} | {
    "spac_theory_sampled": "SPAC (theory preset), one sampled y per pair"
}


def checkpoints(steps: int) -> tuple[int, ...]:
    every = steps // CHECKPOINTS_PER_RUN
    return tuple(range(every, steps + 1, every))


def arm_config(arm: Arm, params: dict, steps: int, bandit_config: BanditConfig) -> TrainConfig:
    """The variant's overrides on the bandit's config, then the arm's fixed settings and the trial's parameters. The
    bounded tables hold r* up to a shift: [-B, B], B = half the reward range (they are told the range)."""
    base = TrainConfig(max_steps=steps, critic_bound=bandit_config.reward_range / 2)
    return replace(variant_config(arm.variant, base), **arm.settings, **params)


def planned_budget(arm: Arm, steps: int, n: int) -> Budget:
    """What the arm's schedule will spend: T iterations of floor(budget / T) steps (one-shot methods: T = 1), so a
    budget that T does not divide shows up as a shortfall that `Comparison.validate` refuses."""
    variant = get_variant(arm.variant)
    iterations = variant.overrides.get("num_iterations", TrainConfig.num_iterations)
    iterations = iterations if METHODS[variant.method].iterative else 1
    return Budget(iterations * (steps // iterations), n, checkpoints(steps))


def comparison(
    n: int,
    steps: int,
    arms: tuple[Arm, ...] = ARMS,
    contrasts=CONTRASTS,
    trials=TRIALS_PER_ARM,
    tuning_seeds=TUNING_SEEDS,
    test_seeds=TEST_SEEDS,
) -> Comparison:
    """The comparison at data size n and budget `steps`, each arm carrying the budget its schedule plans to spend (so
    `validate` refuses an arm whose schedule does not fit the budget)."""
    planned = tuple(replace(arm, budget=planned_budget(arm, steps, n), trials=trials) for arm in arms)
    return Comparison(
        benchmark="theory",
        arms=planned,
        budget=Budget(steps, n, checkpoints(steps)),
        trials_per_arm=trials,
        tuning_seeds=tuple(tuning_seeds),
        test_seeds=tuple(test_seeds),
        contrasts=tuple(contrasts),
    )


# ----------------------------------------------------------------------------------------------- one regime


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


class Split:
    """The instances of one seed set (tuning or test) at their largest n; `head(n)` nests the data sizes."""

    def __init__(self, bandit_config: BanditConfig, seeds: tuple[int, ...], data_size: int):
        self.seeds = seeds
        self.bandit, self.data = make_instances(bandit_config, list(seeds), data_size)
        coverage = 1.0 / bandit_config.good_mass
        self.references = reference_policies(self.bandit, coverage)
        self.j_best = expected_reward(self.bandit, self.references["best_covered"])

    def score(self, policy: torch.Tensor) -> torch.Tensor:
        return self.j_best - expected_reward(self.bandit, policy)

    def head(self, n: int) -> PreferenceData:
        return self.data.head(n)

    def data_sha256(self, n: int) -> list[str]:
        data = self.head(n)
        out = []
        for i in range(len(self.seeds)):
            digest = hashlib.sha256()
            for tensor in (data.contexts[i], data.chosen[i], data.rejected[i]):
                digest.update(tensor.contiguous().numpy().tobytes())
            out.append(digest.hexdigest())
        return out


def config_hash(config: TrainConfig, variant: str) -> str:
    text = json.dumps({"variant": variant, **asdict(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_arm(arm: Arm, config: TrainConfig, split: Split, n: int, steps: int, seed_key: int) -> dict:
    """One arm at one trial's settings on every instance of `split`: the score curve per instance, and the spend."""
    variant = get_variant(arm.variant)
    generator = torch.Generator().manual_seed(seed_key)
    wall, cpu = time.perf_counter(), time.process_time()
    trained = train(variant, config, split.bandit.behaviour, split.head(n), checkpoints(steps), split.score, generator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "curve": {str(c): [float(v) for v in values] for c, values in trained.curve.items()},
        "optimizer_steps": trained.optimizer_steps,
        "self_play_samples": trained.self_play_samples,
        "pair_evaluations": trained.pair_evaluations,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "procedure": procedure(variant),
    }


def cached(path: Path | None, identity: dict, compute: Callable[[], dict]) -> dict:
    """`compute()`, or its earlier result from `path` when that was made with the same `identity`."""
    identity = json.loads(json.dumps(identity, default=str))
    if path is not None:
        stored = read_json(path)
        if stored is not None and stored.get("identity") == identity:
            return stored["result"]
    result = compute()
    if path is not None:
        atomic_write_json(path, {"identity": identity, "result": result})
    return result


def _mean_curve(result: dict) -> dict[int, float]:
    return {int(c): sum(values) / len(values) for c, values in result["curve"].items()}


def run_regime(
    instance: str,
    n: int,
    steps: int,
    splits: dict[str, Split],
    plan: Comparison,
    *,
    cells: Path | None = None,
    on_run: Callable[[str], None] = lambda description: None,
) -> dict:
    """Tune every arm on the tuning seeds (the same trials for every arm), run each rule's choice on the test seeds,
    and decide every contrast: the regime's trials, records and decisions."""
    bandit_config = ENVIRONMENTS[instance]
    regime = f"{instance} n={n} steps={steps}"

    def run_cell(arm: Arm, params: dict, index: int, split: str) -> tuple[TrainConfig, dict]:
        """The arm at trial `index`'s settings on `split` (cached under everything the result depends on)."""
        config = arm_config(arm, params, steps, bandit_config)
        identity = {
            "regime": regime,
            "arm": arm.name,
            "split": split,
            "seeds": splits[split].seeds,
            "config": asdict(config),
            "variant": arm.variant,
            "bandit": asdict(bandit_config),
        }
        path = cells / instance / f"n{n}_steps{steps}" / f"{arm.name}_{split}_{index}.json" if cells else None
        seed_key = n if split == "tuning" else n + 1  # test runs draw apart from tuning runs
        return config, cached(path, identity, lambda: run_arm(arm, config, splits[split], n, steps, seed_key))

    trials, records, chosen, arm_runs = [], [], {}, {}
    for arm in plan.arms:
        points = arm.search.trials(plan.trials_per_arm)
        curves = []
        for index, params in enumerate(points):
            _, result = run_cell(arm, params, index, "tuning")
            curve = _mean_curve(result)
            curves.append(curve)
            trials.append(
                {
                    "regime": regime,
                    "instance": instance,
                    "n": n,
                    "budget": steps,
                    "arm": arm.name,
                    "variant": arm.variant,
                    "trial": index,
                    "params": params,
                    "val_curve": curve,
                    "wall_s": result["wall_s"],
                    "cpu_s": result["cpu_s"],
                }
            )
            on_run(f"{regime} {arm.name} trial {index}")
        # The validation rule: the best (trial, checkpoint); the last rule: the best trial at the last checkpoint.
        best = {c: select_checkpoint(curve, higher_is_better=False) for c, curve in enumerate(curves)}
        val_trial = min(range(len(curves)), key=lambda t: (curves[t][best[t]], t))
        last_trial = min(range(len(curves)), key=lambda t: (curves[t][steps], t))
        rules = {"validation": (val_trial, best[val_trial]), "last": (last_trial, steps)}
        for rule, (index, checkpoint) in rules.items():
            params = points[index]
            config, result = run_cell(arm, params, index, "test")
            arm_runs[(arm.name, rule)] = result
            chosen[(arm.name, rule)] = {
                "trial": index,
                "params": params,
                "checkpoint": checkpoint,
                "val_score": curves[index][checkpoint],
            }
            test_scores = result["curve"][str(checkpoint)]
            seeds = splits["test"].seeds
            shas = splits["test"].data_sha256(n)
            for i, seed in enumerate(seeds):
                records.append(
                    record(
                        benchmark="theory",
                        regime=regime,
                        arm=arm.name,
                        variant=arm.variant,
                        method=get_variant(arm.variant).method,
                        seed=seed,
                        optimizer_steps=result["optimizer_steps"],
                        pairs_seen=n,
                        self_play_samples=result["self_play_samples"],
                        tokens_trained=result["pair_evaluations"],
                        wall_s=round(result["wall_s"] / len(seeds), 4),
                        cpu_s=round(result["cpu_s"] / len(seeds), 4),
                        data_sha256=shas[i],
                        trial=index,
                        params=params,
                        checkpoint=checkpoint,
                        checkpoint_rule=rule,
                        val_score=chosen[(arm.name, rule)]["val_score"],
                        test_score=test_scores[i],
                        config_hash=config_hash(config, arm.variant),
                    )
                )
        on_run(f"{regime} {arm.name} test")
    decisions = []
    for rule in ("validation", "last"):
        validation = {arm.name: chosen[(arm.name, rule)]["val_score"] for arm in plan.arms}
        scores = {
            arm.name: [r["test_score"] for r in records if r["arm"] == arm.name and r["checkpoint_rule"] == rule]
            for arm in plan.arms
        }
        for contrast in plan.contrasts:
            a = group_arm(contrast.a, validation, contrast.higher_is_better)
            b = group_arm(contrast.b, validation, contrast.higher_is_better)
            decision = decide([x - y for x, y in zip(scores[a], scores[b], strict=True)], contrast)
            # The decision's `n` counts seeds; in these rows `n` is the data size, as everywhere in the benchmark.
            decisions.append(
                {
                    **asdict(decision),
                    "seeds": decision.n,
                    "regime": regime,
                    "instance": instance,
                    "n": n,
                    "budget": steps,
                    "checkpoint_rule": rule,
                    "a_arm": a,
                    "b_arm": b,
                }
            )
    summary = []
    for arm in plan.arms:
        for rule in ("validation", "last"):
            values = [r["test_score"] for r in records if r["arm"] == arm.name and r["checkpoint_rule"] == rule]
            summary.append(
                {
                    "regime": regime,
                    "instance": instance,
                    "n": n,
                    "budget": steps,
                    "arm": arm.name,
                    "label": ARM_LABELS[arm.name],
                    "checkpoint_rule": rule,
                    **chosen[(arm.name, rule)],
                    **mean_ci95(values),
                }
            )
    test = splits["test"]
    references = {key: mean_ci95([float(v) for v in test.score(policy)]) for key, policy in test.references.items()}
    return {
        "regime": regime,
        "instance": instance,
        "n": n,
        "budget": steps,
        "trials": trials,
        "records": records,
        "decisions": decisions,
        "summary": summary,
        "references": references,
        "spent_flags": check_spent(plan, records),
        "coverage": {
            "constructed": 1.0 / bandit_config.good_mass,
            "optimal_policy_mean": float(concentrability(test.references["optimal"], test.bandit.behaviour).mean()),
        },
    }
