"""Per-step wall-clock phases of the real `Trainer.train()` loop, for any TRL trainer, without changing what it runs.

`StepClock.attach(trainer)` adds a callback and wraps a few bound methods of this one trainer instance (the data
fetch, `training_step`, `compute_loss`, `accelerator.backward`, the policy's and the reference's forward) with timers.
The wrappers only read the clock: the trainer executes the same code. On CUDA every boundary synchronises, so a phase
is charged for its own kernels (this adds a few syncs per step; the totals stay comparable between trainers).

Phases of one optimizer step (exclusive, seconds):
    data          fetch and collate the batch (`get_batch_samples`, before `on_step_begin`)
    forward       the policy forward: backbone + TRL's fused, chunked LM head (log-probs, entropy, ...)
    ref_forward   the no-grad reference forward (only without precomputed reference log-probs)
    loss_metrics  the rest of `compute_loss`: the loss and the logged metrics (with their `.item()` calls)
    backward      `accelerator.backward(loss)`
    clip          `training_step`'s bookkeeping, then the loop's gradient clipping (`max_grad_norm`)
    optimizer     `optimizer.step()`
    zero_grad     the scheduler step, `zero_grad` and the step-end callbacks
    total         all of the above
    cpu_total     the process CPU time of the same span (with one torch thread, the time the step computed; on a
                  shared machine it leaves out the time spent waiting for a core, so its ratios are less noisy)
    page_faults   minor page faults during the step (CPU: large temporaries that glibc maps afresh on every step)
"""

from __future__ import annotations

import functools
import resource
import time
from collections import defaultdict

from transformers import TrainerCallback


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


PHASES = ("data", "forward", "ref_forward", "loss_metrics", "backward", "clip", "optimizer", "zero_grad")


class StepClock(TrainerCallback):
    def __init__(self, device: str = "cpu"):
        self.cuda = device.startswith("cuda")
        self.steps: list[dict[str, float]] = []  # one dict of exclusive phase times per finished step
        self.shapes: list[tuple[int, ...]] = []  # `input_ids` shape of every batch the loop fetched
        self._inclusive: dict[str, float] = defaultdict(float)
        self._marks: dict[str, float] = {}
        self._recording = False

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def _timed(self, key: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self._inclusive[key] += self.now() - start

        return wrapper

    def attach(self, trainer) -> StepClock:
        """Instrument `trainer` (this instance only) and register the callback. Call once, before `train()`."""
        fetch = self._timed("data", trainer.get_batch_samples)

        def get_batch_samples(*args, **kwargs):
            cpu_start = time.process_time()
            batches, num_items = fetch(*args, **kwargs)
            self._inclusive["data_cpu"] += time.process_time() - cpu_start
            self.shapes.extend(tuple(batch["input_ids"].shape) for batch in batches)
            return batches, num_items

        trainer.get_batch_samples = get_batch_samples
        trainer.training_step = self._timed("training_step", trainer.training_step)
        trainer.compute_loss = self._timed("compute_loss", trainer.compute_loss)
        trainer.accelerator.backward = self._timed("backward", trainer.accelerator.backward)
        trainer.model.forward = self._timed("forward", trainer.model.forward)
        if trainer.ref_model is not None:
            trainer.ref_model.forward = self._timed("ref_forward", trainer.ref_model.forward)
        trainer.add_callback(self)
        return self

    # ------------------------------------------------------------------ callback events

    def on_train_begin(self, args, state, control, **kwargs):
        self._inclusive = defaultdict(float)

    def on_step_begin(self, args, state, control, **kwargs):
        self._marks = {"begin": self.now(), "begin_cpu": time.process_time(), "begin_faults": _minor_faults()}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._marks["pre_optimizer"] = self.now()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._marks["optimizer"] = self.now()

    def on_step_end(self, args, state, control, **kwargs):
        end = self.now()
        marks, inc = self._marks, self._inclusive
        step = {
            "data": inc["data"],
            "forward": inc["forward"],
            "ref_forward": inc["ref_forward"],
            "loss_metrics": inc["compute_loss"] - inc["forward"] - inc["ref_forward"],
            "backward": inc["backward"],
            "clip": (marks["pre_optimizer"] - marks["begin"]) - inc["compute_loss"] - inc["backward"],
            "optimizer": marks["optimizer"] - marks["pre_optimizer"],
            "zero_grad": end - marks["optimizer"],
        }
        step["total"] = inc["data"] + (end - marks["begin"])
        step["cpu_total"] = inc["data_cpu"] + (time.process_time() - marks["begin_cpu"])
        step["page_faults"] = _minor_faults() - marks["begin_faults"]
        self.steps.append(step)
        # The next step's fetch happens before its `on_step_begin`: start its accumulators now.
        self._inclusive = defaultdict(float)
