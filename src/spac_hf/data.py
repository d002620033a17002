"""Preference data: validation, prompt handling, tokenization and splitting into per-iteration parts.

Formats are TRL's: *standard* rows hold strings (`prompt`, `chosen`, `rejected`), *conversational* rows hold lists of
`{"role", "content"}` messages; the prompt may be implicit (the common start of `chosen` and `rejected`). A
`generated` column, when present, holds the self-play response y ~ pi_t in the same format as `chosen`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from datasets import Dataset, IterableDataset
from transformers import PreTrainedTokenizerBase
from trl.data_utils import _tokenize, common_prefix_length, extract_prompt, is_conversational


RESPONSES = ("chosen", "rejected", "generated")
_MAX_REPORTED_ROWS = 5


class DatasetValidationError(ValueError):
    """A preference data set is malformed. The message names the data set, the column and the rows."""


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def _message_problem(messages: list) -> str | None:
    """What is wrong with the turns of one conversation, naming the turn (0-based, as the list index), or None."""
    for turn, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return f"turn {turn}: expected a {{'role', 'content'}} message, got {str(message)[:60]!r}"
        if not isinstance(message["role"], str) or not message["role"].strip():
            return f"turn {turn}: `role` must be a non-empty string, got {message['role']!r}"
        content = message["content"]
        if not isinstance(content, str):
            # `None` would reach the chat template as the text "None" (or an empty turn): never what was meant.
            return f"turn {turn} ({message['role']}): `content` must be a string, got {type(content).__name__}"
    return None


def _problem(value: Any, conversational: bool, allow_empty: bool) -> str | None:
    """What is wrong with one cell, or None."""
    if conversational:
        if not isinstance(value, list):
            return f"expected a list of {{'role', 'content'}} messages, got {type(value).__name__}"
        if not value:
            return "is an empty list of messages"
        problem = _message_problem(value)
        if problem:
            return problem
        if not allow_empty and not value[-1]["content"].strip():
            return f"turn {len(value) - 1} ({value[-1]['role']}): the last message is empty"
        return None
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not allow_empty and not value.strip():
        return "is empty"
    return None


def validate_preference_dataset(dataset: Dataset | IterableDataset, name: str = "train_dataset") -> str:
    """Check a preference data set before any compute is spent; return `"standard"` or `"conversational"`.

    Raises `DatasetValidationError` naming the data set, the column and up to five rows for: a missing column, a cell
    of the wrong type (including a `generated` column whose type differs from `chosen`'s), a message whose `role` or
    `content` is not text (named by its turn), an empty prompt or response. An empty `generated` response is
    allowed: pi_t may legitimately stop at once. An `IterableDataset` is checked on its first 100 rows.
    """
    if not isinstance(dataset, (Dataset, IterableDataset)):
        raise DatasetValidationError(f"{name}: expected a `datasets.Dataset`, got {type(dataset).__name__}.")
    columns = dataset.column_names or list(next(iter(dataset)).keys())
    missing = [c for c in ("chosen", "rejected") if c not in columns]
    if missing:
        raise DatasetValidationError(
            f"{name}: missing column(s) {missing}; a preference data set needs `chosen` and `rejected` (and "
            f"`prompt` unless it is implicit in them). Columns found: {columns}."
        )
    if isinstance(dataset, Dataset):
        if len(dataset) == 0:
            raise DatasetValidationError(f"{name}: the data set is empty.")
        rows = dataset
    else:
        rows = list(dataset.take(100))
    first = rows[0]
    conversational = _is_messages(first["chosen"])
    checked = [c for c in ("prompt", *RESPONSES) if c in columns]
    for column in checked:
        values = rows[column] if isinstance(rows, Dataset) else [row[column] for row in rows]
        bad = []
        for i, value in enumerate(values):
            problem = _problem(value, conversational, allow_empty=column == "generated")
            if problem:
                bad.append((i, problem))
                if len(bad) == _MAX_REPORTED_ROWS:
                    break
        if bad:
            fmt = "conversational" if conversational else "standard"
            details = "; ".join(f"row {i}: {p}" for i, p in bad)
            raise DatasetValidationError(
                f"{name}: column `{column}` is invalid for a {fmt} data set (format taken from row 0 of `chosen`): "
                f"{details}."
            )
    if "prompt" not in columns:
        # Implicit prompt: it is the common start of chosen and rejected, which must not be empty.
        chosen = rows["chosen"] if isinstance(rows, Dataset) else [row["chosen"] for row in rows]
        rejected = rows["rejected"] if isinstance(rows, Dataset) else [row["rejected"] for row in rows]
        for i, pair in enumerate(zip(chosen, rejected)):
            prompt = extract_prompt({"chosen": pair[0], "rejected": pair[1]})["prompt"]
            if not prompt or (isinstance(prompt, str) and not prompt.strip()):
                raise DatasetValidationError(
                    f"{name}: row {i}: no `prompt` column and `chosen`/`rejected` share no prompt to extract."
                )
    return "conversational" if conversational else "standard"


def named_datasets(eval_dataset: Any, name: str) -> list[tuple[str, Any]]:
    """(name as the user passed it, data set) for `eval_dataset`: none, one, or a dict of them."""
    if eval_dataset is None:
        return []
    if isinstance(eval_dataset, dict):
        return [(f"{name}[{key!r}]", value) for key, value in eval_dataset.items()]
    return [(name, eval_dataset)]


def validate_trainer_datasets(train_dataset: Any, eval_dataset: Any, *, generates: bool) -> str:
    """Check `SPACTrainer`'s data sets (every row; text only; map-style where pi_t must generate their `generated`
    column) and return the training set's format, "standard" or "conversational"."""
    formats = {}
    for name, dataset in [("train_dataset", train_dataset), *named_datasets(eval_dataset, "eval_dataset")]:
        formats[name] = validate_preference_dataset(dataset, name)
        columns = dataset.column_names or []
        if "image" in columns or "images" in columns:
            raise ValueError(f"{name}: SPACTrainer supports text-only data; found an image column.")
        if generates and "generated" not in columns:
            require_map_style(dataset, name, "self-play generation (or a `generated` column)")
    return formats["train_dataset"]


