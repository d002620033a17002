"""The theory benchmark (benchmarks/theory): exact expectations, the data generator, the comparator, the outputs."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from spac_hf.losses import spac_loss
from spac_hf.variants import VARIANTS, get_variant, variant_config

from benchmarks.protocol import RECORD_FIELDS, ProtocolError
from benchmarks.theory.bandit import (
    Bandit,
    BanditConfig,
    PreferenceData,
    best_covered_policy,
    concentrability,
    expected_reward,
    make_bandit,
    make_instances,
    sample_preferences,
)
from benchmarks.theory.experiment import ARMS, CONTRASTS, comparison, good_policy
from benchmarks.theory.methods import (
    TrainConfig,
    aggregate,
    dpo_objective,
    pick,
    rows,
    spac_objective,
    spin_objective,
    train,
)
from benchmarks.theory.stats import mean_ci95


THEORY = variant_config("spac_theory", TrainConfig())


def final_policy(variant: str, behaviour, data, config: TrainConfig) -> torch.Tensor:
    """The policy a run ends with: its score function records the policy it is given."""
    seen = []
    train(get_variant(variant), config, behaviour, data, [config.max_steps], lambda p: seen.append(p) or p.sum())
    return seen[-1]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: a second intra-op thread only waits for a core on a shared 2-core machine (100x slower here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def instance(seed: int = 0, n: int = 60, config: BanditConfig | None = None) -> tuple[Bandit, PreferenceData]:
    config = config or BanditConfig()
    generator = torch.Generator().manual_seed(seed)
    bandit = make_bandit(config, generator)
    return bandit, sample_preferences(bandit, n, generator)


def random_logits(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_exact_self_play_expectation_matches_monte_carlo():
    """The weighted sum over actions equals the mean of the LLM-style loss with sampled y ~ pi_t."""
    bandit, data = instance(n=40)
    config = TrainConfig()
    logp = torch.log_softmax(random_logits(bandit.rewards.shape, 1), -1)
    ref_logp = torch.log_softmax(random_logits(bandit.rewards.shape, 2), -1)
    exact = spac_objective(config)(logp, ref_logp, data)

    samples = 4000
    generator = torch.Generator().manual_seed(3)
    ref_x, logp_x = rows(ref_logp, data.contexts), rows(logp, data.contexts)
    generated = torch.multinomial(ref_x.exp(), samples, replacement=True, generator=generator)  # [n, samples]
    losses, _, _ = spac_loss(
        pick(logp_x, data.chosen),
        pick(logp_x, data.rejected),
        logp_x.gather(-1, generated),
        pick(ref_x, data.chosen),
        pick(ref_x, data.rejected),
        ref_x.gather(-1, generated),
        beta=config.beta,
        lam=config.lam,
        real=config.real_response,
        smoothing=config.smoothing,
    )
    per_sample = losses.mean(0)  # the data-set loss for each independent draw of the generated responses
    standard_error = per_sample.std() / math.sqrt(samples)
    assert abs(per_sample.mean() - exact) < 4 * standard_error + 1e-9
    assert standard_error > 0  # the test would be vacuous if the sampled loss did not vary


@pytest.mark.parametrize("objective", [spac_objective, spin_objective, dpo_objective])
def test_losses_at_the_reference_are_the_closed_form(objective):
    """At theta = pi_t every h is 0: SPAC gives (1 + lam) log 2, SPIN and DPO log 2 (per instance, summed)."""
    bandit, data = make_instances(BanditConfig(), [0, 1], 30)
    config = TrainConfig(lam=1.0)
    logp = torch.log_softmax(random_logits(bandit.rewards.shape, 4), -1)
    expected = {spac_objective: 2.0, spin_objective: 1.0, dpo_objective: 1.0}[objective] * math.log(2) * 2
    assert float(objective(config)(logp, logp, data)) == pytest.approx(expected, rel=1e-12)


def test_bradley_terry_labels_match_sigmoid_of_reward_gap():
    rewards = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    bandit = Bandit(
        rewards=rewards,
        behaviour=torch.full((1, 2), 0.5, dtype=torch.float64),
        good_action=torch.tensor([1]),
        context_probs=torch.ones(1, dtype=torch.float64),
    )
    data = sample_preferences(bandit, 40_000, torch.Generator().manual_seed(0))
    distinct = data.chosen != data.rejected
    rate = (data.chosen[distinct] == 1).double().mean().item()
    target = torch.sigmoid(torch.tensor(1.0)).item()
    standard_error = math.sqrt(target * (1 - target) / int(distinct.sum()))
    assert abs(rate - target) < 4 * standard_error
    assert 0.4 < distinct.double().mean().item() < 0.6  # two independent draws from mu(.) = (1/2, 1/2)


def test_comparator_is_the_best_covered_policy():
    config = BanditConfig()
    bandit, _ = make_instances(config, list(range(8)), 1)
    coverage = 1.0 / config.good_mass
    best = best_covered_policy(bandit, coverage)
    assert torch.allclose(best.sum(-1), torch.ones_like(best.sum(-1)))
    assert (concentrability(best, bandit.behaviour) <= coverage + 1e-12).all()
    assert torch.allclose(
        concentrability(good_policy(bandit), bandit.behaviour), torch.tensor(coverage, dtype=best.dtype)
    )
    j_best = expected_reward(bandit, best)
    # No covered policy beats it: random feasible mixtures of the good policy and mu (C <= 2) never do.
    weights = torch.rand(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for w in weights:
        mixture = w * good_policy(bandit) + (1 - w) * bandit.behaviour
        assert (expected_reward(bandit, mixture) <= j_best + 1e-12).all()
    assert torch.equal(j_best - expected_reward(bandit, best), torch.zeros_like(j_best))
    assert (j_best - expected_reward(bandit, bandit.behaviour) > 0).all()


def test_split_is_disjoint_and_complete():
    _, data = instance(n=31)
    parts = data.split(3)
    assert [len(p) for p in parts] == [10, 11, 10]
    assert torch.equal(torch.cat([p.contexts for p in parts]), data.contexts)


@pytest.mark.parametrize("variant", ["spac", "algorithm1"])
def test_vectorised_seeds_train_exactly_like_separate_runs(variant):
    config = variant_config(variant, TrainConfig(max_steps=30, critic_bound=1.5))
    bandit, data = make_instances(BanditConfig(), [0, 1], 45)
    together = final_policy(variant, bandit.behaviour, data, config)
    for i in range(2):
        alone_data = PreferenceData(data.contexts[i], data.chosen[i], data.rejected[i])
        alone = final_policy(variant, bandit.behaviour[i], alone_data, config)
        assert torch.allclose(together[i], alone, atol=1e-10)


def test_spac_beats_the_behaviour_policy_with_lots_of_data():
    bandit, data = make_instances(BanditConfig(), list(range(4)), 3000)
    policy = final_policy("spac", bandit.behaviour, data, TrainConfig(max_steps=450))
    best = expected_reward(bandit, best_covered_policy(bandit, 2.0))
    suboptimality = best - expected_reward(bandit, policy)
    behaviour_suboptimality = best - expected_reward(bandit, bandit.behaviour)
    assert suboptimality.mean() < 0.5 * behaviour_suboptimality.mean()


def test_mean_ci95_uses_student_t():
    stats = mean_ci95([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95"] == pytest.approx(4.303 / math.sqrt(3))


def test_quick_run_writes_protocol_records_and_decisions(tmp_path):
    from benchmarks.theory.run import QUICK, main

    main(["--quick", "--out", str(tmp_path / "out"), "--cells", str(tmp_path / "cells")])
    for name in ("results.json", "table.md", "table.csv", "suboptimality.png", "budget.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert (tmp_path / "out" / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["partial"] is False and results["spent_flags"] == []
    regimes = [r["regime"] for r in results["regimes"]]
    seeds = QUICK["test_seeds"]
    assert len(regimes) == len(QUICK["ns"]) * (1 + len(QUICK["sweep"]))
    # One record per (regime, arm, test seed, checkpoint rule), every field of the protocol, the budget spent exactly.
    assert len(results["records"]) == len(regimes) * len(ARMS) * len(seeds) * 2
    for row in results["records"]:
        assert tuple(row) == RECORD_FIELDS and row["seed"] in seeds and math.isfinite(row["test_score"])
        steps = int(row["regime"].rsplit("steps=", 1)[1])
        assert row["optimizer_steps"] == steps and row["checkpoint"] <= steps and len(row["data_sha256"]) == 64
        assert row["self_play_samples"] == (0 if row["arm"] != "spac_theory_sampled" else row["pairs_seen"] * 10)
    # Equal tuning effort: 4 trials per arm and regime, all on tuning seeds.
    declared = comparison(30, 30, tuning_seeds=QUICK["tuning_seeds"], test_seeds=seeds)
    declared.check_trials(results["trials"])
    # A decision per contrast, regime and rule; the line quotes the paired mean and interval.
    assert len(results["decisions"]) == len(regimes) * len(CONTRASTS) * 2
    for d in results["decisions"]:
        assert (
            d["seeds"] == len(seeds) and d["ci_low"] <= d["mean"] <= d["ci_high"] and f"{d['mean']:+.3f}" in d["line"]
        )
    # The report is rebuilt from results.json alone and shows every decision line.
    table = (tmp_path / "out" / "table.md").read_text()
    assert all(d["line"] in table for d in results["decisions"])
    # A rerun reuses every finished regime: nothing recomputed, the same rows.
    again = main(["--quick", "--out", str(tmp_path / "out"), "--cells", str(tmp_path / "nowhere")])
    assert again["records"] == results["records"] and not (tmp_path / "nowhere").exists()


def test_the_design_is_equal_for_every_arm_and_refuses_a_budget_a_schedule_cannot_spend():
    for n in (30, 3000):
        for steps in (30, 150, 300):
            plan = comparison(n, steps)
            plan.validate()
            assert {arm.budget.optimizer_steps for arm in plan.arms} == {steps}
            assert {arm.search.size for arm in plan.arms} == {plan.trials_per_arm}
    assert not set(comparison(30, 30).tuning_seeds) & set(comparison(30, 30).test_seeds)
    with pytest.raises(
        ProtocolError, match="arm 'iterative_dpo': budget.optimizer_steps 99 differs from the comparison's 100"
    ):
        comparison(300, 100).validate()
    with pytest.raises(ProtocolError, match="no primary contrast declared"):
        comparison(300, 300, contrasts=()).validate()


def test_sampled_self_play_is_the_mean_of_the_per_example_sampled_loss():
    """One y ~ pi_t per pair, merged with its group: the objective is the mean over examples of the LLM loss."""
    bandit, data = make_instances(BanditConfig(n_actions=4), [0, 1], 200)  # few actions: groups with many samples
    logp = torch.log_softmax(random_logits(bandit.rewards.shape, 5), -1)
    ref_logp = torch.log_softmax(random_logits(bandit.rewards.shape, 6), -1)
    generated = torch.randint(4, (2, 200), generator=torch.Generator().manual_seed(7))
    groups = aggregate(data, 4, generated)
    logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
    losses, _, _ = spac_loss(
        pick(logp_x, data.chosen),
        pick(logp_x, data.rejected),
        pick(logp_x, generated),
        pick(ref_x, data.chosen),
        pick(ref_x, data.rejected),
        pick(ref_x, generated),
        beta=THEORY.beta,
        lam=THEORY.lam * math.sqrt(200),
    )
    per_example = losses.squeeze(-1).mean(-1).sum()
    assert float(spac_objective(THEORY)(logp, ref_logp, groups)) == pytest.approx(float(per_example), rel=1e-12)
    exact = float(spac_objective(THEORY)(logp, ref_logp, aggregate(data, 4)))
    assert abs(exact - float(per_example)) > 1e-3  # the sample is not the expectation


def test_mixture_output_is_the_mean_of_the_iterates_scores():
    bandit, data = make_instances(BanditConfig(), [0, 1], 90)
    config = variant_config("spac_theory", TrainConfig(max_steps=20, num_iterations=10))
    scores = {}
    for output in ("last", "mixture"):
        variant = replace(get_variant("spac_theory"), output=output)
        trained = train(variant, config, bandit.behaviour, data, range(1, 21), lambda p: expected_reward(bandit, p))
        scores[output] = trained.curve
    iterate_ends = [scores["last"][s] for s in range(2, 21, 2)]  # T = 10 iterations of 2 steps
    torch.testing.assert_close(scores["mixture"][20], torch.stack(iterate_ends).mean(0))
    torch.testing.assert_close(scores["mixture"][5], torch.stack([scores["last"][s] for s in (2, 4, 5)]).mean(0))


def test_projected_adam_reaches_the_exact_bounded_critic():
    """The bounded arms train their table by projected Adam; with enough steps it is the exact solver's solution."""
    from benchmarks.theory.methods import critic_objective, critic_problem, solve_bounded_critic

    bandit, data = make_instances(BanditConfig(n_actions=6), [0, 1], 120)
    groups = aggregate(data, 6)
    linear = critic_problem(groups, bandit.rewards.shape, bandit.behaviour)
    exact, _ = solve_bounded_critic(linear, groups, bandit.rewards.shape, 2.5, 1.0)
    config = replace(
        variant_config("algorithm1", TrainConfig(max_steps=3000, critic_bound=1.0)),
        num_iterations=1,
        lam=2.5,
        lam_scaling="constant",
        learning_rate=0.05,
    )
    seen = []
    train(get_variant("algorithm1"), config, bandit.behaviour, data, [3000], lambda p: seen.append(p) or p.sum())
    # pi = mu exp(f / beta) / Z gives f up to a shift per context, which the critic objective does not see.
    critic = (seen[-1].log() - bandit.behaviour.log()) * config.beta
    gap = critic_objective(critic, linear, groups, 2.5) - critic_objective(exact, linear, groups, 2.5)
    assert (gap > -1e-9).all() and (gap < 1e-3).all()


