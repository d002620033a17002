"""SPAC: T iterations of self-play generation and SPAC training (arXiv 2406.04274).

    accelerate launch -m spac_hf.scripts.spac                                   # the embedded default (CPU)
    accelerate launch -m spac_hf.scripts.spac --config recipes/smollm2/spac.yaml  # SmolLM2-135M-Instruct, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        -m spac_hf.scripts.spac --config recipes/zephyr-7b/spac/config_full.yaml  # the paper's scale, 8 GPUs

The base config is the embedded default (`spac_hf/default/<method>.yaml`) unless `--config` names another; any option
overrides it (`--num_iterations 2`, ...). `--help` lists the method's options with the values the run would use;
errors are one line unless `--debug`. Installed as `spac-hf train --method <method>` (`spac_hf.cli`).
"""

from spac_hf.scripts.arguments import run_with_clean_errors
from spac_hf.scripts.self_play import run_recipe


def main() -> None:
    run_with_clean_errors(lambda argv: run_recipe("spac", argv))


if __name__ == "__main__":
    main()
