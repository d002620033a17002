"""Model cards: one for every saved iterate, with the Hub metadata and the method's tags, paper and BibTeX."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..methods import Method, get_method
from ..tasks.metrics import metric_fields
from ..utils import atomic_write_text, recorded_path
from ._values import cell, check_method, check_row, format_value, is_int
from .card_content import local_card_metadata, samples_section, trained_for_sentence, usage_section
from .results import RESULT_COLUMNS


# `load_dataset("json", data_files=...)` and friends: loaders for local files, not data sets on the Hub.
_PACKAGED_LOADERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "sql", "xml", "webdataset", "generator"}

_FRAMEWORKS = ("spac-hf", "trl", "transformers", "torch", "datasets", "huggingface_hub")

# Keys an evaluation row may carry for `model-index`, besides the results-dataset columns (so the rows of one model
# from `results_dataset_rows` can be passed to `build_model_card` as they are).
_MODEL_INDEX_KEYS = {
    "task_type", "task_name", "dataset_name", "dataset_type", "dataset_config", "dataset_split", "dataset_revision",
    "metric_name", "source_name", "source_url",
}  # fmt: skip
_EVAL_KEYS = _MODEL_INDEX_KEYS | set(RESULT_COLUMNS)


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
    extra_tags: list[str] | None = None,
    chat: bool = True,
    samples: list[Mapping[str, Any]] | None = None,
) -> ModelCard:
    """Build the model card of one saved iterate.

    Args:
        model_name: Display name, also the `model-index` name (e.g. `"zephyr-7b-spac-iter2"`).
        base_model: The model the run started from (pi_1, the SFT model): a Hub repo id or a local path. Only a Hub
            repo id goes into the YAML `base_model` (the Hub rejects anything else); a path is named in the text.
        datasets: Preference data sets used for training; Hub ids go into the YAML, all are named in the text.
        method: a name of `spac_hf.methods.METHODS` (`"spac"`, `"spin"`, `"dpo"`, `"iterative_dpo"`): its tags, its
            paper and its BibTeX come from there.
        iteration: Number of completed iterations t (1..T; 0 is the starting model). The model is pi_{t+1}.
        num_iterations: T.
        hyperparameters: Shown as a table, in the given order (beta, lambda, data response, learning rate, ...).
        eval_results: Rows like `{"task": "arc_challenge", "metric": "acc_norm", "value": 0.61, "num_fewshot": 25,
            "dataset_name": "AI2 Reasoning Challenge (25-Shot)", "dataset_type": "ai2_arc"}`; optional keys are
            `stderr`, `task_type` (default `"text-generation"`), `task_name`, `dataset_config`, `dataset_split`,
            `dataset_revision`, `metric_name`, `source_name`, `source_url`. Rows of the results dataset work as is.
            Given, they become the card's `model-index` and an evaluation table; absent, neither appears.
        repo_id: Where the model is: its Hub repo id when pushed, else its local folder; used in the loading snippet.
        license: A Hub license id (e.g. `"apache-2.0"`); default: the base model's, when its local card names one.
        extra_tags: Tags added after the method's own (TRL's trainers add `unsloth`, `hf_jobs`, ... this way).
        chat: Whether the model's tokenizer has a chat template: the usage snippet sends messages only then, and
            plain text otherwise, so that it runs as written.
        samples: A few answers of this model beside the starting model's on the same prompts (`card_content.
            paired_samples`); the first prompt is also the usage snippet's.
    """
    record = get_method(check_method(method))
    _check_iterations(iteration, num_iterations)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    rows = [
        check_row(row, f"eval_results[{index}]", ("task", "metric", "value"), _EVAL_KEYS)
        for index, row in enumerate(eval_results or [])
    ]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[name for name in datasets if _is_hub_id(name)] or None,
        library_name="transformers",
        license=license or local_card_metadata(base_model).get("license"),
        tags=list(dict.fromkeys([*record.tags, *(extra_tags or [])])),
        pipeline_tag="text-generation",
        eval_results=[_eval_result(row) for row in rows] or None,
    )
    sections = [
        f"# {model_name}",
        _intro_section(base_model, datasets, record, iteration, num_iterations),
        trained_for_sentence(record.card_label(num_iterations), datasets, base_model) if iteration else "",
        usage_section(repo_id or model_name, chat, samples[0]["prompt"] if samples else None),
        samples_section(samples),
        _hyperparameter_section(method, iteration, num_iterations, hyperparameters),
        _eval_section(rows),
        _framework_section(),
        "## Citations\n\n" + "\n\n".join(f"```bibtex\n{entry}\n```" for entry in record.citations()),
    ]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")


def save_model_card(folder: str | os.PathLike, **kwargs: Any) -> Path:
    """Write the card from [`build_model_card`]`(**kwargs)` to `folder/README.md`, atomically; return its path."""
    card = build_model_card(**kwargs)
    return atomic_write_text(Path(folder) / "README.md", str(card))


def _check_iterations(iteration: int, num_iterations: int) -> None:
    if not is_int(num_iterations) or num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1, got {num_iterations!r}")
    if not is_int(iteration) or not 0 <= iteration <= num_iterations:
        raise ValueError(f"iteration must be an integer in [0, num_iterations={num_iterations}], got {iteration!r}")


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
        return f"`{recorded_path(name)}`"  # a local folder: named, never by the machine's path
    prefix = "datasets/" if kind == "dataset" else ""
    return f"[{name}](https://huggingface.co/{prefix}{name})"


def _intro_section(base_model: str, datasets: list[str], method: Method, iteration: int, num_iterations: int) -> str:
    label = method.card_label(num_iterations)
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
    if method.generates:
        lines.append(
            "Each iteration generates responses with the current model (self-play) and trains the next model against "
            "them, with the current model as the reference."
        )
    return "\n".join(lines)


def _hyperparameter_section(
    method: str, iteration: int, num_iterations: int, hyperparameters: Mapping[str, Any]
) -> str:
    rows = [("method", method), ("iteration", iteration), ("num_iterations", num_iterations)]
    shown = {key for key, _ in rows}
    rows += [(str(key), value) for key, value in hyperparameters.items() if key not in shown]
    table = "\n".join(f"| {cell(key)} | {cell(format_value(value))} |" for key, value in rows)
    return f"## Training hyperparameters\n\n| Hyperparameter | Value |\n|---|---|\n{table}"


def _eval_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["## Evaluation results", "", "| Task | Metric | Value | Stderr | Few-shot |", "|---|---|---|---|---|"]
    for row in rows:
        stderr = "" if row.get("stderr") is None else format_value(row["stderr"])
        shots = "" if row.get("num_fewshot") is None else str(row["num_fewshot"])
        lines.append(
            f"| {cell(row['task'])} | {cell(row['metric'])} | {format_value(row['value'])} | {stderr} | {shots} |"
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


def _eval_result(row: Mapping[str, Any]) -> EvalResult:
    """One evaluation row as an `EvalResult`, following the Open LLM Leaderboard's `model-index` conventions."""
    task = row["task"]
    shots = row.get("num_fewshot")
    # A true-reward evaluation names the `evaluate` metric that computed it (spac_hf.tasks.metrics).
    metric = metric_fields(task, row["metric"])
    return EvalResult(
        task_type=row.get("task_type", "text-generation"),
        task_name=row.get("task_name"),
        dataset_type=row.get("dataset_type", task),
        dataset_name=row.get("dataset_name", task if shots is None else f"{task} ({shots}-shot)"),
        dataset_config=row.get("dataset_config"),
        dataset_split=row.get("dataset_split"),
        dataset_revision=row.get("dataset_revision"),
        dataset_args={"num_few_shot": int(shots)} if shots is not None else None,
        metric_type=metric.get("metric_type", row["metric"]),
        metric_value=float(row["value"]),
        metric_name=row.get("metric_name", metric.get("metric_name")),
        source_name=row.get("source_name"),
        source_url=row.get("source_url"),
    )


def save_trainer_card(args: Any, base_model: str, model_name=None, dataset_name=None, repo_id=None, tags=None) -> Path:
    """`SPACTrainer.create_model_card`: the card the loop's iterates get (method tags, paper, BibTeX, hyperparameters)
    for one trainer, which is one iteration; TRL's extra `tags` are kept."""
    from ..methods import METHODS

    spac = METHODS["spac"]
    loop_only = ("num_iterations", "iteration_data", "history_iterations")
    return save_model_card(
        args.output_dir,
        model_name=model_name or os.path.basename(os.path.normpath(args.output_dir)),
        base_model=base_model,
        datasets=[dataset_name] if dataset_name else [],
        method=spac.name,
        iteration=1,
        num_iterations=1,
        hyperparameters={k: getattr(args, k) for k in spac.card_hyperparameters if k not in loop_only},
        repo_id=repo_id,
        extra_tags=[tags] if isinstance(tags, str) else tags,
    )
