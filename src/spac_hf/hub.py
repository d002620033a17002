"""Hub publishing: a model card for every saved iterate, pushing model folders, and evaluation results as a dataset.

What goes where:

- **Model folder** (one per saved iterate, e.g. `output_dir/iter_2`): what `save_pretrained` wrote (config, weights
  as safetensors, tokenizer), plus a `README.md` from [`save_model_card`]. The card's YAML carries the Hub metadata
  (`base_model`, `datasets`, `library_name`, `tags`, `license`, and `model-index` when evaluation results exist); its
  body says which iterate of which method this is, lists the hyperparameters, shows how to load the model, tabulates
  the evaluation results and gives the BibTeX to cite.
- **Results dataset folder** (from [`save_results_dataset`]): `data/results.jsonl`, one row per (model, task, metric,
  num_fewshot), and a `README.md` dataset card whose YAML `configs` points at that file and whose `dataset_info` fixes
  the column types, so `datasets.load_dataset(folder)` and the Hub's viewer read it the same way.
- **Pushing** ([`push_folder`], [`push_results_dataset`]): `create_repo(exist_ok=True)`, then `upload_folder` of the
  local folder as it is. Offline, nothing is pushed and the folders above are the whole result, already in the layout
  the Hub expects; pushing them later (`push_folder` or `hf upload`) uploads exactly the files that were checked
  locally.

Everything goes through the public `huggingface_hub` API (`ModelCard`, `ModelCardData`, `EvalResult`, `DatasetCard`,
`HfApi`). The `HfApi` client is created at call time, so the endpoint and token in effect when a function is called are
the ones used.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, HfApi, ModelCard, ModelCardData, constants
from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from .utils import atomic_write_text


__all__ = [
    "METHODS",
    "RESULT_COLUMNS",
    "build_model_card",
    "save_model_card",
    "check_repo_id",
    "push_folder",
    "results_dataset_rows",
    "validate_results_rows",
    "build_results_dataset_card",
    "save_results_dataset",
    "push_results_dataset",
]

METHODS = ("spac", "spin", "dpo")

_METHOD_NAMES = {
    "spac": "SPAC (Self-Play with Adversarial Critic)",
    "spin": "SPIN (Self-Play fIne-tuNing)",
    "dpo": "DPO (Direct Preference Optimization)",
}
_METHOD_PAPERS = {"spac": "2406.04274", "spin": "2401.01335", "dpo": "2305.18290"}

# BibTeX entries. SPAC is cited on every card (spac-hf implements it and runs the baselines in its loop); SPIN or DPO
# when the card is for that method; TRL always, since the trainers are TRL's.
_CITATIONS = {
    "spac": """\
