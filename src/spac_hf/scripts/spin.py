"""SPIN baseline (arXiv 2401.01335) in the same loop as SPAC: TRL's DPOTrainer on (chosen = the data's chosen
response, rejected = y ~ pi_t), reference pi_t.

    accelerate launch -m spac_hf.scripts.spin  # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        -m spac_hf.scripts.spin --config recipes/zephyr-7b/spin/config_full.yaml
"""

from spac_hf.scripts.arguments import run_with_clean_errors
from spac_hf.scripts.self_play import run_recipe


def main() -> None:
    run_with_clean_errors(lambda argv: run_recipe("spin", argv))


if __name__ == "__main__":
    main()
