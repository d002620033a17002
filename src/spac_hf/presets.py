"""The SPAC presets as plain dicts: a view of `spac_hf.variants` (the paper's settings and the theory preset are
defined there, once). Kept for code that reads `PRESETS["theory"]`; new code reads `spac_hf.variants.VARIANTS`."""

from __future__ import annotations

from .variants import VARIANTS


PAPER_PRESET = dict(VARIANTS["spac"].overrides)
THEORY_PRESET = dict(VARIANTS["spac_theory"].overrides)
THEORY_OUTPUT = VARIANTS["spac_theory"].output  # the theory's output policy: the uniform mixture of the iterates
PRESETS = {"paper": PAPER_PRESET, "theory": THEORY_PRESET}