@article{ji2024spac,
  title   = {{Self-Play with Adversarial Critic: Provable and Scalable Offline Alignment for Language Models}},
  author  = {Ji, Xiang and Kulkarni, Sanjeev and Wang, Mengdi and Xie, Tengyang},
  journal = {arXiv preprint arXiv:2406.04274},
  year    = {2024},
  url     = {https://arxiv.org/abs/2406.04274}
}""",
    "spin": """\
@article{chen2024spin,
  title   = {{Self-Play Fine-Tuning Converts Weak Language Models to Strong Language Models}},
  author  = {Chen, Zixiang and Deng, Yihe and Yuan, Huizhuo and Ji, Kaixuan and Gu, Quanquan},
  journal = {arXiv preprint arXiv:2401.01335},
  year    = {2024},
  url     = {https://arxiv.org/abs/2401.01335}
}""",
    "dpo": """\
@inproceedings{rafailov2023dpo,
  title     = {{Direct Preference Optimization: Your Language Model is Secretly a Reward Model}},
  author    = {Rafailov, Rafael and Sharma, Archit and Mitchell, Eric and Manning, Christopher D. and
               Ermon, Stefano and Finn, Chelsea},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023},
  url       = {https://arxiv.org/abs/2305.18290}
}""",
    "trl": """\
@software{vonwerra2020trl,
  title   = {{TRL: Transformers Reinforcement Learning}},
  author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and
             Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallou{\\'e}dec, Quentin},
  license = {Apache-2.0},
  url     = {https://github.com/huggingface/trl},
  year    = {2020}
}""",
}

# `load_dataset("json", data_files=...)` and friends: loaders for local files, not data sets on the Hub.
_PACKAGED_LOADERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "sql", "xml", "webdataset", "generator"}

_FRAMEWORKS = ("spac-hf", "trl", "transformers", "torch", "datasets", "huggingface_hub")

# Keys an evaluation row may carry for a model card. The results-dataset columns are accepted too (and not shown in
# `model-index`), so the rows of one model from `results_dataset_rows` can be passed to `build_model_card` as they are.
_EVAL_KEYS = {
    "task", "metric", "value", "stderr", "num_fewshot", "task_type", "task_name", "dataset_name", "dataset_type",
    "dataset_config", "dataset_split", "dataset_revision", "metric_name", "source_name", "source_url",
}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------------------------


def build_model_card(
    *,
    model_name: str,
    base_model: str,
    datasets: list[str],
    method: str,
    iteration: int,
    num_iterations: int,
    hyperparameters: Mapping[str, Any],
    eval_results: list[Mapping[str, Any]] | None = None,
    repo_id: str | None = None,
    license: str | None = None,
) -> ModelCard:
    """Build the model card of one saved iterate.

    Args:
        model_name: Display name, also the `model-index` name (e.g. `"zephyr-7b-spac-iter2"`).
        base_model: The model the run started from (pi_1, the SFT model): a Hub repo id or a local path. Only a Hub
            repo id goes into the YAML `base_model` (the Hub rejects anything else); a path is named in the text.
        datasets: Preference data sets used for training; Hub ids go into the YAML, all are named in the text.
        method: `"spac"`, `"spin"` or `"dpo"`.
        iteration: Number of completed iterations t (1..T; 0 is the starting model). The model is pi_{t+1}.
        num_iterations: T.
        hyperparameters: Shown as a table, in the given order (beta, lambda, data response, learning rate, ...).
        eval_results: Rows like `{"task": "arc_challenge", "metric": "acc_norm", "value": 0.61, "num_fewshot": 25,
            "dataset_name": "AI2 Reasoning Challenge (25-Shot)", "dataset_type": "ai2_arc"}`; optional keys are
            `stderr`, `task_type` (default `"text-generation"`), `task_name`, `dataset_config`, `dataset_split`,
            `dataset_revision`, `metric_name`, `source_name`, `source_url`. Rows of the results dataset work as is.
            Given, they become the card's `model-index` and an evaluation table; absent, neither appears.
        repo_id: Where the model is (or will be) on the Hub, used in the loading snippet.
        license: A Hub license id (e.g. `"apache-2.0"`), usually the base model's.
    """
    method = _check_method(method)
    _check_iterations(iteration, num_iterations)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    rows = [_check_eval_row(row, index) for index, row in enumerate(eval_results or [])]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[name for name in datasets if _is_hub_id(name)] or None,
        library_name="transformers",
        license=license,
        tags=_tags(method),
        pipeline_tag="text-generation",
        eval_results=[_eval_result(row) for row in rows] or None,
    )
    sections = [
        f"# {model_name}",
        _intro_section(base_model, datasets, method, iteration, num_iterations),
        _usage_section(repo_id or f"path/to/{model_name}"),
        _hyperparameter_section(method, iteration, num_iterations, hyperparameters),
        _eval_section(rows),
        _framework_section(),
        _citation_section(method),
    ]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")


def save_model_card(folder: str | os.PathLike, **kwargs: Any) -> Path:
    """Write the card from [`build_model_card`]`(**kwargs)` to `folder/README.md`, atomically; return its path."""
    card = build_model_card(**kwargs)
    return atomic_write_text(Path(folder) / "README.md", str(card))


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_iterations(iteration: int, num_iterations: int) -> None:
    if not _is_int(num_iterations) or num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1, got {num_iterations!r}")
    if not _is_int(iteration) or not 0 <= iteration <= num_iterations:
        raise ValueError(f"iteration must be an integer in [0, num_iterations={num_iterations}], got {iteration!r}")


def _tags(method: str) -> list[str]:
    tags = ["trl", "spac-hf", method]
    if method in ("spac", "spin"):
        tags.append("self-play")
    return tags


def _is_hub_id(name: str) -> bool:
    """Whether `name` can be a Hub repo id (not a local path that merely looks like one, nor a `datasets` loader)."""
    if not name or name.startswith((".", "/", "~")) or os.path.exists(name) or name in _PACKAGED_LOADERS:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _link(name: str, kind: str = "model") -> str:
    if not _is_hub_id(name):
        return f"`{name}`"
    prefix = "datasets/" if kind == "dataset" else ""
    return f"[{name}](https://huggingface.co/{prefix}{name})"


def _paper_link(method: str) -> str:
    return f"[{_METHOD_NAMES[method]}](https://huggingface.co/papers/{_METHOD_PAPERS[method]})"


def _method_label(method: str, num_iterations: int) -> str:
    # DPO run for more than one iteration, each from the previous iterate, is "iterative DPO" in the papers.
    label = _paper_link(method)
    return f"iterative {label}" if method == "dpo" and num_iterations > 1 else label


def _intro_section(base_model: str, datasets: list[str], method: str, iteration: int, num_iterations: int) -> str:
    label = _method_label(method, num_iterations)
    if iteration == 0:
        what = f"This is the starting point (iteration 0 of {num_iterations}) of a {label} run"
    else:
        plural = "s" if iteration > 1 else ""
        what = f"This model is iterate {iteration} of {num_iterations} of {label}"
        what += f": the model after {iteration} iteration{plural}"
    data = ", ".join(_link(name, "dataset") for name in datasets) or "no data set recorded"
    lines = [
        f"{what}, starting from {_link(base_model)}, trained on {data}.",
        "It was trained with spac-hf, a [TRL](https://github.com/huggingface/trl) plugin for SPAC "
        "([arXiv 2406.04274](https://arxiv.org/abs/2406.04274)).",
    ]
    if method in ("spac", "spin"):
        lines.append(
            "Each iteration generates responses with the current model (self-play) and trains the next model against "
            "them, with the current model as the reference."
        )
    return "\n".join(lines)


def _usage_section(model_ref: str) -> str:
    return f"""\
## How to use

```python
from transformers import pipeline

generator = pipeline("text-generation", model="{model_ref}")
messages = [{{"role": "user", "content": "What is self-play fine-tuning?"}}]
print(generator(messages, max_new_tokens=128, return_full_text=False)[0]["generated_text"])
```

or, to get the model and tokenizer themselves:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{model_ref}")
tokenizer = AutoTokenizer.from_pretrained("{model_ref}")
```"""


def _hyperparameter_section(
    method: str, iteration: int, num_iterations: int, hyperparameters: Mapping[str, Any]
) -> str:
    rows = [("method", method), ("iteration", iteration), ("num_iterations", num_iterations)]
    shown = {key for key, _ in rows}
    rows += [(str(key), value) for key, value in hyperparameters.items() if key not in shown]
    table = "\n".join(f"| {_cell(key)} | {_cell(_format_value(value))} |" for key, value in rows)
    return f"## Training hyperparameters\n\n| Hyperparameter | Value |\n|---|---|\n{table}"


def _eval_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["## Evaluation results", "", "| Task | Metric | Value | Stderr | Few-shot |", "|---|---|---|---|---|"]
    for row in rows:
        stderr = "" if row.get("stderr") is None else _format_value(row["stderr"])
        shots = "" if row.get("num_fewshot") is None else str(row["num_fewshot"])
        lines.append(
            f"| {_cell(row['task'])} | {_cell(row['metric'])} | {_format_value(row['value'])} | {stderr} | {shots} |"
        )
    return "\n".join(lines)


def _framework_section() -> str:
    lines = []
    for name in _FRAMEWORKS:
        try:
            lines.append(f"- {name}: {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "## Framework versions\n\n" + "\n".join(lines) if lines else ""


def _citation_section(method: str) -> str:
    keys = ["spac"] + ([method] if method != "spac" else []) + ["trl"]
    blocks = "\n\n".join(f"```bibtex\n{_CITATIONS[key]}\n```" for key in keys)
    return f"## Citations\n\n{blocks}"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".en") else text + ".0"  # 1.0 stays "1.0": a float, not a count
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(item) for item in value)
    return str(value)


def _cell(text: Any) -> str:
    # A "|" inside a value would end the Markdown table cell.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _check_eval_row(row: Mapping[str, Any], index: int) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise TypeError(f"eval_results[{index}] must be a dict, got {type(row).__name__}")
    unknown = set(row) - _EVAL_KEYS - set(RESULT_COLUMNS)
    if unknown:
        raise ValueError(f"eval_results[{index}] has unknown keys {sorted(unknown)}; allowed: {sorted(_EVAL_KEYS)}")
    for key in ("task", "metric"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"eval_results[{index}] needs a non-empty string {key!r}: {dict(row)}")
    if not _is_number(row.get("value")):
        raise ValueError(f"eval_results[{index}] needs a finite number 'value', got {row.get('value')!r}: {dict(row)}")
    if row.get("num_fewshot") is not None and not _is_int(row["num_fewshot"]):
        raise ValueError(f"eval_results[{index}]: 'num_fewshot' must be an integer, got {row['num_fewshot']!r}")
    return dict(row)


def _eval_result(row: Mapping[str, Any]) -> EvalResult:
    """One evaluation row as an `EvalResult`, following the Open LLM Leaderboard's `model-index` conventions."""
    task = row["task"]
    shots = row.get("num_fewshot")
    return EvalResult(
        task_type=row.get("task_type", "text-generation"),
        task_name=row.get("task_name"),
        dataset_type=row.get("dataset_type", task),
        dataset_name=row.get("dataset_name", task if shots is None else f"{task} ({shots}-shot)"),
        dataset_config=row.get("dataset_config"),
        dataset_split=row.get("dataset_split"),
        dataset_revision=row.get("dataset_revision"),
        dataset_args={"num_few_shot": int(shots)} if shots is not None else None,
        metric_type=row["metric"],
        metric_value=float(row["value"]),
        metric_name=row.get("metric_name"),
        source_name=row.get("source_name"),
        source_url=row.get("source_url"),
    )


# --------------------------------------------------------------------------------------------------------------------
# Pushing
# --------------------------------------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """Raise a `ValueError` naming the problem if `repo_id` cannot be a Hub repo id; return it unchanged otherwise.

    `"name"` (the token's user becomes the namespace) and `"namespace/name"` are accepted.
    """
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"repo_id must be a non-empty string like 'username/model-name', got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"Invalid repo_id {repo_id!r}: expected 'name' or 'namespace/name'. {err}") from err
    return repo_id


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit; return the commit URL.

    `revision` names a branch, created from `main` if it does not exist (one branch per iterate is a way to keep them
    in one repo). The arguments are checked before any network call.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot push {folder}: not a directory")
    check_repo_id(repo_id)
    if repo_type not in constants.REPO_TYPES:
        raise ValueError(f"repo_type must be one of {constants.REPO_TYPES}, got {repo_type!r}")
    if constants.is_offline_mode():
        raise OfflineModeIsEnabled(
            f"Cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set. The folder is already in the Hub layout; "
            f"push it later with `hf upload {repo_id} {folder}"
            + (f" --repo-type {repo_type}" if repo_type != "model" else "")
            + "`."
        )
    api = HfApi(token=token)
    # The Hub fills in the namespace when `repo_id` has none: upload to the id it answers with.
    repo_id = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id
    if revision is not None and revision != constants.DEFAULT_REVISION:
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} with spac-hf",
    )
    return commit.commit_url


# --------------------------------------------------------------------------------------------------------------------
# Results datasets
# --------------------------------------------------------------------------------------------------------------------

# Column -> dtype in the dataset card. Every row is written with every column (None where unknown) so the JSONL has
# one schema, and the card declares the types so an all-null column still loads with its real type.
RESULT_COLUMNS = {
    "model": "string",
    "base_model": "string",
    "method": "string",
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
                    "model": model,
                    "base_model": base_model,
                    "method": method,
                    "iteration": iteration,
                    "task": task,
                    "metric": name if filter_name in ("", "none") else f"{name},{filter_name}",
                    "value": value,
                    "stderr": stderr if _is_number(stderr) else None,
                    "num_fewshot": shots.get(task),
                }
            )
    return validate_results_rows(rows)


