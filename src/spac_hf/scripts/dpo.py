"""DPO baseline in the same loop as SPAC: iterative DPO (T parts, reference = previous iterate), or plain DPO with
`--num_iterations 1 --iteration_data full`. Training is TRL's own DPOTrainer.

    accelerate launch recipes/dpo.py                                           # embedded default, CPU
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\
        recipes/dpo.py --config recipes/zephyr-7b/dpo/config_full.yaml
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `recipes.self_play`

from recipes.arguments import run_with_clean_errors  # noqa: E402
from recipes.self_play import run_recipe  # noqa: E402


if __name__ == "__main__":
    run_with_clean_errors(lambda argv: run_recipe("dpo", argv))
