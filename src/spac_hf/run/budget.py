"""What a finished self-play run spent, counted from its own folder: optimizer steps, preference pairs seen and
self-play samples generated (the fields of the comparison protocol's `Spent`, benchmarks/protocol.py, that a run
folder holds; wall and CPU seconds are measured by whoever launched the run).

The package's own counting, so that `spac-hf compare` records a budget without importing the benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..methods import get_method
from ..utils import read_json
from .folder import RUN_FILE, RunFolder


def spend_by_iterate(summary: dict[str, Any], run_dir: str | Path) -> list[dict[str, int]]:
    """{iteration, optimizer_steps, pairs_seen, self_play_samples} after each iterate of the run in `run_dir`, summed
    from the first iterate on.

    Steps are each iterate's last logged trainer step; pairs are its training rows times the epochs it trained;
    a generating method samples one response per training prompt and iteration (then trains its epochs on them)."""
    folder = RunFolder(Path(run_dir))
    record = read_json(folder.root / RUN_FILE, {})
    epochs = record.get("num_train_epochs") or 1
    generates = get_method(summary["method"]).generates and record.get("use_pessimism", True)
    steps = pairs = samples = 0
    spent = []
    for iterate in summary["iterates"]:
        history = read_json(folder.iterate_record(iterate["iteration"]), {}).get("log_history", [])
        steps += max((entry.get("step", 0) for entry in history), default=0)
        pairs += int(iterate["train_rows"] * epochs)
        samples += iterate["train_rows"] if generates else 0
        spent.append(
            {
                "iteration": iterate["iteration"],
                "optimizer_steps": steps,
                "pairs_seen": pairs,
                "self_play_samples": samples,
            }
        )
    return spent


def run_spend(summary: dict[str, Any], run_dir: str | Path) -> dict[str, int]:
    """{optimizer_steps, pairs_seen, self_play_samples} of the whole run in `run_dir` (see `spend_by_iterate`)."""
    spent = spend_by_iterate(summary, run_dir)
    last = spent[-1] if spent else {"optimizer_steps": 0, "pairs_seen": 0, "self_play_samples": 0}
    return {key: last[key] for key in ("optimizer_steps", "pairs_seen", "self_play_samples")}