def validate_results_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check results rows and return them with every column, in `RESULT_COLUMNS` order.

    Errors name the row (its index and content): missing or unknown keys, a non-numeric `value`, a non-integer
    `iteration`/`num_fewshot`, or two rows for the same (model, task, metric, num_fewshot).
    """
    checked, seen = [], {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"Result row {index} must be a dict, got {type(row).__name__}: {row!r}")
        missing = [key for key in _REQUIRED_COLUMNS if row.get(key) is None]
        if missing:
            raise ValueError(f"Result row {index} is missing {missing}: {dict(row)}")
        unknown = sorted(set(row) - set(RESULT_COLUMNS))
        if unknown:
            raise ValueError(
                f"Result row {index} has unknown keys {unknown} (columns: {list(RESULT_COLUMNS)}): {dict(row)}"
            )
        for key in ("model", "task", "metric", "method", "base_model"):
            if row.get(key) is not None and (not isinstance(row[key], str) or not row[key]):
                raise ValueError(f"Result row {index}: {key!r} must be a non-empty string, got {row[key]!r}")
        for key in ("value", "stderr"):
            if row.get(key) is not None and not _is_number(row[key]):
                raise ValueError(f"Result row {index}: {key!r} must be a finite number, got {row[key]!r}: {dict(row)}")
        for key in ("iteration", "num_fewshot"):
            if row.get(key) is not None and not _is_int(row[key]):
                raise ValueError(f"Result row {index}: {key!r} must be an integer, got {row[key]!r}: {dict(row)}")
        if row.get("method") is not None:
            _check_method(row["method"])
        key = (row["model"], row["task"], row["metric"], row.get("num_fewshot"))
        if key in seen:
            raise ValueError(
                f"Result rows {seen[key]} and {index} are both for (model, task, metric, num_fewshot)={key}"
            )
        seen[key] = index
        checked.append({column: _column_value(row.get(column), dtype) for column, dtype in RESULT_COLUMNS.items()})
    return checked


def build_results_dataset_card(
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
    merge: bool = False,
) -> Path:
    """Write a results dataset in the Hub layout (`data/results.jsonl` + `README.md`) to `local_dir`; return it.

    With `merge=True`, rows already in `local_dir` are kept unless a new row has the same (model, task, metric,
    num_fewshot), which replaces them: benchmark runs of one model at a time can then accumulate into one dataset.
    """
    local_dir = Path(local_dir)
    rows = validate_results_rows(rows)
    if merge and (local_dir / _RESULTS_FILE).exists():
        new_keys = {_row_key(row) for row in rows}
        lines = (local_dir / _RESULTS_FILE).read_text(encoding="utf-8").splitlines()
        old = [json.loads(line) for line in lines if line.strip()]
        rows = validate_results_rows([row for row in old if _row_key(row) not in new_keys] + rows)
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(local_dir / _RESULTS_FILE, data)
    card = build_results_dataset_card(rows, dataset_name=dataset_name, description=description, repo_id=repo_id)
    atomic_write_text(local_dir / "README.md", str(card))
    return local_dir


def push_results_dataset(
    rows: Iterable[Mapping[str, Any]],
    repo_id: str,
    *,
    local_dir: str | os.PathLike,
    dataset_name: str | None = None,
    description: str = "Evaluation results of SPAC, SPIN and DPO models trained with spac-hf.",
    merge: bool = False,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Save the results dataset to `local_dir` (see [`save_results_dataset`]), then push it as a dataset repo.

    The rows and `repo_id` are checked before anything is written or sent. Returns the commit URL.
    """
    check_repo_id(repo_id)
    rows = validate_results_rows(rows)
    save_results_dataset(
        rows,
        local_dir,
        dataset_name=dataset_name or repo_id.split("/")[-1],
        description=description,
        repo_id=repo_id,
        merge=merge,
    )
    return push_folder(
        local_dir,
        repo_id,
        repo_type="dataset",
        private=private,
        token=token,
        commit_message=commit_message or "Upload evaluation results with spac-hf",
    )


def _results_table(rows: list[Mapping[str, Any]]) -> str:
    """Models as rows, "task (metric)" as columns: the summary a reader of the card wants first."""
    if not rows:
        return "No results yet."
    columns = list(dict.fromkeys(f"{row['task']} ({row['metric']})" for row in rows))
    models = list(dict.fromkeys(row["model"] for row in rows))
    cells = {(row["model"], f"{row['task']} ({row['metric']})"): _format_value(row["value"]) for row in rows}
    lines = ["| Model | " + " | ".join(_cell(c) for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model in models:
        lines.append(f"| {_cell(model)} | " + " | ".join(cells.get((model, c), "") for c in columns) + " |")
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


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
