"""The folder of one `run_self_play` run: its layout, its identity record, its checkpoints, and how processes share it.

Layout of `output_dir`; every path is built here, and every step is durable and written atomically (a step is done
when its marker exists):

    self_play_run.json          what this run is (method, base model, data hash, T, ...); checked on resume
    work/iter_<t>/generated/    the part's data with the self-play responses (`datasets.save_to_disk`)
    work/iter_<t>/generated_eval/
    work/iter_<t>/checkpoints/  Trainer checkpoints of the iteration in progress (deleted once the iterate is saved)
    iter_<t>/                   iterate t: model, tokenizer, model card, iterate.json (the marker) and eval.json
    iter_average/               the uniform average of the iterates' weights, when asked for
    base_eval.json              the evaluation of the starting model, when an evaluation function is given
    results/                    the run's results dataset (Hub layout), when there are evaluations
    summary.json                all iterates with their training metrics and evaluations

The rank rule. With several processes (accelerate, torchrun) every process runs the loop and enters every step in the
same order, because the steps hold collective operations (sharded generation and its gather, training, the weight
gathering of DeepSpeed and FSDP). Only the main process writes into the run folder, and only inside a function
decorated with `main_only`, which ends with a barrier. Whether a step is done is read with `RunFolder.exists`, after a
barrier: since nothing is written between that barrier and the read, every process sees the same answer and takes the
same branch, so the processes never wait at different barriers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from accelerate import PartialState
from datasets import Dataset

from .utils import atomic_write_json, read_json


RUN_FILE = "self_play_run.json"
ITERATE_FILE = "iterate.json"
EVAL_FILE = "eval.json"
# The options that change the iterates: resuming with other values would mix two different runs.
RESULT_AFFECTING = (
    "beta", "learning_rate", "lr_scheduler_type", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_length", "max_new_tokens", "temperature", "top_p", "top_k", "lam",
    "real_response", "smoothing", "use_pessimism", "loss_type",
)  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def main_only(fn: F) -> F:
    """Run `fn` on the main process only (the others get None), then wait for every process: the only way the loop
    writes into its run folder (see the rank rule above)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        state = PartialState()
        result = fn(*args, **kwargs) if state.is_main_process else None
        state.wait_for_everyone()
        return result

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class RunFolder:
    """Every path of a run folder, built once."""

    root: Path

    def exists(self, path: Path) -> bool:
        """`path.exists()`, the same on every process: read after a barrier, and only `main_only` writes."""
        PartialState().wait_for_everyone()
        return path.exists()

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def average(self) -> Path:
        return self.root / "iter_average"

    def iterate(self, t: int) -> Path:
        return self.root / f"iter_{t}"

    def iterate_record(self, t: int) -> Path:
        """The marker of a finished iterate, written last."""
        return self.iterate(t) / ITERATE_FILE

    def staging(self, t: int) -> Path:
        """Where iterate t is written before one rename publishes it."""
        return self.root / f".iter_{t}.tmp"

    def eval_record(self, t: int) -> Path:
        return self.root / "base_eval.json" if t == 0 else self.iterate(t) / EVAL_FILE

    def work(self, t: int) -> Path:
        return self.root / "work" / f"iter_{t}"

    def generated(self, t: int, name: str) -> Path:
        """Iteration t's data with its self-play responses; `name` is "generated" or "generated_eval"."""
        return self.work(t) / name

    def checkpoints(self, t: int) -> Path:
        return self.work(t) / "checkpoints"

    def is_done(self, t: int) -> bool:
        return self.exists(self.iterate_record(t))

    def model_label(self, t: int) -> str:
        """Unique across runs, so that results of several runs can share one table: `default-spac-iter2`."""
        run = f"{self.root.parent.name}-{self.root.name}" if self.root.parent.name else self.root.name
        return f"{run}-base" if t == 0 else f"{run}-iter{t}"


# --------------------------------------------------------------------------------------------------------------------
# Run identity
# --------------------------------------------------------------------------------------------------------------------


def data_hash(dataset: Dataset) -> str:
    """Content hash of the preference columns, so a resumed run provably continues on the same data."""
    digest = hashlib.sha256()
    columns = [c for c in ("prompt", "chosen", "rejected") if c in dataset.column_names]
    for batch in dataset.select_columns(columns).iter(batch_size=4096):
        digest.update(json.dumps(batch, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def run_identity(method: str, base_model: str, args: Any, train_dataset: Dataset) -> dict[str, Any]:
    """What this run is, as it reads back from the run file (enums and tuples as JSON)."""
    identity = {
        "method": method,
        "base_model": base_model,
        "num_iterations": args.num_iterations,
        "iteration_data": args.iteration_data,
        "history_iterations": args.history_iterations,
        "seed": args.seed,
        "train_rows": len(train_dataset),
        "train_data_hash": data_hash(train_dataset),
        **{name: getattr(args, name) for name in RESULT_AFFECTING if hasattr(args, name)},
    }
    return json.loads(json.dumps(identity, default=str))


def check_run_identity(folder: RunFolder, identity: dict[str, Any]) -> bool:
    """Raise if `folder` holds another run; return whether it holds this one already (a resume)."""
    if not folder.exists(folder.run_file):
        return False
    recorded = read_json(folder.run_file)
    changed = {k: (recorded.get(k), v) for k, v in identity.items() if recorded.get(k) != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(
            f"`output_dir` {str(folder.root)!r} holds another run ({details}). Resume it with the same settings or "
            "choose a new `output_dir`."
        )
    return True


@main_only
def record_run(folder: RunFolder, identity: dict[str, Any]) -> None:
    atomic_write_json(folder.run_file, {**identity, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-<step>` that Trainer finished writing, or None.

    Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG states), so a checkpoint
    without a readable one was cut off by a crash: resuming from it would fail.
    """
    checkpoints = [p for p in folder.glob("checkpoint-*") if _checkpoint_step(p) >= 0] if folder.is_dir() else []
    for checkpoint in sorted(checkpoints, key=_checkpoint_step, reverse=True):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return checkpoint
        except (OSError, ValueError):
            continue
    return None


@main_only
def remove_checkpoints_after(checkpoint: Path) -> None:
    """Remove the checkpoints newer than `checkpoint` (cut off by a crash): they would confuse Trainer's rotation."""
    for path in checkpoint.parent.glob("checkpoint-*"):
        if _checkpoint_step(path) > _checkpoint_step(checkpoint):
            shutil.rmtree(path, ignore_errors=True)
