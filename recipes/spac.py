"""SPAC: T iterations of self-play generation and SPAC training (arXiv 2406.04274).

    accelerate launch recipes/spac.py                                          # embedded default, CPU, < 5 min
    accelerate launch recipes/spac.py --config recipes/smollm2/spac.yaml       # SmolLM2-135M-Instruct, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/spac.py --config recipes/zephyr-7b/spac/config_full.yaml        # the paper's scale, 8 GPUs

Any option of the YAML can be overridden on the command line (`--lam 0.5`, `--num_iterations 2`, ...).
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `recipes.self_play`

from recipes.self_play import run_recipe  # noqa: E402


if __name__ == "__main__":
    run_recipe("spac")
