"""DPO baseline in the same loop as SPAC: iterative DPO (T parts, reference = previous iterate), or plain DPO with
`--num_iterations 1 --iteration_data full`. Training is TRL's own DPOTrainer.

    accelerate launch recipes/dpo.py                                           # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/dpo.py --config recipes/zephyr-7b/dpo/config_full.yaml
"""

from pathlib import Path

from spac_hf import SelfPlayConfig
from spac_hf.recipe import main, parse_recipe_args


if __name__ == "__main__":
    script_args, training_args, model_args, dataset_args = parse_recipe_args(
        SelfPlayConfig, Path(__file__).parent / "default" / "dpo.yaml"
    )
    main("dpo", script_args, training_args, model_args, dataset_args)
