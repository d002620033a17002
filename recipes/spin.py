"""SPIN baseline (arXiv 2401.01335) in the same loop as SPAC: TRL's DPOTrainer on (chosen = the data's chosen
response, rejected = y ~ pi_t), reference pi_t.

    accelerate launch recipes/spin.py                                          # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/spin.py --config recipes/zephyr-7b/spin/config_full.yaml
"""

from pathlib import Path

from spac_hf import SelfPlayConfig
from spac_hf.recipe import main, parse_recipe_args


if __name__ == "__main__":
    script_args, training_args, model_args, dataset_args = parse_recipe_args(
        SelfPlayConfig, Path(__file__).parent / "default" / "spin.yaml"
    )
    main("spin", script_args, training_args, model_args, dataset_args)