def normalize_prompt_column(dataset: Dataset) -> Dataset:
    """Make a text `prompt` column agree with conversational responses (as in HuggingFaceH4/ultrafeedback_binarized).

    If `chosen` is a conversation that starts with the user's turn, the text prompt is redundant and is dropped (the
    prompt is then the conversations' shared start). If `chosen` holds only the assistant's answer, the text prompt
    becomes a user message.
    """
    if "prompt" not in dataset.column_names or len(dataset) == 0:
        return dataset
    first = dataset[0]
    if not isinstance(first["prompt"], str) or not _is_messages(first["chosen"]) or not first["chosen"]:
        return dataset
    if first["chosen"][0]["role"] == "assistant":
        return dataset.map(
            lambda row: {"prompt": [{"role": "user", "content": row["prompt"]}]}, desc="Prompts as messages"
        )
    return dataset.remove_columns("prompt")


def with_explicit_prompt(dataset: Dataset) -> Dataset:
    """Move an implicit prompt (the shared start of chosen and rejected) into its own `prompt` column."""
    if "prompt" in dataset.column_names:
        return dataset
    return dataset.map(extract_prompt, desc="Extracting prompts")


def _chat_kwargs(example: dict) -> dict:
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {"tools": tools, **(example.get("chat_template_kwargs") or {})}


def tokenize_prompt(tokenizer: PreTrainedTokenizerBase, example: dict) -> list[int]:
    """The prompt's token ids, as the model sees them before it answers (chat template with generation prompt)."""
    if is_conversational(example):
        return _tokenize(tokenizer, example["prompt"], add_generation_prompt=True, **_chat_kwargs(example))[
            "input_ids"
        ]
    return _tokenize(tokenizer, example["prompt"])["input_ids"]


def tokenize_preference_example(
    example: dict, tokenizer: PreTrainedTokenizerBase, responses: tuple[str, ...] = RESPONSES
) -> dict[str, list[int]]:
    """Tokenize `prompt` and each present response into `prompt_ids` and `<response>_ids`.

    Each response is tokenized together with its prompt (so merges across the boundary come out as at inference),
    and the completion starts where all of them diverge from the prompt alone, as in TRL's DPOTrainer. In standard
    format the EOS token is appended to responses that lack it, as DPOTrainer does for chosen and rejected.
    """
    conversational = is_conversational(example)
    prompt_ids = tokenize_prompt(tokenizer, example)
    full_ids = {}
    for response in responses:
        if response not in example or example[response] is None:
            continue
        if conversational:
            full_ids[response] = _tokenize(tokenizer, example["prompt"] + example[response], **_chat_kwargs(example))[
                "input_ids"
            ]
        else:
            text = example[response]
            if not text.endswith(tokenizer.eos_token):
                text += tokenizer.eos_token
            full_ids[response] = _tokenize(tokenizer, example["prompt"] + text)["input_ids"]
    prompt_len = min(common_prefix_length(prompt_ids, ids) for ids in full_ids.values())
    output = {"prompt_ids": prompt_ids[:prompt_len]}
    for response, ids in full_ids.items():
        output[f"{response}_ids"] = ids[prompt_len:]
    return output


