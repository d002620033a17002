"""The fair-comparison protocol every benchmark uses (issue 22; the rules: docs/fairness.md; how the benchmarks use it:
benchmarks/README.md).

A benchmark declares a `Comparison` before it runs: its arms (a variant of `spac_hf.variants` and a search space
each), one budget (optimizer steps, pairs seen, the checkpoints at which every arm is scored), the same number of
tuning trials for every arm, tuning seeds that are never test seeds, and its primary contrasts with their decision
rule. `Comparison.validate()` refuses a comparison that breaks a rule, naming the arm and the field, before any
compute. Every run then writes one `record(...)` row; `check_spent` flags a run whose spend is more than 5% off the
budget; `decide` turns the paired per-seed differences of a contrast into the decision line a README quotes.

Pure Python with numpy and scipy: no torch, so a report can be rebuilt anywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy import stats

from spac_hf.variants import VARIANTS


class ProtocolError(ValueError):
    """A comparison, a record or a result that breaks the protocol; the message names the arm and the field."""


# ----------------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Budget:
    """What every arm of a comparison may spend, declared up front."""

    optimizer_steps: int
    pairs_seen: int  # preference pairs (for the bandit: samples) seen in training, repeats counted
    checkpoints: tuple[int, ...]  # optimizer steps at which every arm is scored on validation: k, 2k, ..., steps

    def problems(self, where: str = "budget") -> list[str]:
        out = []
        if self.optimizer_steps < 1 or self.pairs_seen < 1:
            out.append(
                f"{where}: optimizer_steps and pairs_seen must be >= 1, got {self.optimizer_steps}, {self.pairs_seen}"
            )
            return out
        checkpoints = tuple(self.checkpoints)
        first = checkpoints[0] if checkpoints else 0
        even = first > 0 and self.optimizer_steps % first == 0
        if not even or checkpoints != tuple(range(first, self.optimizer_steps + 1, first)):
            out.append(
                f"{where}.checkpoints {checkpoints} do not divide optimizer_steps {self.optimizer_steps} "
                f"evenly (want k, 2k, ..., {self.optimizer_steps})"
            )
        return out


@dataclass
class Spent:
    """What one run actually used; every result row records it."""

    optimizer_steps: int
    pairs_seen: int
    self_play_samples: int = 0
    tokens_trained: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass(frozen=True)
class SearchSpace:
    """An arm's tuning search: {param: list of values}, a grid. Each trial is one point of it."""

    params: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return math.prod(len(values) for values in self.params.values())

    def grid(self) -> list[dict[str, Any]]:
        names = list(self.params)
        return [dict(zip(names, point, strict=True)) for point in itertools.product(*self.params.values())]

    def trials(self, count: int, seed: int = 0) -> list[dict[str, Any]]:
        """`count` points: the whole grid when it has `count` points, else a seeded random subset (grid order)."""
        grid = self.grid()
        if count > len(grid):
            raise ProtocolError(f"search space {dict(self.params)} has {len(grid)} points, fewer than {count} trials")
        if count == len(grid):
            return grid
        keep = sorted(random.Random(seed).sample(range(len(grid)), count))
        return [grid[i] for i in keep]


@dataclass(frozen=True)
class Arm:
    variant: str  # a key of spac_hf.variants.VARIANTS
    search: SearchSpace
    name: str = ""  # the arm's name in records and contrasts; defaults to the variant ("spac_theory_sampled" when
    # one variant runs in two ways)
    settings: Mapping[str, Any] = field(default_factory=dict)  # fixed benchmark-level settings (the bandit's
    # self-play "exact" or "sampled"), recorded, never tuned
    trials: int | None = None  # the arm's own trial count, when a benchmark plans per arm: must equal trials_per_arm
    budget: Budget | None = None  # what the arm's schedule spends, when planned per arm: must equal the comparison's

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", self.variant)


