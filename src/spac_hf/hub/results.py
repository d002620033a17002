"""Results datasets: evaluation rows (one per model, task, metric and shots), checked, written in the Hub layout."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from ..utils import atomic_write_text, recorded_path
from ._values import cell, check_row, format_value, is_number


# Column -> dtype in the dataset card. Every row is written with every column (None where unknown) so the JSONL has
# one schema, and the card declares the types so an all-null column still loads with its real type.
RESULT_COLUMNS = {
    "model": "string",
    "base_model": "string",
    "method": "string",
    "variant": "string",  # a key of spac_hf.variants.VARIANTS: the method's settings (None: as configured)
    "iteration": "int64",
    "task": "string",
    "metric": "string",
    "value": "float64",
    "stderr": "float64",
    "num_fewshot": "int64",
}
_REQUIRED_COLUMNS = ("model", "task", "metric", "value")
_RESULTS_FILE = "data/results.jsonl"


def results_dataset_rows(
    eval_output: Mapping[str, Any],
    *,
    model: str,
    method: str | None = None,
    iteration: int | None = None,
    base_model: str | None = None,
    variant: str | None = None,
) -> list[dict[str, Any]]:
    """Turn one model's evaluation output into results-dataset rows (one per task and metric).

    `eval_output` is either what lm-eval's `simple_evaluate` returns (`{"results": {task: {"acc,none": ...,
    "acc_stderr,none": ...}}, "n-shot": {task: k}, ...}`) or a plain `{task: {metric: value}}` mapping (for the
    ground-truth reward, say).
    """
    if "results" in eval_output:
        per_task, shots = eval_output["results"], eval_output.get("n-shot", {})
    else:
        per_task, shots = eval_output, {}
    rows = []
    for task, metrics in per_task.items():
        for key, value in metrics.items():
            name, _, filter_name = key.partition(",")
            # lm-eval keys are "<metric>,<filter>"; its stderr entries and the alias are not metrics of their own.
            if key == "alias" or name.endswith("_stderr") or isinstance(value, str):
                continue
            stderr = metrics.get(f"{name}_stderr,{filter_name}" if filter_name else f"{name}_stderr")
            rows.append(
                {
                    "model": recorded_path(model),
                    "base_model": recorded_path(base_model) if base_model else base_model,
                    "method": method,
                    "variant": variant,
                    "iteration": iteration,
                    "task": task,
                    "metric": name if filter_name in ("", "none") else f"{name},{filter_name}",
                    "value": value,
                    "stderr": stderr if is_number(stderr) else None,
                    "num_fewshot": shots.get(task),
                }
            )
    return validate_results_rows(rows)


def validate_results_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check results rows and return them with every column, in `RESULT_COLUMNS` order.

    Errors name the row (its index and content): missing or unknown keys, a non-numeric `value`, a non-integer
    `iteration`/`num_fewshot`, an unknown `method` or `variant`, or two rows for the same (model, task, metric,
    num_fewshot).
    """
    checked, seen = [], {}
    for index, row in enumerate(rows):
        row = check_row(row, f"Result row {index}", _REQUIRED_COLUMNS, set(RESULT_COLUMNS))
        key = _row_key(row)
        if key in seen:
            raise ValueError(
                f"Result rows {seen[key]} and {index} are both for (model, task, metric, num_fewshot)={key}"
            )
        seen[key] = index
        checked.append({column: _column_value(row.get(column), dtype) for column, dtype in RESULT_COLUMNS.items()})
    return checked


def _results_card(
    rows: list[Mapping[str, Any]], *, dataset_name: str, description: str, repo_id: str | None = None
) -> DatasetCard:
    """The dataset card of a results dataset: YAML that points `datasets` at the data file, and a summary table."""
    card_data = DatasetCardData(
        pretty_name=dataset_name,
        tags=["spac-hf", "evaluation", "trl"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": _RESULTS_FILE}]}],
        dataset_info={
            "features": [{"name": name, "dtype": dtype} for name, dtype in RESULT_COLUMNS.items()],
            "splits": [{"name": "train", "num_examples": len(rows)}],
        },
    )
    load_ref = repo_id or "path/to/this/folder"
    columns = "\n".join(f"| `{name}` | {dtype} |" for name, dtype in RESULT_COLUMNS.items())
    body = f"""\
# {dataset_name}

{description}

One row per (model, task, metric, num_fewshot), written by the benchmark scripts of spac-hf (SPAC,
[arXiv 2406.04274](https://arxiv.org/abs/2406.04274)). `model` is the evaluated model (a Hub id or a local path),
`iteration` the number of completed self-play iterations (0 for the starting model), `stderr` the standard error
reported by the evaluator when there is one.

```python
from datasets import load_dataset

results = load_dataset("{load_ref}", split="train")
```

## Columns

| Column | Type |
|---|---|
{columns}

## Results

{_results_table(rows)}
"""
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def save_results_dataset(
    rows: Iterable[Mapping[str, Any]],
    local_dir: str | os.PathLike,
    *,
    dataset_name: str,
    description: str,
    repo_id: str | None = None,
) -> Path:
    """Write a results dataset in the Hub layout (`data/results.jsonl` + `README.md`) to `local_dir`; return it. The
    rows are the whole dataset: what `local_dir` held before is replaced."""
    local_dir = Path(local_dir)
    rows = validate_results_rows(rows)
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(local_dir / _RESULTS_FILE, data)
    card = _results_card(rows, dataset_name=dataset_name, description=description, repo_id=repo_id)
    atomic_write_text(local_dir / "README.md", str(card))
    return local_dir


def _results_table(rows: list[Mapping[str, Any]]) -> str:
    """Models as rows, "task (metric)" as columns: the summary a reader of the card wants first."""
    if not rows:
        return "No results yet."
    columns = list(dict.fromkeys(f"{row['task']} ({row['metric']})" for row in rows))
    models = list(dict.fromkeys(row["model"] for row in rows))
    cells = {(row["model"], f"{row['task']} ({row['metric']})"): format_value(row["value"]) for row in rows}
    lines = ["| Model | " + " | ".join(cell(c) for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model in models:
        lines.append(f"| {cell(model)} | " + " | ".join(cells.get((model, c), "") for c in columns) + " |")
    return "\n".join(lines)


def _row_key(row: Mapping[str, Any]) -> tuple:
    return (row.get("model"), row.get("task"), row.get("metric"), row.get("num_fewshot"))


def _column_value(value: Any, dtype: str) -> Any:
    if value is None:
        return None
    if dtype == "float64":
        return float(value)  # ints and numpy scalars alike, so the JSON column is float throughout
    if dtype == "int64":
        return int(value)
    return value
