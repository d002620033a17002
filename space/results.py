"""Results rows in, leaderboard table out.

Rows have the columns of `spac_hf.hub.RESULT_COLUMNS` (model, base_model, method, iteration, task, metric, value,
stderr, num_fewshot). They come from a Hub dataset (`data/*.jsonl`, the layout `spac_hf.hub.save_results_dataset`
writes) and/or from every `**/data/results.jsonl` under local folders. The Space does not import spac_hf (a Space
installs only `requirements.txt`); tests/test_space.py checks these column names against spac_hf.hub, and the
method list below against spac_hf.methods.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


logger = logging.getLogger(__name__)

COLUMNS = ("model", "base_model", "method", "iteration", "task", "metric", "value", "stderr", "num_fewshot")
REQUIRED = ("model", "task", "metric", "value")
ROW_KEY = ["model", "task", "metric", "num_fewshot"]  # one value per key, as in spac_hf.hub.validate_results_rows
RESULTS_GLOB = "**/data/results.jsonl"
# A copy of `spac_hf.methods.METHODS` (name -> label, plot colour), in its order; tests/test_space.py checks it.
METHODS = {
    "dpo": ("DPO (one pass, all pairs)", "#444444"),
    "iterative_dpo": ("iterative DPO", "#1f77b4"),
    "spin": ("SPIN", "#2ca02c"),
    "spac": ("SPAC", "#d62728"),
}
METHOD_ORDER = {name: index for index, name in enumerate(reversed(METHODS))}  # the Space lists SPAC first
AVERAGE = "Average"
SUITE_METRIC = "average"  # the metric of a suite-score row: the mean of other rows, not a task of its own


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def local_result_files(folders: Iterable[Path]) -> list[Path]:
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob(RESULTS_GLOB))]


def hub_result_files(dataset_id: str, revision: str | None = None) -> list[Path]:
    """Download only the data files of a results dataset (its README is not needed) and list them."""
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(dataset_id, repo_type="dataset", revision=revision, allow_patterns=["data/*.jsonl"])
    )
    return sorted(folder.glob("data/*.jsonl"))


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """A frame with every column (missing ones as None), without rows lacking a required value, one row per key."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    complete = frame[list(REQUIRED)].notna().all(axis=1)
    if not complete.all():
        logger.warning("Skipping %d results rows without %s", (~complete).sum(), REQUIRED)
    frame = frame[complete]
    # Later files win: a re-run of a benchmark writes a newer row for the same key.
    frame = frame.drop_duplicates(subset=ROW_KEY, keep="last")
    frame["value"] = frame["value"].astype(float)
    frame["iteration"] = frame["iteration"].astype("Int64")
    return frame.reset_index(drop=True)


def load_results(
    results_dirs: Iterable[Path], dataset_id: str | None = None, revision: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """All results rows, and one line per source saying what was read (or why it could not be) for the page."""
    rows, notes = [], []
    if dataset_id:
        try:
            files = hub_result_files(dataset_id, revision)
            for path in files:
                rows.extend(read_jsonl(path))
            notes.append(f"Hub dataset `{dataset_id}`: {len(files)} file(s).")
        except Exception as err:  # a Space should still show its demo when the Hub is unreachable
            logger.exception("Could not load results dataset %s", dataset_id)
            notes.append(f"Hub dataset `{dataset_id}` could not be loaded: {type(err).__name__}: {err}")
    results_dirs = list(results_dirs)
    files = local_result_files(results_dirs)
    for path in files:
        rows.extend(read_jsonl(path))
    if results_dirs:
        shown = ", ".join(f"`{d}`" for d in results_dirs)
        notes.append(f"Local folders {shown}: {len(files)} `data/results.jsonl` file(s).")
    return rows_frame(rows), notes


def task_column(task: str, metric: str, num_fewshot) -> str:
    shots = "" if pd.isna(num_fewshot) else f", {int(num_fewshot)}-shot"
    return f"{task} ({metric}{shots})"


def leaderboard(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """One row per model: model, method, iteration, the average over its task columns, then one column per task.

    A task column is (task, metric, shots). The average is the plain mean of the columns the model has, so it only
    compares models evaluated on the same tasks; rows are sorted by it, best first. Rows whose metric is already an
    average (a suite score, as benchmarks/leaderboard writes one) are shown but not averaged again.
    """
    if frame.empty:
        return pd.DataFrame(columns=["model", "method", "iteration", AVERAGE])
    frame = frame.assign(column=[task_column(*key) for key in zip(frame.task, frame.metric, frame.num_fewshot)])
    columns = list(dict.fromkeys(frame["column"]))
    scores = frame.pivot(index="model", columns="column", values="value")[columns]
    info = frame.groupby("model", sort=False).agg(method=("method", "first"), iteration=("iteration", "first"))
    table = info.join(scores)
    averaged = [c for c in columns if not frame.loc[frame["column"] == c, "metric"].eq(SUITE_METRIC).all()]
    table.insert(2, AVERAGE, scores[averaged or columns].mean(axis=1, skipna=True))
    table = table.reset_index().sort_values(AVERAGE, ascending=False, kind="stable")
    table[[AVERAGE, *columns]] = table[[AVERAGE, *columns]].round(digits)
    # The page shows empty cells for what a model does not have (method of the SFT model, a task it skipped).
    table["method"] = table["method"].fillna("")
    table["iteration"] = table["iteration"].astype(object).where(table["iteration"].notna(), None)
    return table.reset_index(drop=True)

