"""A contextual bandit with exact expectations: environment, Bradley-Terry data, exact J and coverage.

Everything is tabular: contexts x in {0..X-1} (uniform), actions a in {0..A-1}, a policy is an [X, A] table of
probabilities. Because the tables are small, every expectation over contexts and actions is an exact weighted sum; only
the preference data set is a finite sample (that is what "offline" means).

Tables may carry leading batch dimensions ([S, X, A]: S independent instances, one per seed, see `stack_bandits`), so
that all seeds train in one vectorised run; every function here works on the last two dimensions.

The behaviour policy mu puts `good_mass` on one "good" action g(x) per context and spreads the rest uniformly over the
other actions, so the policy that plays g is covered with concentrability 1 / good_mass while every other action is
sparse. g is good but not optimal: some sparse actions are better, and competing with them is not what the theory
promises without coverage (see README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BanditConfig:
    n_contexts: int = 10
    n_actions: int = 10
    good_mass: float = 0.5  # mu(g(x)|x): the coverage of the good policy is 1 / good_mass
    good_reward: float = 3.0  # r*(x, g(x))
    reward_max: float = 4.0  # the other actions' rewards are Uniform(reward_min, reward_max)
    reward_min: float = 0.0

    @property
    def reward_range(self) -> float:
        """max - min of the possible rewards: a reward class [-range/2, range/2] holds r* up to a shift."""
        return max(self.good_reward, self.reward_max) - min(self.good_reward, self.reward_min)


@dataclass(frozen=True)
class Bandit:
    rewards: torch.Tensor  # r*(x, a), [..., X, A]
    behaviour: torch.Tensor  # mu(a|x), [..., X, A]
    good_action: torch.Tensor  # g(x), [..., X]
    context_probs: torch.Tensor  # rho(x), [..., X]


@dataclass(frozen=True)
class PreferenceData:
    """n comparisons (x_j, y+_j, y-_j); y+ won under the Bradley-Terry model."""

    contexts: torch.Tensor  # [..., n] long
    chosen: torch.Tensor  # [..., n] long
    rejected: torch.Tensor  # [..., n] long

    def __len__(self) -> int:
        return self.contexts.shape[-1]

    def head(self, n: int) -> PreferenceData:
        """The first n comparisons: the data sets of a sweep over n are nested, which lowers the noise between
        sizes."""
        return PreferenceData(self.contexts[..., :n], self.chosen[..., :n], self.rejected[..., :n])

    def split(self, parts: int) -> list[PreferenceData]:
        """T disjoint, contiguous parts of (almost) equal size, as the outer loop of SPAC uses them."""
        bounds = torch.linspace(0, len(self), parts + 1).round().long().tolist()
        return [
            PreferenceData(self.contexts[..., lo:hi], self.chosen[..., lo:hi], self.rejected[..., lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]


def make_bandit(config: BanditConfig, generator: torch.Generator) -> Bandit:
    X, A = config.n_contexts, config.n_actions
    good = torch.randint(A, (X,), generator=generator)
    span = config.reward_max - config.reward_min
    rewards = torch.rand(X, A, generator=generator, dtype=torch.float64) * span + config.reward_min
    rewards[torch.arange(X), good] = config.good_reward
    behaviour = torch.full((X, A), (1.0 - config.good_mass) / (A - 1), dtype=torch.float64)
    behaviour[torch.arange(X), good] = config.good_mass
    context_probs = torch.full((X,), 1.0 / X, dtype=torch.float64)
    return Bandit(rewards=rewards, behaviour=behaviour, good_action=good, context_probs=context_probs)


def sample_preferences(bandit: Bandit, n: int, generator: torch.Generator) -> PreferenceData:
    """x ~ rho, two independent responses from mu, labelled by P(y1 > y2 | x) = sigmoid(r*(x,y1) - r*(x,y2))."""
    x = torch.multinomial(bandit.context_probs, n, replacement=True, generator=generator)
    pair = torch.multinomial(bandit.behaviour[x], 2, replacement=True, generator=generator)
    y1, y2 = pair[:, 0], pair[:, 1]
    p_first_wins = torch.sigmoid(bandit.rewards[x, y1] - bandit.rewards[x, y2])
    first_wins = torch.rand(n, generator=generator, dtype=torch.float64) < p_first_wins
    chosen = torch.where(first_wins, y1, y2)
    rejected = torch.where(first_wins, y2, y1)
    return PreferenceData(contexts=x, chosen=chosen, rejected=rejected)


def stack_bandits(bandits: list[Bandit]) -> Bandit:
    return Bandit(*(torch.stack([getattr(b, f) for b in bandits]) for f in Bandit.__dataclass_fields__))


def stack_data(datasets: list[PreferenceData]) -> PreferenceData:
    return PreferenceData(
        *(torch.stack([getattr(d, f) for d in datasets]) for f in PreferenceData.__dataclass_fields__)
    )


def expected_reward(bandit: Bandit, policy: torch.Tensor) -> torch.Tensor:
    """J(pi) = E_{x~rho} E_{a~pi(.|x)} r*(x, a), exactly; one value per instance (shape [...])."""
    return (bandit.context_probs[..., None] * policy * bandit.rewards).sum(dim=(-2, -1))


def concentrability(policy: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
    """Single-policy concentrability C(pi) = max_{x,a} pi(a|x) / mu(a|x), one value per instance."""
    return (policy / behaviour).amax(dim=(-2, -1))


def best_covered_policy(bandit: Bandit, coverage: float) -> torch.Tensor:
    """argmax J(pi) over policies with C(pi) <= coverage, i.e. pi(a|x) <= coverage * mu(a|x).

    Per context this is a fractional knapsack: fill actions from the best reward down, each up to its cap, until the
    mass reaches 1. Exact, so the comparator's suboptimality is 0 by construction.
    """
    caps = (coverage * bandit.behaviour).clamp(max=1.0)
    order = bandit.rewards.argsort(dim=-1, descending=True)
    sorted_caps = caps.gather(-1, order)
    mass_before = sorted_caps.cumsum(dim=-1) - sorted_caps
    sorted_mass = torch.minimum(sorted_caps, (1.0 - mass_before).clamp(min=0.0))
    return torch.zeros_like(caps).scatter(-1, order, sorted_mass)


def greedy_policy(rewards: torch.Tensor) -> torch.Tensor:
    """The deterministic policy that plays argmax_a rewards[x, a]: the optimal policy, covered or not."""
    return torch.nn.functional.one_hot(rewards.argmax(dim=-1), rewards.shape[-1]).to(rewards.dtype)


def make_instances(config: BanditConfig, seeds: list[int], n: int) -> tuple[Bandit, PreferenceData]:
    """One bandit and n comparisons per seed, stacked; seed s alone decides instance s (so runs are reproducible)."""
    bandits, datasets = [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        bandits.append(make_bandit(config, generator))
        datasets.append(sample_preferences(bandits[-1], n, generator))
    return stack_bandits(bandits), stack_data(datasets)
