"""Run `run_self_play` on a tiny local model, as a separate process (for the kill/resume and torchrun tests).

python tests/run_tiny_loop.py --model DIR --output-dir OUT [--method spac] [--iterations 2] ...
torchrun --nproc_per_node 2 tests/run_tiny_loop.py ... [--evaluate] [--kill-rank 1 --kill-at-step 5]

`--evaluate` scores every model with a deterministic stand-in for a real evaluator (the sum of its weights), so
evaluations, model cards with samples and the results dataset are written. `--kill-at-step N` makes the process of
rank `--kill-rank` exit (`os._exit(137)`: no cleanup, as SIGKILL leaves it) at the end of its N-th training step,
counted over the whole run.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from datasets import Dataset
from transformers import TrainerCallback


sys.path.insert(0, os.path.dirname(__file__))
from helpers import CPU_TRAINING, preference_rows  # noqa: E402


def evaluate(model_path: str, iteration: int) -> dict:
    """A deterministic stand-in for an evaluator: the sum of the weights, and one example for the card's samples."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(model_path) / "model.safetensors"))
    total = sum(float(t.double().sum()) for t in weights.values())
    example = {"prompt": "the sum of the weights", "response": f"{total:.6f}", "reward": total}
    return {"results": {"weights": {"sum": total, "sum_stderr": 0.0}}, "examples": [example]}


class KillAtStep(TrainerCallback):
    """Exit this process, uncleanly, at the end of its `step`-th training step of the run (every iteration counts)."""

    def __init__(self, step: int, rank: int):
        self.step, self.rank, self.seen = step, rank, 0

    def on_step_end(self, args, state, control, **kwargs):
        self.seen += 1
        if self.seen == self.step and args.process_index == self.rank:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(137)


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
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--kill-at-step", type=int, default=0, help="0: no kill")
    parser.add_argument("--kill-rank", type=int, default=1)
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
        evaluate=evaluate if options.evaluate else None,
        callbacks=[KillAtStep(options.kill_at_step, options.kill_rank)] if options.kill_at_step else None,
    )
    state = PartialState()
    if state.is_main_process:
        print(json.dumps({"world_size": state.num_processes, "iterates": result.iterates}))


if __name__ == "__main__":
    main()
