"""SPAC: T iterations of self-play generation and SPAC training (arXiv 2406.04274).

    accelerate launch recipes/spac.py                                          # the embedded default (CPU)
    accelerate launch recipes/spac.py --config recipes/smollm2/spac.yaml       # SmolLM2-135M-Instruct, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/spac.py --config recipes/zephyr-7b/spac/config_full.yaml        # the paper's scale, 8 GPUs

The base config is the embedded default (`recipes/default/<method>.yaml`) unless `--config` names another; any option
overrides it (`--num_iterations 2`, ...). `--help` lists the method's options with the values the run would use;
errors are one line unless `--debug`. Installed as `spac-hf train --method <method>` (src/spac_hf/cli.py).
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `recipes.self_play`

from recipes.arguments import run_with_clean_errors  # noqa: E402
from recipes.self_play import run_recipe  # noqa: E402


if __name__ == "__main__":
    run_with_clean_errors(lambda argv: run_recipe("spac", argv))
