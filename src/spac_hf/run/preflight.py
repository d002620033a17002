"""Everything `run_self_play` needs, checked before the first generation, training step or file write.

`validate_run` reads the arguments, the data sets (every row), the tokenizer and chat template the run will use
(every prompt is tokenized and measured against `max_length`), the split into per-iteration parts, the Hub ids, the
record of an earlier run in `output_dir` and that run's published iterates. It writes nothing: the loop writes the
run record only once this has passed, so a rejected run leaves `output_dir` as it was and the corrected rerun starts
cleanly. Errors name what the user wrote: the argument (`train_dataset`, `eval_dataset`), the row of that data set
(0-based, as `dataset[i]`), the column and the option.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..config import SelfPlayConfig
from ..data import (
    check_prompt_lengths,
    prompt_lengths,
    require_map_style,
    split_into_parts,
    validate_preference_dataset,
    with_explicit_prompt,
)
from ..hub import check_repo_id
from ..methods import Method, get_method, method_of_run
from .folder import RunFolder
from .identity import check_run_record, run_identity
from .integrity import check_saved_model


EvaluateFn = Callable[[str, int], dict]
"""`evaluate(model_path, iteration) -> {"results": {task: {metric: value, "<metric>_stderr": value}}, ...}`.

Iteration 0 is the starting model. Runs on the main process. The `results` part (lm-eval's layout, so lm-eval output
works as is) goes into the iterate's model card and the run's results dataset; other keys (examples, ...) are kept in
the iterate's `eval.json`.
"""


@dataclass(frozen=True)
class ValidatedRun:
    """The state of one run, built once by `validate_run` and shared by reference by the loop (`loop.py`) and what it
    publishes (`outputs.py`): nothing in it needs checking again, and nothing replaces it during the run."""

    method: Method  # the record of the method this run is (`"dpo"` with T > 1 is iterative DPO)
    args: SelfPlayConfig
    folder: RunFolder  # every path: the run folder's files, pi_t, the Hub repos
    eval_dataset: Dataset | None  # prompts explicit
    tokenizer: PreTrainedTokenizerBase
    conversational: bool
    parts: tuple[Dataset, ...]  # one per iteration, prompts explicit, rows in the user's order
    identity: dict[str, Any]
    resuming: bool  # `output_dir` already holds this run
    peft_config: Any = None
    callbacks: tuple = ()
    dataset_names: tuple[str, ...] = ()  # for the model cards
    evaluate: EvaluateFn | None = None

    @property
    def base_model(self) -> str:
        return self.folder.base_model

    @property
    def generates(self) -> bool:
        return self.method.needs_generation(self.args)


def _check_arguments(model: Any, args: Any, method: str) -> Method:
    record = get_method(method)  # an unknown name: a ValueError listing the methods
    if not isinstance(args, SelfPlayConfig):
        raise TypeError(f"`args` must be a `SelfPlayConfig` (or `SPACConfig`), got `{type(args).__name__}`.")
    record = method_of_run(method, args.num_iterations)
    if not isinstance(args, record.config_class):
        raise TypeError(f"method={method!r} needs a `{record.config_class.__name__}`, got `{type(args).__name__}`.")
    if not isinstance(model, str):
        raise TypeError(
            "`model` must be a path or Hub id: every iteration reloads its starting point from disk. Save an "
            "in-memory model with `save_pretrained` first."
        )
    return record


def _check_datasets(method: Method, datasets: dict[str, Dataset | None]) -> dict[str, str]:
    formats = {}
    for name, dataset in datasets.items():
        if dataset is None:
            continue
        require_map_style(dataset, name, "the self-play loop")
        formats[name] = validate_preference_dataset(dataset, name)
        if "generated" in dataset.column_names and method.generates:
            raise ValueError(
                f"{name}: the loop generates the `generated` responses itself (y ~ pi_t); drop that column."
            )
    if len(set(formats.values())) > 1:
        raise ValueError(
            f"`train_dataset` is {formats['train_dataset']} but `eval_dataset` is {formats['eval_dataset']}: the run "
            "formats both with the same template, so both must be conversational or both standard."
        )
    return formats


def _check_hub_ids(args: SelfPlayConfig, folder: RunFolder) -> None:
    option = "hub_model_id" if args.hub_model_id else "output_dir (its last part names the repos)"
    value = args.hub_model_id or args.output_dir
    for suffix in [f"iter{t}" for t in range(1, args.num_iterations + 1)] + ["results"]:
        try:
            check_repo_id(folder.repo_id(suffix))
        except ValueError as err:
            raise ValueError(f"`push_to_hub=True` with `{option}`={value!r}: {err}") from None


def _tokenizer(model: str, processing_class: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
    if processing_class is None:
        try:
            processing_class = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as err:  # no such model, or a folder without tokenizer files
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"`model`={model!r}: cannot load its tokenizer ({first_line}). Pass `processing_class`."
            ) from None
    if processing_class.pad_token is None:
        processing_class.pad_token = processing_class.eos_token
    return processing_class


def _check_prompts(args: SelfPlayConfig, tokenizer, datasets: dict[str, Dataset]) -> None:
    """Every prompt, tokenized as the trainer will, must leave room for a response within `max_length`.

    With `truncation_mode="keep_end"` the trainer keeps the end of a long sequence, so long prompts are allowed.
    """
    for name, dataset in datasets.items():
        lengths = prompt_lengths(dataset, tokenizer, name)
        if args.truncation_mode == "keep_start":
            check_prompt_lengths(dataset, args.max_length, name, lengths=lengths)


def _check_finished_iterates(folder: RunFolder, num_iterations: int) -> None:
    for t in range(1, num_iterations + 1):
        if not folder.iterate_record(t).exists():
            continue
        hint = (
            f"Iterate {t} cannot be recomputed from a damaged copy: delete the folder {str(folder.iterate(t))!r} and "
            f"rerun with the same settings; iteration {t} is then trained again from {folder.policy(t)!r} on its "
            "saved data."
        )
        check_saved_model(folder.iterate(t), hint)  # the weights, the configs and the iterate's record


def validate_run(
    model: str,
    args: SelfPlayConfig,
    train_dataset: Dataset,
    *,
    method: str = "spac",
    eval_dataset: Dataset | None = None,
    processing_class: PreTrainedTokenizerBase | None = None,
    peft_config=None,
    world_size: int = 1,
    callbacks=None,
    dataset_names: list[str] | None = None,
    evaluate: EvaluateFn | None = None,
) -> ValidatedRun:
    """Check everything a run needs, cheapest first; raise naming the user's argument, row, column or option.

    Writes nothing. Returns the run's state: the prepared data (explicit prompts, the per-iteration parts), the run's
    identity and its folder, with what the caller passed for the run (callbacks, data set names, evaluation).
    """
    record = _check_arguments(model, args, method)
    folder = RunFolder(Path(args.output_dir), base_model=model, hub_model_id=args.hub_model_id)
    formats = _check_datasets(record, {"train_dataset": train_dataset, "eval_dataset": eval_dataset})
    if args.push_to_hub:
        _check_hub_ids(args, folder)
    tokenizer = _tokenizer(model, processing_class)
    train = with_explicit_prompt(train_dataset)
    evaluation = with_explicit_prompt(eval_dataset) if eval_dataset is not None else None
    # The split (and so the number of rows against `num_iterations`) is checked before any prompt is tokenized.
    if args.iteration_data == "full":
        parts = [train] * args.num_iterations
    else:
        # `data_seed` (else `seed`) fixes the split; it is part of the run's identity, so a resume cannot re-split.
        parts = split_into_parts(train, args.num_iterations, seed=args.data_seed or args.seed, name="train_dataset")
    measured = {"train_dataset": train} if evaluation is None else {"train_dataset": train, "eval_dataset": evaluation}
    _check_prompts(args, tokenizer, measured)
    identity = run_identity(
        method=record.name, base_model=model, args=args, train_dataset=train, eval_dataset=evaluation,
        tokenizer=tokenizer, peft_config=peft_config, world_size=world_size,
    )  # fmt: skip
    # No record yet (a new folder, or one whose damaged record was deleted as `read_run_record` advises): the loop
    # writes it, and reuses whatever finished iterates the folder holds.
    resuming = check_run_record(folder.run_file, identity)
    _check_finished_iterates(folder, args.num_iterations)
    return ValidatedRun(
        method=record, args=args, folder=folder, eval_dataset=evaluation, tokenizer=tokenizer,
        conversational=formats["train_dataset"] == "conversational", parts=tuple(parts), identity=identity,
        resuming=resuming, peft_config=peft_config, callbacks=tuple(callbacks or ()),
        dataset_names=tuple(dataset_names or ()), evaluate=evaluate,
    )  # fmt: skip
