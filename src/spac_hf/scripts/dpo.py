"""DPO baseline in the same loop as SPAC: iterative DPO (T parts, reference = previous iterate), or plain DPO with
`--num_iterations 1 --iteration_data full`. Training is TRL's own DPOTrainer.

    accelerate launch -m spac_hf.scripts.dpo                                           # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        -m spac_hf.scripts.dpo --config recipes/zephyr-7b/dpo/config_full.yaml
"""

from spac_hf.scripts.arguments import run_with_clean_errors
from spac_hf.scripts.self_play import run_recipe


def main() -> None:
    run_with_clean_errors(lambda argv: run_recipe("dpo", argv))


if __name__ == "__main__":
    main()
