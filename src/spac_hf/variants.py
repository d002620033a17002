"""Named variants: a method of `spac_hf.methods` with a set of option overrides, each defined once, here.

A variant is what a benchmark arm, a recipe file (`<setup>/spac_theory.yaml`), a results row (its `variant`
column) and a table name: "SPAC at the theory preset" is `VARIANTS["spac_theory"]`, and nothing else defines it (a
test checks every recipe file that claims a variant against its record; `spac_hf.presets` is a view of these).

`variant_config(variant, base)` applies the overrides to a config (`SPACConfig`, `SelfPlayConfig`, or a benchmark's
own dataclass with the same field names, such as the bandit's) with `dataclasses.replace`, so the config's own
validation runs on the result.

Like `spac_hf.methods`, this module imports neither torch nor TRL.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .methods import METHODS


@dataclass(frozen=True)
class Variant:
    """A method and its option overrides: one arm of a comparison, one recipe file, one `variant` in results rows."""

    name: str
    label: str  # how a table, a plot or a card names it
    method: str  # a key of `spac_hf.methods.METHODS`: the trainer and schedule it runs with
    overrides: Mapping[str, Any] = field(default_factory=dict)  # config field -> value
    output: Literal["last", "mixture"] = "last"  # the policy evaluated: the last iterate, or the uniform mixture
    description: str = ""  # what it is and why it is an arm
    tabular_only: bool = False  # solved exactly on tables (the bandit benchmark); no trainer runs it

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"variant {self.name!r}: `method` must be one of {list(METHODS)}, got {self.method!r}.")
        if self.output not in ("last", "mixture"):
            raise ValueError(f"variant {self.name!r}: `output` must be 'last' or 'mixture', got {self.output!r}.")
        # Read-only, so that no caller can change a variant for everyone else.
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))


# The paper's practical settings are SPACConfig's defaults; they are written out so that a change of a default does
# not silently change what "the paper's settings" means in a comparison.
_PAPER = {"beta": 0.1, "lam": 1.0, "lam_scaling": "constant", "iteration_data": "split", "num_iterations": 3}
# The theory preset (issue 11; docs/algorithm.md "Which settings"): the mirror-descent step eta = 1 / beta = 1, T = 10
# small steps on all the data (T / beta = 10, the 1 / beta of DPO at beta 0.1), lambda = 0.1 sqrt(n) growing like the
# theory's lambda; its output is the uniform mixture of the iterates, the policy the guarantee is about.
_THEORY = {"beta": 1.0, "lam": 0.1, "lam_scaling": "sqrt_n", "iteration_data": "full", "num_iterations": 10}
# RPO's default weight on the chosen response's NLL (Pang et al. 2024 use 1); arms tune it.
RPO_ALPHA = 1.0

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dpo", "DPO (one pass)", "dpo", {"num_iterations": 1},
                description="DPO, one pass over all the pairs with the starting model as reference: the baseline."),
        Variant("iterative_dpo", "iterative DPO", "iterative_dpo", {"num_iterations": 3, "iteration_data": "split"},
                description="DPO on SPAC's schedule (T parts, each referenced to the previous iterate): SPAC minus "
                "the pessimism term and the self-play sample."),
        Variant("dpo_bounded", "DPO, bounded reward", "dpo", {"num_iterations": 1}, tabular_only=True,
                description="DPO with a bounded reward table (the Bradley-Terry reward in [-B, B], then "
                "pi_1 exp(r / beta) / Z; bandit only): a regulariser other than pessimism."),
        Variant("ipo", "IPO", "dpo", {"num_iterations": 1, "loss_type": ["ipo"]},
                description="IPO (TRL loss_type 'ipo'): DPO with a squared loss that does not push margins to "
                "infinity, another regulariser than pessimism."),
        Variant("rpo", "RPO (DPO + chosen NLL)", "dpo",
                {"num_iterations": 1, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, RPO_ALPHA]},
                description="DPO plus alpha times the chosen response's NLL (TRL loss_type ['sigmoid', 'sft'], "
                "loss_weights [1, alpha]). TRL 1.16's 'sft' term is token-averaged: the mean NLL over all chosen "
                "tokens of the batch (not summed per sequence), so alpha weighs a per-token NLL against the "
                "per-pair sigmoid loss. Separates imitation of the chosen responses from pessimism."),
        Variant("sft_chosen", "SFT on chosen", "dpo", {"num_iterations": 1, "loss_type": ["sft"]},
                description="Supervised fine-tuning on the chosen responses only (TRL loss_type 'sft', "
                "token-averaged NLL): imitation alone."),
        Variant("spin", "SPIN", "spin", {"num_iterations": 3, "iteration_data": "split"},
                description="SPIN: DPO of the chosen response against pi_t's own sample; SPAC without the "
                "preference term."),
        Variant("spac", "SPAC (paper settings)", "spac", _PAPER,
                description="SPAC at the paper's practical settings (beta 0.1, lambda 1, T = 3 on disjoint thirds)."),
        Variant("spac_theory", "SPAC (theory preset)", "spac", _THEORY, output="mixture",
                description="SPAC at the settings the theory asks for: beta 1, lambda = 0.1 sqrt(n), T = 10 over "
                "all the data, the mixture of the iterates as output."),
        Variant("spac_theory_no_pessimism", "theory preset, pessimism off", "spac",
                {**_THEORY, "use_pessimism": False}, output="mixture",
                description="The theory preset with the pessimism term dropped and nothing else changed: the exact "
                "ablation of pessimism."),
        Variant("algorithm1", "Algorithm 1 (bounded critic)", "spac", _THEORY, output="mixture", tabular_only=True,
                description="The paper's Algorithm 1 at the theory preset: each iteration's critic a bounded table "
                "that minimises the critic objective, then the closed-form mirror-descent step (bandit only)."),
    )
}  # fmt: skip


def get_variant(name: str) -> Variant:
    """The record of `name`, or a `ValueError` naming it and listing the known variants."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {list(VARIANTS)}.")
    return VARIANTS[name]


def variant_config(variant: Variant | str, base_config: Any) -> Any:
    """`base_config` with the variant's overrides applied (`dataclasses.replace`, so the config validates itself).

    Raises a `ValueError` naming the variant and the field when the config has no such field (a SPAC option on a
    DPO config, say), and for a variant that only the bandit benchmark can run on a config of a trainer.
    """
    variant = get_variant(variant) if isinstance(variant, str) else variant
    names = {f.name for f in dataclasses.fields(base_config) if f.init}
    missing = [key for key in variant.overrides if key not in names]
    if missing:
        raise ValueError(
            f"variant {variant.name!r} sets {missing}, which {type(base_config).__name__} has no field for "
            f"(method {variant.method!r} needs {METHODS[variant.method].config.split(':')[1]})."
        )
    if variant.tabular_only and type(base_config).__module__.startswith(("spac_hf", "trl", "transformers")):
        raise ValueError(f"variant {variant.name!r} runs on tables only (benchmarks/theory); no trainer runs it.")
    overrides = {
        key: list(value) if isinstance(value, (list, tuple)) else value for key, value in variant.overrides.items()
    }
    with warnings.catch_warnings():
        # replace() passes every field again, deprecated aliases included: not the caller's doing.
        warnings.filterwarnings("ignore", message=".*is deprecated and will be removed", category=FutureWarning)
        return dataclasses.replace(base_config, **overrides)
