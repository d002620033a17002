"""DPO, SPIN, SPAC and Algorithm 1 on tabular policies, through the LLM code's losses and its change of variables.

A policy is a table of logits theta[x, a]; log pi_theta(a|x) = log_softmax(theta[x])[a]. Each loss below is computed by
`spac_hf.losses` from per-response log-probabilities exactly as the LLM trainer does, so the critic is
h(y) = beta * (log pi_theta(y|x) - log pi_t(y|x)) with pi_t the iterate the iteration started from.

The only difference from the LLM code is the self-play response y ~ pi_t(.|x_j): instead of one sample per example,
the loss is averaged over every action with weights pi_t(a|x_j), which is its exact expectation over y. Because pi_t
carries no gradient, this is also the exact expectation of the sampled loss's gradient.

Tables may have a leading instance dimension ([S, X, A] logits, [S, n] data): each instance's loss is its mean over its
examples, and the objective is the sum over instances, so the instances do not interact (Adam is per-parameter), and
one
vectorised run trains all seeds exactly as separate runs would.

Two methods are not trained by Adam on a policy: the bounded-reward DPO and Algorithm 1 solve a convex problem over a
bounded reward (critic) table exactly (`solve_bounded_critic`), then take the closed-form policy step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from spac_hf.losses import LogProbs, preference_loss, scaled_lam, spac_loss
from spac_hf.methods import METHODS as LIBRARY_METHODS
from spac_hf.methods import Method as LibraryMethod
from spac_hf.presets import THEORY_PRESET

from benchmarks.theory.bandit import PreferenceData


@dataclass(frozen=True)
class TrainConfig:
    beta: float = 0.1  # the paper's default KL strength (1 / mirror-descent step)
    lam: float = 1.0  # the paper's practical lambda
    real: str = "average"  # SPAC's default data response y': the mean over the pair, i.e. E_mu
    smoothing: str = "sigmoid"
    iterations: int = 3  # T, the number of iterations (of disjoint data parts with iteration_data="split")
    steps: int = 300  # full-batch optimizer steps per iteration (one-shot DPO gets iterations * steps)
    lr: float = 0.3  # Adam, on the logits
    iteration_data: str = "split"  # "split": T disjoint parts; "full": every iteration trains on all n pairs
    lam_scaling: str = "constant"  # "sqrt_n": lambda = lam * sqrt(pairs of the iteration), as SPACConfig
    pessimism: bool = True  # SPAC only: False drops the pessimism term (SPACConfig.use_pessimism)
    critic_bound: float = 1.0  # bounded methods: the reward / critic table lies in [-B, B]


# The paper's practical settings (the library's defaults) and the theory preset (SPACConfig: spac_hf.config).
PAPER = TrainConfig()
THEORY = replace(
    PAPER,
    beta=THEORY_PRESET["beta"],
    lam=THEORY_PRESET["lam"],
    lam_scaling=THEORY_PRESET["lam_scaling"],
    iteration_data=THEORY_PRESET["iteration_data"],
    iterations=THEORY_PRESET["num_iterations"],
    steps=100,  # 10 x 100 = 1000 optimizer steps in all, about the paper settings' 3 x 300 (the budget sweep: 10-300)
)


@dataclass(frozen=True)
class Method:
    """A method of `spac_hf.methods` as this benchmark trains it on tabular policies, at some settings.

    The library's record says what the method is (its loss, whether it generates, one pass or T iterations); this adds
    the settings (`config`), whether the reward / critic is instead a bounded table solved exactly (`exact_critic`:
    bounded-reward DPO for DPO, Algorithm 1 for SPAC) and which policy is output.
    """

    record: LibraryMethod
    label: str  # what the tables and the plot call it: the method and its settings
    variant: str = ""  # its name after the library's (`spac_theory`); "" for the method at the paper's settings
    config: TrainConfig = PAPER
    exact_critic: bool = False
    output: str = "last"  # "last" iterate, or the uniform "mixture" of the trained iterates
    name: str = ""  # only to override `<record>_<variant>` ("algorithm1")

    def __post_init__(self):
        if not self.name:
            name = f"{self.record.name}_{self.variant}" if self.variant else self.record.name
            object.__setattr__(self, "name", name)

    @property
    def kind(self) -> str:
        """The training procedure: the library method's name, or its exact bounded-critic counterpart."""
        if self.exact_critic:
            return "algorithm1" if self.record.iterative else "dpo_bounded"
        return self.record.name

    @property
    def identity(self) -> dict:
        """What a cached cell was computed with (`experiment.cached`) and what results.json records per method."""
        return {"name": self.name, "label": self.label, "kind": self.kind, "config": asdict(self.config),
                "output": self.output}  # fmt: skip


