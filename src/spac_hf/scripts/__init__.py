"""The scripts the `spac-hf` command runs (TRL's layout: `trl/scripts/`): one per method (`spac`, `dpo`, `spin`,
each also `python -m spac_hf.scripts.<method>`), the code they share (`self_play`, `arguments`, `console`), the
side-by-side report (`compare`) and the Space launcher (`space`). The embedded default they start from (a 0.9M model,
its preference data and one YAML per method) ships with the package in `spac_hf/default/`.
"""

from pathlib import Path


EMBEDDED_DEFAULT = Path(__file__).resolve().parents[1] / "default"
