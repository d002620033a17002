"""The compared methods: which recipe each one runs, with which embedded default config and which extra flags.

Every method runs the recipe code path (`spac_hf.recipe.parse_recipe_args` + `spac_hf.recipe.main`) on its
`recipes/default/<recipe>.yaml`, unchanged: those files share the model, data, learning rate, schedule, batch size,
epochs and beta, so the only differences between methods are the loss, what is generated, and (plain DPO) how the
same 810 pairs are cut into iterations. The SFT model is not a run of its own: it is iteration 0 of every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = REPO_ROOT / "recipes" / "default"


@dataclass(frozen=True)
class Method:
    name: str  # key in results.json and the folder name of its runs
    label: str  # what the table and the plot call it
    recipe: str  # the `spac_hf.recipe.main` method: "spac", "spin" or "dpo"
    extra_args: tuple[str, ...] = field(default=())  # after the shared overrides, so they win (argparse: last wins)
    config_name: str = ""  # the YAML in recipes/default/ when it is not `<recipe>.yaml` (theory issue: presets)

    @property
    def config_path(self) -> Path:
        return DEFAULT_CONFIGS / f"{self.config_name or self.recipe}.yaml"

    @property
    def iterative(self) -> bool:
        """Whether the run has one iterate per part of the data (else: one pass over all of it, plain DPO)."""
        return "--iteration_data" not in self.extra_args

    def config_class(self):
        from spac_hf import SelfPlayConfig, SPACConfig

        return SPACConfig if self.recipe == "spac" else SelfPlayConfig


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        # One iteration over all the pairs: as many examples and optimizer steps as T iterations on T parts.
        Method("dpo", "DPO (one pass, all pairs)", "dpo", ("--num_iterations", "1", "--iteration_data", "full")),
        Method("iterative_dpo", "iterative DPO", "dpo"),
        Method("spin", "SPIN", "spin"),
        Method("spac", "SPAC", "spac"),
        # --- theory issue (11): SPAC at the theory preset (beta 1, lambda = 0.1 sqrt(n), T = 10 over all the pairs)
        Method("spac_theory", "SPAC (theory preset)", "spac", config_name="spac_theory"),
    )
}
# The theory preset's budget is its own (10 passes over the pairs, beta 1): it is left out of the same-budget check.
OWN_BUDGET = ("spac_theory",)

SFT_LABEL = "SFT (starting model)"