_DPO, _SPAC = LIBRARY_METHODS["dpo"], LIBRARY_METHODS["spac"]
# The library's methods at the paper's settings (labels say the settings), then this benchmark's variants of them.
_PAPER_LABELS = {"dpo": "DPO (beta 0.1, one-shot)", "iterative_dpo": "DPO (iterative, paper settings)",
                 "spin": "SPIN", "spac": "SPAC (paper settings)"}  # fmt: skip
METHOD_LIST = tuple(Method(record, _PAPER_LABELS[name]) for name, record in LIBRARY_METHODS.items()) + (
    Method(_DPO, "DPO (beta 1, one-shot)", "beta1", replace(PAPER, beta=1.0)),
    Method(_DPO, "DPO, bounded reward (beta 1)", "bounded", replace(PAPER, beta=1.0), exact_critic=True),
    Method(_SPAC, "SPAC (theory preset)", "theory", THEORY),
    Method(_SPAC, "SPAC (theory preset, mixture output)", "theory_mixture", THEORY, output="mixture"),
    Method(_SPAC, "theory preset, pessimism off", "theory_no_pessimism", replace(THEORY, pessimism=False)),
    Method(_SPAC, "Algorithm 1 (bounded critic, exact)", config=THEORY, exact_critic=True, output="mixture",
           name="algorithm1"),
)  # fmt: skip
# Each variant beside its method, in the library's order (the order of the tables and the plot's legend).
METHOD_LIST = tuple(sorted(METHOD_LIST, key=lambda m: list(LIBRARY_METHODS).index(m.record.name)))
METHOD_BY_NAME = {m.name: m for m in METHOD_LIST}
METHODS = tuple(METHOD_BY_NAME)


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

    def __len__(self) -> int:
        return self.n


