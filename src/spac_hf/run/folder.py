"""The folder of one `run_self_play` run: its layout, its identity record, its checkpoints, what a kill leaves
behind, and how processes share it.

Layout of `output_dir`; every path is built here (pi_t's, the Hub repos' names and the models' labels too), and every
step is durable and written atomically (a step is done when its marker exists):

    self_play_run.json          what this run is (every option that changes results, `identity.py`);
                                written once the inputs are validated, checked on resume
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

The rule holds by construction: a main-only function runs on one process, so nothing inside it may wait for the
others. Every barrier of the run goes through `barrier`, which raises `RankRuleError` at once when it is reached
inside a main-only function (a nested `main_only`, `RunFolder.exists`, a cached read): the mistake fails in any
one-process test instead of hanging a multi-process run. Main-only steps therefore receive what they need as values
(evaluations are computed, or read, by every process before the main process writes a card or a results dataset).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from accelerate import PartialState
from accelerate.logging import get_logger

from .identity import write_run_record
from .integrity import damaged_file


logger = get_logger(__name__)


RUN_FILE = "self_play_run.json"
ITERATE_FILE = "iterate.json"
EVAL_FILE = "eval.json"
F = TypeVar("F", bound=Callable[..., Any])


# The main-only function running on this process, if any (a context variable: threads and tasks each have their own).
_INSIDE_MAIN_ONLY: ContextVar[str | None] = ContextVar("spac_hf_inside_main_only", default=None)


class RankRuleError(RuntimeError):
    """Something that waits for every process was called inside a main-only function (see the rank rule above)."""


def _check_not_main_only(what: str) -> None:
    inside = _INSIDE_MAIN_ONLY.get()
    if inside is not None:
        raise RankRuleError(
            f"{what} waits for every process, but it was called inside the main-only function `{inside}`, which the "
            "other processes never enter: a multi-process run would hang here. Compute or read the value before the "
            "main-only step and pass it in (the rank rule, spac_hf/run/folder.py)."
        )


def barrier(what: str) -> None:
    """Wait for every process: the one barrier of a run, refused inside a main-only function."""
    _check_not_main_only(what)
    PartialState().wait_for_everyone()


def main_only(fn: F) -> F:
    """Run `fn` on the main process only (the others get None), then wait for every process: the only way the loop
    writes into its run folder (see the rank rule above). Inside `fn`, any `barrier` raises `RankRuleError`."""
    name = getattr(fn, "__qualname__", repr(fn))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _check_not_main_only(f"main_only({name})")  # it ends with a barrier
        result = None
        if PartialState().is_main_process:
            token = _INSIDE_MAIN_ONLY.set(name)
            try:
                result = fn(*args, **kwargs)
            finally:
                _INSIDE_MAIN_ONLY.reset(token)
        barrier(f"main_only({name})")
        return result

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class RunFolder:
    """Every path of a run folder, built once: the folder's files, pi_t, and the Hub repos the run pushes to."""

    root: Path
    base_model: str = ""  # pi_1, the starting model (a path or a Hub id)
    hub_model_id: str | None = None  # the prefix of the Hub repos (default: the folder's name)

    def policy(self, t: int) -> str:
        """pi_t, where iteration t starts: the starting model for t = 1, else the iterate iteration t - 1 saved."""
        return self.model(t - 1)

    def model(self, t: int) -> str:
        """Model t: the starting model for t = 0, else iterate t."""
        return self.base_model if t == 0 else str(self.iterate(t))

    def repo_id(self, suffix: str) -> str:
        """Where a run pushes: `<hub_model_id, or the folder's name>-iter<t>` and `...-results`."""
        return f"{self.hub_model_id or self.root.name}-{suffix}"

    def exists(self, path: Path) -> bool:
        """`path.exists()`, the same on every process: read after a barrier, and only `main_only` writes."""
        barrier(f"RunFolder.exists({path})")
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


@main_only
def record_run(folder: RunFolder, identity: dict[str, Any]) -> None:
    """Write the run record; only once every input has been validated (`spac_hf.run.preflight`)."""
    write_run_record(folder.run_file, identity)


# --------------------------------------------------------------------------------------------------------------------
# What a kill leaves behind
# --------------------------------------------------------------------------------------------------------------------


def _is_leftover(path: Path) -> bool:
    """A temporary of `atomic_directory` (`.<name>.tmp-*`), `atomic_write_bytes` (`.<name>.*.tmp`) or an iterate's
    staging folder (`.iter_<t>.tmp`): all hidden, all with `.tmp` in the name."""
    name = path.name
    return name.startswith(".") and (".tmp-" in name or name.endswith(".tmp"))


def remove_leftovers(folder: RunFolder, num_iterations: int, finished: Iterable[int] = ()) -> list[Path]:
    """Remove what a kill can leave in a run folder; return what was removed (and log it).

    - temporary folders and files of atomic writes (`.<name>.tmp-*`, `.<name>.*.tmp`, the staging `.iter_<t>.tmp`),
      anywhere in the run folder (the iterates, `work/`, the results dataset, ...);
    - the temporary files `datasets` writes while caching a `map` (`tmp*` in a saved data set's folder);
    - the checkpoints of the `finished` iterations (a kill between publishing the iterate and deleting them).
    """
    root = folder.root
    if not root.is_dir():
        return []
    iterations = range(1, num_iterations + 1)
    removed = []
    for parent, dirs, files in os.walk(root):
        found = sorted(name for name in dirs + files if _is_leftover(Path(name)))
        removed += [Path(parent) / name for name in found]
        dirs[:] = [d for d in dirs if d not in found]  # nothing to look for inside a temporary folder
    for t in iterations:
        for data in (folder.generated(t, name) for name in ("generated", "generated_eval")):
            removed += [p for p in sorted(data.glob("tmp*")) if p.is_file()] if data.is_dir() else []
    removed += [folder.checkpoints(t) for t in finished]
    removed = [p for p in removed if p.exists()]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if removed:
        logger.warning(
            "Removed what an interrupted run left behind in %s: %s",
            root,
            ", ".join(str(p.relative_to(root)) for p in removed),
        )
    return removed


@main_only
def clean_up_after_a_kill(folder: RunFolder, num_iterations: int) -> None:
    """Remove what a kill left behind (temporary files, checkpoints of finished iterations)."""
    finished = [t for t in range(1, num_iterations + 1) if folder.iterate_record(t).exists()]
    remove_leftovers(folder, num_iterations, finished)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-<step>` that Trainer finished writing, or None.

    Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG states), so a checkpoint
    without a readable one was cut off by a crash: resuming from it would fail. A checkpoint with a damaged file
    (`integrity.damaged_file`) is passed over too, with a warning: an earlier one, or none, resumes instead.
    """
    checkpoints = [p for p in folder.glob("checkpoint-*") if _checkpoint_step(p) >= 0] if folder.is_dir() else []
    for checkpoint in sorted(checkpoints, key=_checkpoint_step, reverse=True):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        damaged = next(((p, problem) for p in sorted(checkpoint.iterdir()) if (problem := damaged_file(p))), None)
        if damaged is None:
            return checkpoint
        logger.warning("Passing over the checkpoint %s: %s is damaged (%s).", checkpoint, damaged[0].name, damaged[1])
    return None


@main_only
def remove_checkpoints_after(checkpoint: Path) -> None:
    """Remove the checkpoints newer than `checkpoint` (cut off by a crash): they would confuse Trainer's rotation."""
    for path in checkpoint.parent.glob("checkpoint-*"):
        if _checkpoint_step(path) > _checkpoint_step(checkpoint):
            shutil.rmtree(path, ignore_errors=True)
