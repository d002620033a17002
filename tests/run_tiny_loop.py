"""Run `run_self_play` on a tiny local model, as a separate process (for the kill/resume and torchrun tests).

python tests/run_tiny_loop.py --model DIR --output-dir OUT [--method spac] [--iterations 2] ...
torchrun --nproc_per_node 2 tests/run_tiny_loop.py ...
"""

import argparse
import json
import logging
import os
import sys

from datasets import Dataset


sys.path.insert(0, os.path.dirname(__file__))
from helpers import CPU_TRAINING, preference_rows  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--method", default="spac")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--save-steps", type=int, default=0, help="0: no checkpoints")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--history", type=int, default=0)
    options = parser.parse_args()
    # The loop reports its progress at INFO through accelerate's logger (main process only); the tests read it.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("spac_hf").setLevel(logging.INFO)

    from accelerate import PartialState

    from spac_hf import SelfPlayConfig, SPACConfig, run_self_play

    config = SPACConfig if options.method == "spac" else SelfPlayConfig
    args = config(
        **{
            **CPU_TRAINING,
            "output_dir": options.output_dir,
            "num_iterations": options.iterations,
            "num_train_epochs": options.epochs,
            "per_device_train_batch_size": options.batch_size,
            "learning_rate": 1e-2,
            "temperature": options.temperature,
            "history_iterations": options.history,
            "save_strategy": "steps" if options.save_steps else "no",
            "save_steps": options.save_steps or 500,
        }
    )
    result = run_self_play(
        options.model,
        args,
        Dataset.from_list(preference_rows(options.rows)),
        method=options.method,
        dataset_names=["local/tiny-preferences"],
    )
    state = PartialState()
    if state.is_main_process:
        print(json.dumps({"world_size": state.num_processes, "iterates": result.iterates}))


if __name__ == "__main__":
    main()