def aggregate(data: PreferenceData | Groups, n_actions: int) -> Groups:
    """Merge repeated triples, per instance; instances are padded to the same number of groups with weight 0."""
    if isinstance(data, Groups):
        return data
    keys = (data.contexts * n_actions + data.chosen) * n_actions + data.rejected
    flat = keys.reshape(-1, keys.shape[-1])
    uniques = [torch.unique(row, return_counts=True) for row in flat]
    width = max(len(u) for u, _ in uniques)
    out_keys = torch.zeros(flat.shape[0], width, dtype=torch.long)
    counts = torch.zeros(flat.shape[0], width, dtype=torch.float64)
    for i, (u, c) in enumerate(uniques):
        out_keys[i, : len(u)] = u
        counts[i, : len(c)] = c.double()
    out_keys = out_keys.view(*keys.shape[:-1], width)
    counts = counts.view(*keys.shape[:-1], width)
    return Groups(
        contexts=out_keys // (n_actions * n_actions),
        chosen=(out_keys // n_actions) % n_actions,
        rejected=out_keys % n_actions,
        weights=counts / keys.shape[-1],
        n=keys.shape[-1],
    )


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
        self_play_weights = ref_x.exp()  # pi_t(a|x_j): the generator is the iterate we start from
        return (data.weights * (self_play_weights * losses).sum(-1)).sum()

    return objective


def spac_objective(config: TrainConfig) -> Objective:
    return self_play_objective(config, lam=None, real=config.real, pessimism=config.pessimism)


def spin_objective(config: TrainConfig) -> Objective:
    """SPIN = SPAC with no preference term and the chosen response as the real one (docs/algorithm.md)."""
    return self_play_objective(config, lam=0.0, real="chosen")


def train_iteration(
    logits: torch.Tensor, data: PreferenceData | Groups, objective: Objective, *, steps: int, lr: float
) -> torch.Tensor:
    """One iteration of the outer loop: start from pi_t, minimise the loss with reference pi_t, return pi_{t+1}."""
    ref_logp = torch.log_softmax(logits, dim=-1).detach()
    data = aggregate(data, logits.shape[-1])  # once per iteration, not once per step
    theta = logits.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        objective(torch.log_softmax(theta, dim=-1), ref_logp, data).backward()
        optimizer.step()
    return theta.detach()


def iteration_parts(data: PreferenceData, config: TrainConfig) -> list[PreferenceData]:
    """The data of each iteration: T disjoint parts (`split`) or all of it T times (`full`), as the LLM loop."""
    if config.iteration_data == "full":
        return [data] * config.iterations
    if config.iteration_data == "split":
        return data.split(config.iterations)
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


# How each iterative library method's loss is computed on tables (the one-shot DPO uses `dpo_objective`).
TABULAR_OBJECTIVES = {"iterative_dpo": dpo_objective, "spin": spin_objective, "spac": spac_objective}


@dataclass
class MethodRun:
    policies: list[torch.Tensor]  # pi_1 (= mu) .. pi_{T+1}
    critic_residual: float | None = None  # bounded methods: the largest projected-gradient entry of the solves


def run_method(method: str | Method, behaviour: torch.Tensor, data: PreferenceData, config: TrainConfig | None = None):
    """Train `method` from pi_1 = mu (the SFT model is the behaviour policy); return the policies pi_1 .. pi_{T+1}.

    `method` is a name of `METHODS` (then `config`, when given, replaces its settings) or a `Method`.
    """
    return run_method_full(method, behaviour, data, config).policies


def run_method_full(method, behaviour, data, config=None) -> MethodRun:
    spec = METHOD_BY_NAME[method] if isinstance(method, str) else method
    config = config or spec.config
    logits = behaviour.log()
    policies = [behaviour]
    if spec.exact_critic:
        return _run_bounded(spec, config, behaviour, data)
    if not spec.record.iterative:  # one-shot: all the data, reference pi_1, the same total number of optimizer steps
        schedule = [(data, dpo_objective(config), config.iterations * config.steps)]
    else:
        objective = TABULAR_OBJECTIVES[spec.record.name](config)
        schedule = [(part, objective, config.steps) for part in iteration_parts(data, config)]
    for part, objective, steps in schedule:
        logits = train_iteration(logits, part, objective, steps=steps, lr=config.lr)
        policies.append(torch.softmax(logits, dim=-1))
    return MethodRun(policies)


def _run_bounded(spec: Method, config: TrainConfig, behaviour: torch.Tensor, data: PreferenceData) -> MethodRun:
    """Closed-form policy steps on an exactly solved bounded critic.

    `dpo_bounded`: r = the Bradley-Terry MLE over r in [-B, B], pi = pi_1 exp(r / beta) / Z (DPO's optimum when the
    reward class is bounded). `algorithm1`: T times, f_t = the critic of Algorithm 1 against pi_t, then the mirror
    descent step pi_{t+1} = pi_t exp(f_t / beta) / Z (eta = 1 / beta).
    """
    n_actions = behaviour.shape[-1]
    policies, residuals = [behaviour], []
    if not spec.record.iterative:
        groups = aggregate(data, n_actions)
        reward, residual = solve_bounded_critic(None, groups, behaviour.shape, 1.0, config.critic_bound)
        policies.append(torch.softmax(behaviour.log() + reward / config.beta, dim=-1))
        return MethodRun(policies, residual)
    policy = behaviour
    for part in iteration_parts(data, config):
        groups = aggregate(part, n_actions)
        linear = critic_problem(groups, behaviour.shape, policy)
        critic, residual = solve_bounded_critic(
            linear, groups, behaviour.shape, iteration_lam(config, groups), config.critic_bound
        )
        residuals.append(residual)
        policy = torch.softmax(policy.log() + critic / config.beta, dim=-1)
        policies.append(policy)
    return MethodRun(policies, max(residuals))
