"""The compared arms: variants of `spac_hf.variants`, each run by its method's recipe on its embedded default config.

Every method runs the recipe code path (`spac_hf.scripts.self_play`: `parse_recipe_args` + `main`) on its
`spac_hf/default/<recipe>.yaml`, unchanged: those files share the model, data, learning rate, schedule, batch size,
epochs and beta, so the only differences between methods are the loss, what is generated, and (plain DPO) how the
same 810 pairs are cut into iterations. The SFT model is not a run of its own: it is iteration 0 of every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spac_hf.methods import METHODS as LIBRARY_METHODS
from spac_hf.methods import Method as LibraryMethod
from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.variants import VARIANTS, Variant


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = EMBEDDED_DEFAULT
# One iteration over all the pairs: as many examples and optimizer steps as T iterations on T parts.
ONE_PASS_ARGS = ("--num_iterations", "1", "--iteration_data", "full")


@dataclass(frozen=True)
class Method:
    """An arm of this benchmark: a variant of `spac_hf.variants`, run by its library method's recipe."""

    variant: Variant

    @property
    def name(self) -> str:  # key in results.json, the folder name of its runs, and the rows' `variant`
        return self.variant.name

    @property
    def record(self) -> LibraryMethod:  # the library method the variant runs
        return LIBRARY_METHODS[self.variant.method]

    @property
    def label(self) -> str:  # what the table and the plot call it: a library method's own label, else the variant's
        return LIBRARY_METHODS[self.name].label if self.name in LIBRARY_METHODS else self.variant.label

    @property
    def recipe(self) -> str:  # `spac-hf train --method <recipe>` and `spac_hf/default/<recipe>.yaml`
        return self.record.paper.key

    @property
    def iterative(self) -> bool:
        """Whether the run has one iterate per part of the data (else: one pass over all of it, plain DPO)."""
        return self.record.iterative

    @property
    def extra_args(self) -> tuple[str, ...]:  # after the shared overrides, so they win (argparse: last wins)
        return () if self.iterative else ONE_PASS_ARGS

    @property
    def config_path(self) -> Path:
        # A library method runs its recipe's YAML; another variant its own file, `<variant>.yaml`, whose settings
        # tests/test_variants.py checks against the variant's overrides (the theory preset: spac_theory.yaml).
        return DEFAULT_CONFIGS / f"{self.recipe if self.name in LIBRARY_METHODS else self.name}.yaml"

    def config_class(self):
        return self.record.config_class


# The variants this benchmark runs: the library methods, and SPAC at the theory preset (beta 1, lambda = 0.1 sqrt(n),
# T = 10 over all the pairs). The preset spends 10 passes over the pairs, so a comparison with it and any other arm
# is refused (benchmarks/protocol.py: Comparison.validate, budget.optimizer_steps).
METHODS: dict[str, Method] = {name: Method(VARIANTS[name]) for name in (*LIBRARY_METHODS, "spac_theory")}

SFT_LABEL = "SFT (starting model)"
