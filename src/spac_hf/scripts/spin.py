"""SPIN baseline (arXiv 2401.01335) in the same loop as SPAC: TRL's DPOTrainer on (chosen = the data's chosen
response, rejected = y ~ pi_t), reference pi_t.

    accelerate launch recipes/spin.py                                          # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/spin.py --config recipes/zephyr-7b/spin/config_full.yaml
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `recipes.self_play`

from recipes.arguments import run_with_clean_errors  # noqa: E402
from recipes.self_play import run_recipe  # noqa: E402


if __name__ == "__main__":
    run_with_clean_errors(lambda argv: run_recipe("spin", argv))
