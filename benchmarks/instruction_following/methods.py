"""The compared methods: which recipe each runs, on which `recipes/smollm2/<recipe>.yaml`, with which extra flags.

Every method trains SmolLM2-135M-Instruct on the same instruction-following pairs (built once, by
`spac_hf.tasks.instruction_following`), with the same learning rate, schedule, batch size, epochs and length limits.
SFT is the starting model itself (iteration 0 of every run); it is not a run of its own.

SPAC runs at two settings (issue 11): the library defaults (the paper's practical settings: beta 0.1, lambda 1, T
iterations on disjoint parts) and the "theory preset" (beta 1, lambda = 0.1 * sqrt(n) with n the pairs an iteration
trains on, every iteration on all the data, more iterations): `theory_preset_args` fills it in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from spac_hf.methods import METHODS as LIBRARY_METHODS
from spac_hf.variants import VARIANTS, Variant

from benchmarks.ground_truth.methods import ONE_PASS_ARGS


REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "recipes" / "smollm2"

# The theory preset (`spac_hf.variants.VARIANTS["spac_theory"]`): beta and lambda from the record. Its T = 10 is cut to
# `THEORY_ITERATIONS` passes here (the CPU budget): this run is not the variant, and it gave the preset 20 optimizer
# steps against the other methods' 5 or 6, which breaks the protocol's equal-compute rule (benchmarks/protocol.py).
THEORY_BETA = VARIANTS["spac_theory"].overrides["beta"]
THEORY_LAM_COEFFICIENT = VARIANTS["spac_theory"].overrides["lam"]  # lambda = 0.1 * sqrt(n)
THEORY_ITERATIONS = 4


@dataclass(frozen=True)
class Method:
    """An arm of this benchmark: a variant of `spac_hf.variants`, run by its library method's recipe on
    `recipes/smollm2/<recipe>.yaml` with `extra_args`."""

    variant: Variant
    extra_args: tuple[str, ...] = field(default=())  # after the shared overrides, so they win (argparse: last wins)

    @property
    def name(self) -> str:  # key in results.json, the folder name of its runs, and the rows' `variant`
        return self.variant.name

    @property
    def label(self) -> str:  # what the table and the plot call it: a library method's own label, else the variant's
        return LIBRARY_METHODS[self.name].label if self.name in LIBRARY_METHODS else self.variant.label

    @property
    def recipe(self) -> str:  # the recipe (`spac-hf train --method <recipe>`): "spac", "spin" or "dpo"
        return LIBRARY_METHODS[self.variant.method].paper.key

    @property
    def config_path(self) -> Path:
        return CONFIGS / f"{self.recipe}.yaml"

    def config_class(self):
        return LIBRARY_METHODS[self.variant.method].config_class


def theory_preset_args(num_pairs: int) -> tuple[tuple[str, ...], dict]:
    """The theory preset's flags for a data set of `num_pairs` pairs, and what they mean (recorded in the results).

    lambda is passed as its value, 0.1 * sqrt(n): every iteration trains on all n pairs (and no history), so this is
    exactly the lambda of `--lam 0.1 --lam_scaling sqrt_n` (SPACConfig option of the theory issue, which computes it
    from the pairs the trainer trains on). The value keeps one set of recipe arguments whichever SPACConfig is
    installed, so a run recorded with it resumes under either."""
    lam = THEORY_LAM_COEFFICIENT * math.sqrt(num_pairs)
    args = ("--beta", str(THEORY_BETA), "--iteration_data", "full", "--num_iterations", str(THEORY_ITERATIONS),
            "--lam", f"{lam:.6g}")  # fmt: skip
    return args, {"beta": THEORY_BETA, "lam": lam, "n_pairs": num_pairs, "num_iterations": THEORY_ITERATIONS,
                  "iteration_data": "full",
                  "how": "lam = 0.1 * sqrt(n) passed as its value (= lam 0.1 with lam_scaling sqrt_n)"}  # fmt: skip


def methods(num_pairs: int) -> dict[str, Method]:
    """Every compared method, in the order of the table and the plot: `spac_hf.methods`, then the theory preset."""
    theory_args, _ = theory_preset_args(num_pairs)
    listed = {
        name: Method(VARIANTS[name], () if record.iterative else ONE_PASS_ARGS)
        for name, record in LIBRARY_METHODS.items()
    }
    listed["spac_theory"] = Method(VARIANTS["spac_theory"], theory_args)
    return listed


METHOD_NAMES = tuple(methods(1))
SFT_LABEL = "SFT (SmolLM2-135M-Instruct)"
