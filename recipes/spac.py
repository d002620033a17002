"""SPAC: T iterations of self-play generation and SPAC training (arXiv 2406.04274).

    accelerate launch recipes/spac.py                                          # embedded default, CPU, < 5 min
    accelerate launch recipes/spac.py --config recipes/smollm2/spac.yaml       # SmolLM2-135M-Instruct, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/spac.py --config recipes/zephyr-7b/spac/config_full.yaml        # the paper's scale, 8 GPUs

Any option of the YAML can be overridden on the command line (`--lam 0.5`, `--num_iterations 2`, ...).
"""

from pathlib import Path

from spac_hf import SPACConfig
from spac_hf.recipe import main, parse_recipe_args


if __name__ == "__main__":
    script_args, training_args, model_args, dataset_args = parse_recipe_args(
        SPACConfig, Path(__file__).parent / "default" / "spac.yaml"
    )
    main("spac", script_args, training_args, model_args, dataset_args)
