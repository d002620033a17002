"""The compared methods: `spac_hf.methods.METHODS`, each run by its recipe on its embedded default config.

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


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = EMBEDDED_DEFAULT
# One iteration over all the pairs: as many examples and optimizer steps as T iterations on T parts.
ONE_PASS_ARGS = ("--num_iterations", "1", "--iteration_data", "full")


@dataclass(frozen=True)
class Method:
    """A method of `spac_hf.methods`, as this benchmark runs it."""

    record: LibraryMethod
    preset: str = ""  # a named configuration of the method: spac_hf/default/<recipe>_<preset>.yaml
    preset_label: str = ""

    @property
    def name(self) -> str:  # key in results.json and the folder name of its runs
        return f"{self.record.name}_{self.preset}" if self.preset else self.record.name

    @property
    def label(self) -> str:  # what the table and the plot call it
        return f"{self.record.label} ({self.preset_label})" if self.preset else self.record.label

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
        return DEFAULT_CONFIGS / (f"{self.recipe}_{self.preset}.yaml" if self.preset else f"{self.recipe}.yaml")

    def config_class(self):
        return self.record.config_class


METHODS: dict[str, Method] = {name: Method(record) for name, record in LIBRARY_METHODS.items()}
# SPAC at the theory preset (beta 1, lambda = 0.1 sqrt(n), T = 10 over all the pairs): its recipe file
# src/spac_hf/default/spac_theory.yaml is checked against spac_hf.variants.VARIANTS["spac_theory"] (test_variants.py).
PRESETS = (Method(LIBRARY_METHODS["spac"], preset="theory", preset_label="theory preset"),)
METHODS.update({method.name: method for method in PRESETS})
# A preset's budget is its own (the theory preset makes 10 passes over the pairs): left out of the same-budget check.
OWN_BUDGET = tuple(method.name for method in PRESETS)

SFT_LABEL = "SFT (starting model)"