@dataclass(frozen=True)
class Contrast:
    """A primary contrast: a minus b on paired per-seed differences, with its decision rule."""

    name: str  # how the decision line starts: "SPAC (theory preset) minus DPO"
    a: str | tuple[str, ...]  # an arm, or a group (the group's arm with the best validation score)
    b: str | tuple[str, ...]
    kind: Literal["superiority", "noninferiority"] = "superiority"
    delta: float | None = (
        None  # required for non-inferiority: the loss, in score units, that still counts as "no worse"
    )
    higher_is_better: bool = True


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    arms: tuple[Arm, ...]
    budget: Budget
    trials_per_arm: int
    tuning_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    contrasts: tuple[Contrast, ...]

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ProtocolError(f"{self.benchmark}: no arm named {name!r}; arms: {[a.name for a in self.arms]}")

    def validate(self) -> None:
        """Raise `ProtocolError` listing every broken rule (each naming its arm and field); return if none."""
        problems = self.budget.problems()
        if self.trials_per_arm < 1:
            problems.append(f"trials_per_arm must be >= 1, got {self.trials_per_arm}")
        names = [arm.name for arm in self.arms]
        if not names:
            problems.append("arms: none declared")
        for name, count in Counter(names).items():
            if count > 1:
                problems.append(f"arm {name!r}: declared {count} times (give each a distinct `name`)")
        for arm in self.arms:
            if arm.variant not in VARIANTS:
                problems.append(f"arm {arm.name!r}: variant {arm.variant!r} is not in spac_hf.variants.VARIANTS")
            if arm.search.size < self.trials_per_arm:
                problems.append(
                    f"arm {arm.name!r}: search has {arm.search.size} points, fewer than trials_per_arm "
                    f"{self.trials_per_arm}"
                )
            if arm.trials is not None and arm.trials != self.trials_per_arm:
                problems.append(
                    f"arm {arm.name!r}: trials {arm.trials} differs from trials_per_arm {self.trials_per_arm}"
                )
            if arm.budget is not None:
                for name in ("optimizer_steps", "pairs_seen", "checkpoints"):
                    own, common = getattr(arm.budget, name), getattr(self.budget, name)
                    if own != common:
                        problems.append(
                            f"arm {arm.name!r}: budget.{name} {own} differs from the comparison's {common}"
                        )
        if len(set(self.test_seeds)) < 2:
            problems.append(f"test_seeds: need at least 2 distinct seeds for an interval, got {self.test_seeds}")
        if not self.tuning_seeds:
            problems.append("tuning_seeds: none declared (tuning on the test seeds is not allowed)")
        overlap = sorted(set(self.tuning_seeds) & set(self.test_seeds))
        if overlap:
            problems.append(f"tuning_seeds and test_seeds overlap: {overlap}")
        if not self.contrasts:
            problems.append("contrasts: no primary contrast declared (the decision rule is missing)")
        for contrast in self.contrasts:
            for side in ("a", "b"):
                for arm_name in _members(getattr(contrast, side)):
                    if arm_name not in names:
                        problems.append(f"contrast {contrast.name!r}: {side} names arm {arm_name!r}, not an arm")
            if contrast.kind not in ("superiority", "noninferiority"):
                problems.append(
                    f"contrast {contrast.name!r}: kind {contrast.kind!r} is not a decision rule "
                    "(superiority or noninferiority)"
                )
            if contrast.kind == "noninferiority" and not (contrast.delta and contrast.delta > 0):
                problems.append(
                    f"contrast {contrast.name!r}: delta must be declared (> 0) for non-inferiority, "
                    f"got {contrast.delta}"
                )
        if problems:
            raise ProtocolError(f"{self.benchmark}: " + "; ".join(problems))

    def check_trials(self, trials: Sequence[Mapping[str, Any]]) -> None:
        """Every arm (per regime, when trials carry one) ran exactly `trials_per_arm` trials."""
        counts = Counter((t.get("regime", ""), t["arm"]) for t in trials)
        regimes = sorted({regime for regime, _ in counts}) or [""]
        problems = []
        for regime in regimes:
            for arm in self.arms:
                got = counts.get((regime, arm.name), 0)
                if got != self.trials_per_arm:
                    where = f" ({regime})" if regime else ""
                    problems.append(
                        f"arm {arm.name!r}{where}: {got} trials recorded, trials_per_arm is {self.trials_per_arm}"
                    )
        if problems:
            raise ProtocolError(f"{self.benchmark}: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for arm in out["arms"]:
            arm["search"] = {k: list(v) for k, v in arm["search"]["params"].items()}
        return out


def _members(side: str | tuple[str, ...]) -> tuple[str, ...]:
    return (side,) if isinstance(side, str) else tuple(side)


# ----------------------------------------------------------------------------------------------- spend


def check_spent(comparison: Comparison, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per record whose optimizer steps or pairs seen differ from the budget by more than 5%.

    A budget sweep passes one `Comparison` per budget, with that budget's records.
    """
    flagged = []
    for row in records:
        for name in ("optimizer_steps", "pairs_seen"):
            budget, spent = getattr(comparison.budget, name), row[name]
            if abs(spent - budget) > 0.05 * budget:
                where = ", ".join(f"{key} {row[key]}" for key in ("regime", "seed") if key in row)
                flagged.append(
                    f"arm {row['arm']}{' (' + where + ')' if where else ''}: {name} {spent} vs budget "
                    f"{budget} ({(spent - budget) / budget:+.0%})"
                )
    return flagged


# ----------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    contrast: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    wins: int  # seeds in which a beat b
    verdict: Literal["better", "worse", "no worse than", "undecided"]
    delta: float | None
    mdd: float  # the smallest difference these seeds detect at 80% power, two-sided 5%
    line: str


def decide(diffs: Sequence[float], contrast: Contrast, digits: int = 3) -> Decision:
    """The decision on paired per-seed differences a - b: the 95% paired t interval, then the contrast's rule.

    Superiority: "better" when the interval lies on a's side of 0, "worse" on b's, else "undecided" with the smallest
    difference the design detects at 80% power, mdd = (t_{0.975,n-1} + t_{0.80,n-1}) sd / sqrt(n). Non-inferiority
    adds "no worse than -delta" when the interval excludes a loss of delta. With `higher_is_better=False` (a loss, a
    suboptimality) a's side is below 0. Zero spread gives no interval worth the name: "undecided".
    """
    values = [float(d) for d in diffs]
    n = len(values)
    if n < 2:
        raise ProtocolError(f"contrast {contrast.name!r}: need at least 2 paired differences, got {n}")
    if contrast.kind == "noninferiority" and not (contrast.delta and contrast.delta > 0):
        raise ProtocolError(f"contrast {contrast.name!r}: delta must be declared (> 0) for non-inferiority")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    t975, t80 = float(stats.t.ppf(0.975, n - 1)), float(stats.t.ppf(0.80, n - 1))
    low, high = mean - t975 * se, mean + t975 * se
    mdd = (t975 + t80) * se
    sign = 1.0 if contrast.higher_is_better else -1.0
    # In "a's favour" units: positive is a better.
    fav_low, fav_high = sorted((sign * low, sign * high))
    wins = sum(1 for v in values if sign * v > 0)
    if sd <= 1e-12 * max(1.0, abs(mean)):  # equal values (up to rounding)
        verdict = "undecided"
    elif fav_low > 0:
        verdict = "better"
    elif contrast.kind == "noninferiority" and fav_low > -contrast.delta:
        verdict = "no worse than"
    elif fav_high < 0:
        verdict = "worse"
    else:
        verdict = "undecided"
    f = f"{{:+.{digits}f}}"
    head = f"{contrast.name}: {f.format(mean)} (95% CI {f.format(low)} to {f.format(high)}, {n} seeds, {wins} wins)"
    if verdict == "no worse than":
        # The bound on a - b that the interval clears: -delta when higher is better, +delta for a loss.
        tail = f"no worse than {-sign * contrast.delta:+.{digits}f}"
    elif verdict == "undecided":
        tail = f"undecided, smallest detectable difference {mdd:.{digits}f}"
    else:
        tail = verdict
    return Decision(contrast.name, n, mean, low, high, wins, verdict, contrast.delta, mdd, f"{head}: {tail}")


# How a README quotes a decision: the regime and the checkpoint rule in brackets, then the line itself. `quoted` finds
# every such quote in a text (line breaks and repeated spaces ignored), so a test can look each one up in results.json.
_NUMBER = r"[+-]\d+\.\d+"
_VERDICT = rf"(?:better|worse|no worse than {_NUMBER}|undecided, smallest detectable difference \d+\.\d+)"
_LINE = rf"[^\[\]]+?: {_NUMBER} \(95% CI {_NUMBER} to {_NUMBER}, \d+ seeds, \d+ wins\): {_VERDICT}"
QUOTE = re.compile(r"\[([^\[\]]+), (validation|last) rule\] (" + _LINE + ")")


def quote(decision: Mapping[str, Any]) -> str:
    """`[<regime>, <rule> rule] <line>`: a decision as a README quotes it."""
    return f"[{decision['regime']}, {decision['checkpoint_rule']} rule] {decision['line']}"


def quoted(text: str) -> list[tuple[str, str, str]]:
    """Every (regime, checkpoint rule, line) quoted in `text` in the form `quote` writes."""
    return QUOTE.findall(" ".join(text.split()))


def group_arm(side: str | tuple[str, ...], validation: Mapping[str, float], higher_is_better: bool = True) -> str:
    """The arm a contrast side stands for: itself, or the group's arm with the best validation score (ties: first)."""
    members = _members(side)
    missing = [m for m in members if m not in validation]
    if missing:
        raise ProtocolError(f"no validation score for arm(s) {missing}")
    sign = 1.0 if higher_is_better else -1.0
    return max(members, key=lambda m: (sign * validation[m], -members.index(m)))


# ----------------------------------------------------------------------------------------------- tuning


def tune(
    arm: Arm,
    trials: Sequence[Mapping[str, Any]],
    score: Callable[[Mapping[str, Any]], float] | str,
    higher_is_better: bool = True,
) -> Mapping[str, Any]:
    """The trial with the best validation score (ties: the earlier trial). `score` is a key of each trial or a
    function of it; trials of other arms are an error, not skipped."""
    if not trials:
        raise ProtocolError(f"arm {arm.name!r}: no trials to tune on")
    strangers = sorted({t["arm"] for t in trials if t.get("arm", arm.name) != arm.name})
    if strangers:
        raise ProtocolError(f"arm {arm.name!r}: trials of other arms passed to tune: {strangers}")
    value = (lambda t: float(t[score])) if isinstance(score, str) else score
    sign = 1.0 if higher_is_better else -1.0
    return max(enumerate(trials), key=lambda it: (sign * value(it[1]), -it[0]))[1]


def select_checkpoint(curve: Mapping[int, float], higher_is_better: bool = True) -> int:
    """The checkpoint (optimizer step) with the best validation score; ties go to the earlier checkpoint."""
    if not curve:
        raise ProtocolError("select_checkpoint: empty validation curve")
    sign = 1.0 if higher_is_better else -1.0
    return max(sorted(curve), key=lambda step: (sign * curve[step], -step))


# ----------------------------------------------------------------------------------------------- records

RECORD_FIELDS = (
    "benchmark",
    "regime",
    "arm",
    "variant",
    "method",
    "seed",
    "optimizer_steps",
    "pairs_seen",
    "self_play_samples",
    "tokens_trained",
    "wall_s",
    "cpu_s",
    "data_sha256",
    "trial",
    "params",
    "checkpoint",
    "checkpoint_rule",
    "val_score",
    "test_score",
    "config_hash",
)
CHECKPOINT_RULES = ("validation", "last")


def record(**fields: Any) -> dict[str, Any]:
    """One row of a results.json: exactly `RECORD_FIELDS`, in that order; missing or unknown fields are named."""
    missing = [name for name in RECORD_FIELDS if name not in fields]
    unknown = sorted(set(fields) - set(RECORD_FIELDS))
    if missing or unknown:
        raise ProtocolError(f"record: missing fields {missing}, unknown fields {unknown}")
    if fields["checkpoint_rule"] not in CHECKPOINT_RULES:
        raise ProtocolError(
            f"record: checkpoint_rule must be one of {CHECKPOINT_RULES}, got {fields['checkpoint_rule']!r}"
        )
    if fields["variant"] not in VARIANTS:
        raise ProtocolError(f"record: variant {fields['variant']!r} is not in spac_hf.variants.VARIANTS")
    return {name: fields[name] for name in RECORD_FIELDS}
