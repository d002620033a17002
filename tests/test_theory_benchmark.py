"""The theory benchmark (benchmarks/theory): exact expectations, the data generator, the comparator, the outputs."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from spac_hf.losses import spac_loss

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
from benchmarks.theory.experiment import good_policy
from benchmarks.theory.methods import (
    METHODS,
    TrainConfig,
    dpo_objective,
    pick,
    rows,
    run_method,
    spac_objective,
    spin_objective,
)
from benchmarks.theory.stats import mean_ci95


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
        pick(logp_x, data.chosen), pick(logp_x, data.rejected), logp_x.gather(-1, generated),
        pick(ref_x, data.chosen), pick(ref_x, data.rejected), ref_x.gather(-1, generated),
        beta=config.beta, lam=config.lam, real=config.real, smoothing=config.smoothing,
    )  # fmt: skip
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


def test_vectorised_seeds_train_exactly_like_separate_runs():
    config = TrainConfig(steps=15)
    bandit, data = make_instances(BanditConfig(), [0, 1], 45)
    together = run_method("spac", bandit.behaviour, data, config)[-1]
    for i in range(2):
        alone_data = PreferenceData(data.contexts[i], data.chosen[i], data.rejected[i])
        alone = run_method("spac", bandit.behaviour[i], alone_data, config)[-1]
        assert torch.allclose(together[i], alone, atol=1e-10)


def test_spac_beats_the_behaviour_policy_with_lots_of_data():
    bandit, data = make_instances(BanditConfig(), list(range(4)), 3000)
    policy = run_method("spac", bandit.behaviour, data, TrainConfig(steps=150))[-1]
    best = expected_reward(bandit, best_covered_policy(bandit, 2.0))
    suboptimality = best - expected_reward(bandit, policy)
    behaviour_suboptimality = best - expected_reward(bandit, bandit.behaviour)
    assert suboptimality.mean() < 0.5 * behaviour_suboptimality.mean()


def test_mean_ci95_uses_student_t():
    stats = mean_ci95([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95"] == pytest.approx(4.303 / math.sqrt(3))


def test_quick_run_writes_all_outputs(tmp_path):
    from benchmarks.theory.run import main

    main(["--quick", "--out", str(tmp_path)])
    for name in ("results.json", "table.md", "table.csv", "suboptimality.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"settings", "environments", "environment", "runtime_seconds"} <= results.keys()
    ns = results["settings"]["ns"]
    for environment in results["environments"]:
        assert environment["coverage"]["constructed"] == 2.0
        assert environment["references"]["best_covered"]["mean"] == 0.0
        assert environment["references"]["behaviour"]["mean"] > 0
        assert {(row["method"], row["n"]) for row in environment["rows"]} == {(m, n) for m in METHODS for n in ns}
        for row in environment["rows"]:
            assert len(row["per_seed"]) == len(results["settings"]["seeds"])
            assert all(
                math.isfinite(v) for v in [row["mean"], row["ci95"], *row["per_seed"], *row["per_iterate_mean"]]
            )
    csv_lines = (tmp_path / "table.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(results["environments"]) * len(METHODS) * len(ns)
    assert (tmp_path / "suboptimality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aggregated_objective_equals_the_per_example_mean():
    """Merging repeated (x, y+, y-) triples changes nothing: the loss is the mean over the examples."""
    from benchmarks.theory.methods import THEORY, aggregate

    bandit, data = make_instances(BanditConfig(n_actions=4), [0, 1], 200)  # few actions: many repeated triples
    groups = aggregate(data, 4)
    assert groups.contexts.shape[-1] < 200
    assert torch.allclose(groups.weights.sum(-1), torch.ones(2, dtype=torch.float64))
    logp = torch.log_softmax(random_logits(bandit.rewards.shape, 5), -1)
    ref_logp = torch.log_softmax(random_logits(bandit.rewards.shape, 6), -1)
    logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
    lam = THEORY.lam * math.sqrt(200)
    losses, _, _ = spac_loss(
        pick(logp_x, data.chosen), pick(logp_x, data.rejected), logp_x,
        pick(ref_x, data.chosen), pick(ref_x, data.rejected), ref_x, beta=THEORY.beta, lam=lam,
    )  # fmt: skip
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
        pick(f_x, data.chosen), pick(f_x, data.rejected), f_x,
        pick(zero, data.chosen), pick(zero, data.rejected), zero, beta=1.0, lam=2.5, smoothing="linear",
    )  # fmt: skip
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


def test_theory_settings_come_from_the_library_preset():
    from spac_hf.presets import THEORY_PRESET

    from benchmarks.theory.methods import METHOD_BY_NAME, THEORY

    assert (THEORY.beta, THEORY.lam, THEORY.lam_scaling, THEORY.iteration_data, THEORY.iterations) == (
        THEORY_PRESET["beta"], THEORY_PRESET["lam"], THEORY_PRESET["lam_scaling"], THEORY_PRESET["iteration_data"],
        THEORY_PRESET["num_iterations"],
    )  # fmt: skip
    assert METHOD_BY_NAME["spac_theory_no_pessimism"].config == replace(THEORY, pessimism=False)
    assert METHOD_BY_NAME["algorithm1"].output == "mixture"


def test_the_theory_methods_are_the_library_methods_and_variants_of_them():
    from spac_hf.methods import METHODS as LIBRARY_METHODS

    from benchmarks.theory.methods import METHOD_LIST

    at_paper_settings = [m.name for m in METHOD_LIST if not m.variant and m.name != "algorithm1"]
    assert at_paper_settings == list(LIBRARY_METHODS)
    assert all(m.record is LIBRARY_METHODS[m.record.name] for m in METHOD_LIST)
    # The exact-critic procedures keep the names the committed cells were computed under.
    assert {m.name: m.kind for m in METHOD_LIST if m.exact_critic} == {
        "dpo_bounded": "dpo_bounded",
        "algorithm1": "algorithm1",
    }
