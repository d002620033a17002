"""DPO, SPIN, SPAC and Algorithm 1 on tabular policies, through the LLM code's losses and its change of variables.

A policy is a table of logits theta[x, a]; log pi_theta(a|x) = log_softmax(theta[x])[a]. Each loss below is computed by
`spac_hf.losses` from per-response log-probabilities exactly as the LLM trainer does, so the critic is
h(y) = beta * (log pi_theta(y|x) - log pi_t(y|x)) with pi_t the iterate the iteration started from.

The self-play response y ~ pi_t(.|x_j) is either taken in exact expectation (the loss averaged over every action with
weights pi_t(a|x_j); because pi_t carries no gradient this is also the exact expectation of the sampled loss's
gradient) or sampled once per pair and iteration, as the LLM loop generates (`TrainConfig.self_play`).

Tables may have a leading instance dimension ([S, X, A] logits, [S, n] data): each instance's loss is its mean over its
examples, and the objective is the sum over instances, so the instances do not interact (Adam is per-parameter), and
one vectorised run trains all seeds exactly as separate runs would.

What is trained is a variant of `spac_hf.variants` (its overrides applied to `TrainConfig` by `variant_config`); the
two bandit-only variants train a bounded table instead of the logits: bounded-reward DPO (the Bradley-Terry reward) and
Algorithm 1 (each iteration's critic), by projected Adam, then the closed-form policy step. `solve_bounded_critic`
solves the same problems exactly; the tests use it to check the objectives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from spac_hf.losses import LogProbs, preference_loss, scaled_lam, spac_loss
from spac_hf.methods import METHODS
from spac_hf.variants import Variant

from benchmarks.theory.bandit import PreferenceData


@dataclass(frozen=True)
class TrainConfig:
    """One arm's settings on tables. The first fields carry `SPACConfig`'s names, so `spac_hf.variants.variant_config`
    applies a variant's overrides here exactly as it does to the LLM trainer's config."""

    beta: float = 0.1  # the paper's default KL strength (1 / mirror-descent step)
    lam: float = 1.0  # the paper's practical lambda
    lam_scaling: str = "constant"  # "sqrt_n": lambda = lam * sqrt(pairs of the iteration), as SPACConfig
    iteration_data: str = "split"  # "split": T disjoint parts; "full": every iteration trains on all n pairs
    num_iterations: int = 3  # T
    use_pessimism: bool = True  # SPAC only: False drops the pessimism term (the exact ablation)
    learning_rate: float = 0.3  # Adam, on the logits (or on the bounded reward / critic table)
    real_response: str = "average"  # SPAC's data response y': the mean over the pair, i.e. E_mu
    smoothing: str = "sigmoid"
    # Bandit only:
    max_steps: int = 300  # full-batch optimizer steps in all (the budget), max_steps / T per iteration
    self_play: str = "exact"  # "exact": y ~ pi_t in exact expectation; "sampled": one y per pair and iteration
    critic_bound: float = 1.0  # bounded procedures: the reward / critic table lies in [-B, B]

    def __post_init__(self):
        if self.self_play not in ("exact", "sampled"):
            raise ValueError(f"`self_play` must be 'exact' or 'sampled', got {self.self_play!r}.")
        if self.iteration_data not in ("split", "full"):
            raise ValueError(f"`iteration_data` must be 'split' or 'full', got {self.iteration_data!r}.")
        if self.max_steps % self.num_iterations:
            raise ValueError(
                f"`max_steps` {self.max_steps} is not a multiple of `num_iterations` {self.num_iterations}"
            )


def procedure(variant: Variant) -> str:
    """How a variant is trained on tables: its library method's loss, or a bounded table trained by projected Adam
    (`dpo_bounded`: the Bradley-Terry reward; `algorithm1`: Algorithm 1's critic) with the closed-form policy step."""
    if variant.tabular_only:
        return "algorithm1" if METHODS[variant.method].iterative else "dpo_bounded"
    return variant.method


# An objective maps (log pi_theta, log pi_t, data part) to a scalar loss.
Objective = Callable[[torch.Tensor, torch.Tensor, PreferenceData], torch.Tensor]


def rows(table: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """table[..., x_j, :] for each example: [..., X, A] and [..., n] -> [..., n, A]."""
    index = contexts[..., None].expand(*contexts.shape, table.shape[-1])
    return table.gather(-2, index)


def pick(per_example: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """per_example[..., j, a_j], kept as a column: [..., n, A] and [..., n] -> [..., n, 1]."""
    return per_example.gather(-1, actions[..., None])


@dataclass(frozen=True)
class Groups:
    """A preference data set with its repeated (x, y+, y-) triples merged: `weights` = count / n (0 for padding).

    Every loss here is a mean over examples of a function of (x_j, y+_j, y-_j), so the weighted sum over the distinct
    triples is the same number with fewer terms (at n = 3000 and 30 actions, about 1300 instead of 3000).
    """

    contexts: torch.Tensor  # [..., G] long
    chosen: torch.Tensor
    rejected: torch.Tensor
    weights: torch.Tensor  # [..., G] float64, sums to 1 per instance
    n: int  # the number of pairs (for lambda = lam * sqrt(n))
    generated: torch.Tensor | None = None  # [..., G, A]: the share of each action among the group's sampled
    # self-play responses (one y ~ pi_t per pair); None: the exact expectation over y ~ pi_t

    def __len__(self) -> int:
        return self.n


def aggregate(data: PreferenceData | Groups, n_actions: int, generated: torch.Tensor | None = None) -> Groups:
    """Merge repeated triples, per instance; instances are padded to the same number of groups with weight 0.

    `generated` ([..., n] actions, one sampled self-play response per pair) is merged with its pair: each group keeps
    the share of every action among its pairs' samples, so the loss is still the mean over the n sampled examples.
    """
    if isinstance(data, Groups):
        return data
    keys = (data.contexts * n_actions + data.chosen) * n_actions + data.rejected
    flat = keys.reshape(-1, keys.shape[-1])
    uniques = [torch.unique(row, return_inverse=True, return_counts=True) for row in flat]
    width = max(len(u) for u, _, _ in uniques)
    out_keys = torch.zeros(flat.shape[0], width, dtype=torch.long)
    counts = torch.zeros(flat.shape[0], width, dtype=torch.float64)
    shares = None if generated is None else torch.zeros(flat.shape[0], width * n_actions, dtype=torch.float64)
    for i, (u, inverse, c) in enumerate(uniques):
        out_keys[i, : len(u)] = u
        counts[i, : len(c)] = c.double()
        if shares is not None:
            samples = generated.reshape(-1, keys.shape[-1])[i]
            shares[i].scatter_add_(0, inverse * n_actions + samples, torch.ones(len(samples), dtype=torch.float64))
    out_keys = out_keys.view(*keys.shape[:-1], width)
    counts = counts.view(*keys.shape[:-1], width)
    if shares is not None:
        shares = shares.view(*keys.shape[:-1], width, n_actions) / counts.clamp(min=1.0)[..., None]
    return Groups(
        contexts=out_keys // (n_actions * n_actions),
        chosen=(out_keys // n_actions) % n_actions,
        rejected=out_keys % n_actions,
        weights=counts / keys.shape[-1],
        n=keys.shape[-1],
        generated=shares,
    )


def sample_self_play(policy: torch.Tensor, data: PreferenceData, generator: torch.Generator) -> torch.Tensor:
    """One response y_j ~ pi_t(.|x_j) per pair, as the LLM loop generates once per prompt and iteration."""
    probs = rows(policy, data.contexts)  # [..., n, A]
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def iteration_lam(config: TrainConfig, data: PreferenceData | Groups) -> float:
    """lambda for one iteration: `scaled_lam` of spac_hf.losses, n = the pairs this iteration trains on (the LLM
    trainer's rule, `SPACConfig.effective_lam`)."""
    return scaled_lam(config.lam, config.lam_scaling, len(data))


def dpo_objective(config: TrainConfig) -> Objective:
    """DPO's sigmoid loss with reference pi_t: the preference term alone."""

    def objective(logp: torch.Tensor, ref_logp: torch.Tensor, data: PreferenceData | Groups) -> torch.Tensor:
        data = aggregate(data, logp.shape[-1])
        logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
        chosen = config.beta * (pick(logp_x, data.chosen) - pick(ref_x, data.chosen))
        rejected = config.beta * (pick(logp_x, data.rejected) - pick(ref_x, data.rejected))
        return (data.weights * preference_loss(chosen, rejected).squeeze(-1)).sum()

    return objective


def self_play_objective(config: TrainConfig, *, lam: float | None, real: str, pessimism: bool = True) -> Objective:
    """`spac_loss` with its self-play response y ~ pi_t(.|x_j) taken in exact expectation.

    The generated log-probs are passed as an [n, A] table (every action for each example's context) and the chosen and
    rejected ones as [n, 1] columns, so `spac_loss` broadcasts to one loss per (example, action); weighting by
    pi_t(a|x_j) and summing over actions gives E_{y~pi_t}[loss_j]. The preference term does not depend on y, and the
    weights sum to one, so it comes out unchanged. `lam=None`: the config's lambda, scaled for the part's size.
    """

    def objective(logp: torch.Tensor, ref_logp: torch.Tensor, data: PreferenceData | Groups) -> torch.Tensor:
        data = aggregate(data, logp.shape[-1])
        logp_x, ref_x = rows(logp, data.contexts), rows(ref_logp, data.contexts)
        losses, _, _ = spac_loss(
            LogProbs(pick(logp_x, data.chosen), pick(logp_x, data.rejected), logp_x),  # every action as generated
            LogProbs(pick(ref_x, data.chosen), pick(ref_x, data.rejected), ref_x),
            beta=config.beta,
            lam=iteration_lam(config, data) if lam is None else lam,
            real=real,
            smoothing=config.smoothing,
            pessimism=pessimism,
        )
        if not pessimism:  # [n, 1]: no self-play response to average over
            return (data.weights * losses.squeeze(-1)).sum()
        # pi_t(a|x_j), the generator being the iterate we start from; or the shares of the sampled responses.
        self_play_weights = ref_x.exp() if data.generated is None else data.generated
        return (data.weights * (self_play_weights * losses).sum(-1)).sum()

    return objective


def spac_objective(config: TrainConfig) -> Objective:
    return self_play_objective(config, lam=None, real=config.real_response, pessimism=config.use_pessimism)


def spin_objective(config: TrainConfig) -> Objective:
    """SPIN = SPAC with no preference term and the chosen response as the real one (docs/algorithm.md)."""
    return self_play_objective(config, lam=0.0, real="chosen")


def iteration_parts(data: PreferenceData, config: TrainConfig) -> list[PreferenceData]:
    """The data of each iteration: T disjoint parts (`split`) or all of it T times (`full`), as the LLM loop."""
    if config.iteration_data == "full":
        return [data] * config.num_iterations
    if config.iteration_data == "split":
        return data.split(config.num_iterations)
    raise ValueError(f"`iteration_data` must be 'split' or 'full', got {config.iteration_data!r}.")


# ----------------------------------------------------------------------------------------------- bounded critic


def critic_problem(data: Groups, behaviour_shape: torch.Size, generator: torch.Tensor | None):
    """The linear coefficients of the pessimism term of Algorithm 1's critic objective, per (x, a).

    With a tabular critic f[x, a], the objective averaged over the n pairs,

        (1/n) sum_j [ E_{y~pi_t(.|x_j)} f(x_j, y) - (f(x_j, y+_j) + f(x_j, y-_j)) / 2 ]
            + lam * (1/n) sum_j -log sigmoid(f(x_j, y+_j) - f(x_j, y-_j)),

    is `spac_loss(smoothing="linear", real="average", beta=1)` with h = f (reference 0), weighted by pi_t (a test
    checks this). Its first term is linear, sum_{x,a} linear[x, a] f[x, a]; `generator` = pi_t, or None for DPO (no
    such term).
    """
    if generator is None:
        return None
    context_share = torch.zeros(behaviour_shape[:-1], dtype=torch.float64)
    context_share.scatter_add_(-1, data.contexts, data.weights)
    appearances = torch.zeros(behaviour_shape, dtype=torch.float64).flatten(-2)
    n_actions = behaviour_shape[-1]
    for actions in (data.chosen, data.rejected):
        appearances.scatter_add_(-1, data.contexts * n_actions + actions, data.weights)
    return context_share[..., None] * generator - 0.5 * appearances.view(behaviour_shape)


def critic_objective(f: torch.Tensor, linear: torch.Tensor | None, data: Groups, lam: float) -> torch.Tensor:
    """Algorithm 1's critic objective (with `linear=None`: the Bradley-Terry loss alone), one value per instance."""
    f_x = rows(f, data.contexts)
    margins = (pick(f_x, data.chosen) - pick(f_x, data.rejected)).squeeze(-1)
    likelihood = (data.weights * torch.nn.functional.softplus(-margins)).sum(-1)
    if linear is None:
        return likelihood
    return (linear * f).sum(dim=(-2, -1)) + lam * likelihood


def solve_bounded_critic(
    linear: torch.Tensor | None,
    data: Groups,
    shape: torch.Size,
    lam: float,
    bound: float,
    *,
    tolerance: float = 1e-9,
    max_iterations: int = 200,
) -> tuple[torch.Tensor, float]:
    """argmin over f in [-bound, bound]^{X x A} of `critic_objective`, by projected Newton with a line search.

    The problem is convex, smooth and separable over contexts (every term compares actions of one context), so each
    (instance, context) is an A-variable problem solved by Newton steps on the variables not held at a bound, with a
    backtracking (Armijo) search along the projected path. It stops when no entry of the projected gradient,
    f - clamp(f - grad), exceeds `tolerance` (0 exactly at the minimiser) and returns the solution and that largest
    entry, which the benchmark records. The gradient comes from autograd on `critic_objective`; the Hessian of the
    Bradley-Terry term is the weighted comparison-graph Laplacian with weights sigmoid'(margin), built here.
    """
    weight = lam if linear is not None else 1.0
    n_actions = shape[-1]
    batch = shape[:-2]

    def objective_and_gradient(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = f.detach().requires_grad_(True)
        value = critic_objective(f, linear, data, lam)
        return value.detach(), torch.autograd.grad(value.sum(), f)[0]

    def per_context_objective(f: torch.Tensor) -> torch.Tensor:
        """The objective split by context ([..., X]): the line search is per (instance, context)."""
        f_x = rows(f, data.contexts)
        margins = (pick(f_x, data.chosen) - pick(f_x, data.rejected)).squeeze(-1)
        terms = weight * data.weights * torch.nn.functional.softplus(-margins)
        out = torch.zeros(shape[:-1], dtype=torch.float64).scatter_add_(-1, data.contexts, terms)
        return out if linear is None else out + (linear * f).sum(-1)

    def hessian(f: torch.Tensor) -> torch.Tensor:
        f_x = rows(f, data.contexts)
        margins = (pick(f_x, data.chosen) - pick(f_x, data.rejected)).squeeze(-1)
        curvature = weight * data.weights * torch.sigmoid(margins) * torch.sigmoid(-margins)
        h = torch.zeros(*shape[:-1], n_actions * n_actions, dtype=torch.float64)
        base = data.contexts * 0  # the row of each group within its context's [A, A] block
        for a, b, sign in ((data.chosen, data.chosen, 1.0), (data.rejected, data.rejected, 1.0),
                           (data.chosen, data.rejected, -1.0), (data.rejected, data.chosen, -1.0)):  # fmt: skip
            index = data.contexts * (n_actions * n_actions) + base + a * n_actions + b
            h.view(*batch, -1).scatter_add_(-1, index, sign * curvature)
        return h.view(*shape, n_actions)

    def projected_gradient(f: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return f - (f - grad).clamp(-bound, bound)

    f = torch.zeros(shape, dtype=torch.float64)
    _, grad = objective_and_gradient(f)
    for _ in range(max_iterations):
        if float(projected_gradient(f, grad).abs().amax()) < tolerance:
            break
        # Variables at a bound whose gradient pushes them further out stay fixed; Newton on the others.
        held = ((f <= -bound) & (grad > 0)) | ((f >= bound) & (grad < 0))
        free = (~held).double()
        h = hessian(f) * free[..., :, None] * free[..., None, :]
        ridge = 1e-9 * (h.diagonal(dim1=-2, dim2=-1).amax(-1, keepdim=True) + 1.0)
        h = h + torch.diag_embed((1.0 - free) + ridge * free + 1e-12)
        direction = -torch.linalg.solve(h, (grad * free)[..., None]).squeeze(-1)
        direction = torch.where(held, -grad, direction)
        current = per_context_objective(f)
        step = torch.ones(shape[:-1], dtype=torch.float64)
        candidate = f
        for _ in range(40):  # backtracking per (instance, context)
            candidate = (f + step[..., None] * direction).clamp(-bound, bound)
            decrease = (grad * (candidate - f)).sum(-1)
            accepted = per_context_objective(candidate) <= current + 1e-4 * decrease + 1e-15
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, step * 0.5)
        f = torch.where(accepted[..., None], candidate, f)
        _, grad = objective_and_gradient(f)
    return f, float(projected_gradient(f, grad).abs().amax())


# ----------------------------------------------------------------------------------------------- the outer loop


# How each library method's loss is computed on tables.
TABULAR_OBJECTIVES = {
    "dpo": dpo_objective,
    "iterative_dpo": dpo_objective,
    "spin": spin_objective,
    "spac": spac_objective,
}


@dataclass
class Trained:
    """What one run scored: `curve[c]` = the output's score per instance at checkpoint c (optimizer step), and the
    compute it used."""

    curve: dict[int, torch.Tensor]
    optimizer_steps: int
    self_play_samples: int  # per instance: sampled responses (0 with the exact expectation)
    pair_evaluations: int  # per instance: sum over steps of the pairs in the step's full batch


def train(
    variant: Variant,
    config: TrainConfig,
    behaviour: torch.Tensor,
    data: PreferenceData,
    checkpoints: Sequence[int],
    score: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None = None,
) -> Trained:
    """Train `variant` from pi_1 = mu for `config.max_steps` full-batch Adam steps, T iterations of max_steps / T
    steps each (one-shot methods: T = 1, reference pi_1), and score its output at every checkpoint.

    The output at checkpoint c is the current policy ("last"), or ("mixture") the uniform mixture of the iterates
    finished so far and the current one: J is linear in the policy, so its score is their scores' mean.

    Bounded procedures train a table instead of the logits: `dpo_bounded` the Bradley-Terry reward r in [-B, B] (policy
    pi_1 exp(r / beta) / Z), `algorithm1` each iteration's critic f in [-B, B] (policy pi_t exp(f / beta) / Z, the
    mirror-descent step), by Adam projected onto the box after every step: the same budget of optimizer steps as every
    other arm, and early stopping applies to them as to the others.
    """
    kind = procedure(variant)
    one_shot = not METHODS[variant.method].iterative
    parts = [data] if one_shot else iteration_parts(data, config)
    steps = config.max_steps // len(parts)
    marks, curve, finished = set(checkpoints), {}, []
    n_actions = behaviour.shape[-1]
    start, step, samples, evaluations = behaviour.log(), 0, 0, 0  # start: log pi_t, kept in logs (no underflow)
    for part in parts:
        generated = None
        if kind == "spac" and config.use_pessimism and config.self_play == "sampled":
            generated = sample_self_play(start.exp(), part, generator)
            samples += len(part)
        groups = aggregate(part, n_actions, generated)
        if kind in ("dpo_bounded", "algorithm1"):
            linear = critic_problem(groups, behaviour.shape, start.exp()) if kind == "algorithm1" else None
            lam = iteration_lam(config, groups)
            variable = torch.zeros_like(behaviour).requires_grad_(True)

            def loss(table, linear=linear, groups=groups, lam=lam):
                return critic_objective(table, linear, groups, lam).sum()

            def current(table, start=start):
                return torch.log_softmax(start + table / config.beta, dim=-1)

        else:
            objective = TABULAR_OBJECTIVES[kind](config)
            variable = start.detach().clone().requires_grad_(True)
            ref_logp = start

            def loss(theta, objective=objective, ref_logp=ref_logp, groups=groups):
                return objective(torch.log_softmax(theta, dim=-1), ref_logp, groups)

            def current(theta):
                return torch.log_softmax(theta, dim=-1)

        optimizer = torch.optim.Adam([variable], lr=config.learning_rate)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss(variable).backward()
            optimizer.step()
            if kind in ("dpo_bounded", "algorithm1"):
                with torch.no_grad():
                    variable.clamp_(-config.critic_bound, config.critic_bound)
            step += 1
            evaluations += len(part)
            if step in marks:
                with torch.no_grad():
                    now = score(current(variable).exp())
                curve[step] = torch.stack([*finished, now]).mean(0) if variant.output == "mixture" else now
        with torch.no_grad():
            start = current(variable).detach()
            finished.append(score(start.exp()))
    return Trained(curve, step, samples, evaluations)