def tokenize_preference_dataset(
    dataset: Dataset | IterableDataset, tokenizer: PreTrainedTokenizerBase, responses: tuple[str, ...], args, name: str
) -> Dataset | IterableDataset:
    """`dataset` tokenized for `SPACTrainer` (explicit prompt, `prompt_ids` and `<response>_ids`); a prompt too long
    for `args.max_length` with `keep_start` is an error naming the row. Already tokenized data is returned as is."""
    columns = dataset.column_names or list(next(iter(dataset)).keys())
    if "prompt_ids" in columns:  # already tokenized: `evaluate` prepares prepared data again
        return dataset
    map_kwargs = {"num_proc": args.dataset_num_proc} if isinstance(dataset, Dataset) else {}
    dataset = with_explicit_prompt(dataset)
    if isinstance(dataset, Dataset):
        map_kwargs["desc"] = f"Tokenizing {name} dataset"
    fn_kwargs = {"tokenizer": tokenizer, "responses": responses}
    dataset = dataset.map(tokenize_preference_example, fn_kwargs=fn_kwargs, **map_kwargs)
    if isinstance(dataset, Dataset) and args.truncation_mode == "keep_start":
        # TRL calls the data sets "train" and "eval"; the error names the argument the user passed.
        names = {"train": "train_dataset", "eval": "eval_dataset"}
        check_prompt_lengths(dataset, args.max_length, names.get(name, f"eval_dataset[{name!r}]"))
    return dataset


def check_prompt_lengths(
    dataset: Dataset, max_length: int | None, name: str = "train_dataset", lengths: Any = None
) -> None:
    """Fail, naming the rows, if a tokenized prompt leaves no room for a response within `max_length`.

    TRL's DPOTrainer silently drops such rows; here they are an error, because a silently shrinking data set changes
    the per-iteration parts. Use `drop_long_prompts` to remove them explicitly. `lengths` (one per row) spares the
    `prompt_ids` column when the prompts were measured already.
    """
    if max_length is None:
        return
    if lengths is None:
        lengths = (len(ids) for ids in dataset["prompt_ids"])
    lengths = np.fromiter(lengths, dtype=np.int64, count=len(dataset))
    too_long = np.flatnonzero(lengths >= max_length)
    if too_long.size:
        shown = ", ".join(f"row {i} ({lengths[i]} tokens)" for i in too_long[:_MAX_REPORTED_ROWS])
        raise DatasetValidationError(
            f"{name}: {too_long.size} prompt(s) are at least `max_length`={max_length} tokens long, leaving no room "
            f"for a response: {shown}. Raise `max_length`, or drop them with `spac_hf.data.drop_long_prompts`."
        )


def prompt_lengths(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, name: str = "train_dataset") -> np.ndarray:
    """The token length of every row's prompt as the model will read it (chat template with the generation prompt).

    A conversational data set needs a chat template: without one the error names `processing_class` before any row
    is tokenized, instead of surfacing from inside transformers.
    """
    dataset = with_explicit_prompt(dataset)
    if len(dataset) and is_conversational(dataset[0]) and getattr(tokenizer, "chat_template", None) is None:
        raise DatasetValidationError(
            f"{name} is conversational, but the tokenizer (`processing_class`) has no chat template: set "
            "`tokenizer.chat_template`, or pass the data as text (standard format)."
        )
    lengths = np.empty(len(dataset), dtype=np.int64)
    for i, example in enumerate(dataset):
        try:
            lengths[i] = len(tokenize_prompt(tokenizer, example))
        except Exception as err:  # noqa: BLE001 (a template rejecting this row's roles, bad tool schema, ...)
            raise DatasetValidationError(
                f"{name}: row {i}: the prompt cannot be tokenized with the run's tokenizer and chat template: "
                f"{type(err).__name__}: {err}"
            ) from None
    return lengths


def drop_long_prompts(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Remove the rows whose prompt alone is at least `max_length` tokens long."""
    dataset = with_explicit_prompt(dataset)
    return dataset.filter(
        lambda example: len(tokenize_prompt(tokenizer, example)) < max_length, desc="Dropping over-long prompts"
    )


def split_into_parts(dataset: Dataset, num_parts: int, seed: int = 0, name: str = "train_dataset") -> list[Dataset]:
    """Shuffle with `seed` and cut into `num_parts` disjoint parts of (nearly) equal size, one per iteration."""
    if num_parts < 1:
        raise ValueError(f"`num_parts` must be >= 1, got {num_parts}.")
    if len(dataset) < num_parts:
        raise DatasetValidationError(
            f"Cannot split the {len(dataset)} rows of `{name}` into `num_iterations`={num_parts} non-empty parts "
            "(one per iteration): lower `num_iterations`, add rows, or set `iteration_data='full'`."
        )
    order = np.random.default_rng(seed).permutation(len(dataset))
    return [dataset.select(np.sort(part)) for part in np.array_split(order, num_parts)]


def require_map_style(dataset: Any, name: str, needed_for: str) -> None:
    """Fail, naming the data set, unless it is a map-style `Dataset`: splitting, saving to disk, generating into a new
    column and precomputing log-probs all need random access to its rows."""
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"{name}: {needed_for} needs a map-style `datasets.Dataset`, got `{type(dataset).__name__}`; load it "
            "without streaming."
        )