def test_aggregated_objective_equals_the_per_example_mean():
    """Merging repeated (x, y+, y-) triples changes nothing: the loss is the mean over the examples."""
    bandit, data = make_instances(BanditConfig(n_actions=4), [0, 1], 200)  # few actions: many repeated triples
    groups = aggregate(data, 4)
    assert groups.contexts.shape[-1] < 200
    assert torch.allclose(groups.weights.sum(-1), torch.ones(2, dtype=torch.float64))
    logp = torch.log_softmax(random_logits(bandit.rewards.shape, 5), -1)
    ref_logp = torch.log_softmax(random_logits(bandit.rewards.shape, 6), -1)
    logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
    lam = THEORY.lam * math.sqrt(200)
    losses, _, _ = spac_loss(
        pick(logp_x, data.chosen),
        pick(logp_x, data.rejected),
        logp_x,
        pick(ref_x, data.chosen),
        pick(ref_x, data.rejected),
        ref_x,
        beta=THEORY.beta,
        lam=lam,
    )
    per_example = (ref_x.exp() * losses).sum(-1).mean(-1).sum()
    assert float(spac_objective(THEORY)(logp, ref_logp, groups)) == pytest.approx(float(per_example), rel=1e-12)


def test_bounded_critic_objective_is_the_linear_spac_loss_and_is_solved():
    """Algorithm 1's critic objective is `spac_loss(smoothing="linear", beta=1)` with h = f, weighted by pi_t; the
    solver reaches its minimiser (projected gradient 0) and no random feasible critic does better."""
    from benchmarks.theory.methods import aggregate, critic_objective, critic_problem, solve_bounded_critic

    bandit, data = make_instances(BanditConfig(n_actions=6), [0, 1], 120)
    groups = aggregate(data, 6)
    policy = torch.softmax(random_logits(bandit.rewards.shape, 7), -1)
    linear = critic_problem(groups, bandit.rewards.shape, policy)
    f = random_logits(bandit.rewards.shape, 8).clamp(-1, 1)
    f_x, pi_x = rows(f, data.contexts), rows(policy, data.contexts)
    zero = torch.zeros_like(f_x)
    losses, _, _ = spac_loss(
        pick(f_x, data.chosen),
        pick(f_x, data.rejected),
        f_x,
        pick(zero, data.chosen),
        pick(zero, data.rejected),
        zero,
        beta=1.0,
        lam=2.5,
        smoothing="linear",
    )
    direct = (pi_x * losses).sum(-1).mean(-1)
    torch.testing.assert_close(critic_objective(f, linear, groups, 2.5), direct)

    solution, residual = solve_bounded_critic(linear, groups, bandit.rewards.shape, 2.5, 1.0)
    assert residual < 1e-8 and solution.abs().max() <= 1.0
    best = critic_objective(solution, linear, groups, 2.5)
    for seed in range(20):
        other = 2 * torch.rand(f.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1
        assert (critic_objective(other, linear, groups, 2.5) >= best - 1e-12).all()
        nearby = (solution + 0.01 * (other - solution)).clamp(-1, 1)
        assert (critic_objective(nearby, linear, groups, 2.5) >= best - 1e-12).all()


def test_theory_settings_come_from_the_variant_records():
    assert {k: getattr(THEORY, k) for k in VARIANTS["spac_theory"].overrides} == dict(
        VARIANTS["spac_theory"].overrides
    )
    assert variant_config("spac_theory_no_pessimism", TrainConfig()) == replace(THEORY, use_pessimism=False)
    assert {arm.variant for arm in ARMS} <= set(VARIANTS)
    assert get_variant("algorithm1").output == get_variant("spac_theory").output == "mixture"
