"""What a self-play run is, so that a resumed run provably continues the same run and never mixes two.

The identity is built the other way round from a list of what matters: *every* field of the run's config counts,
except the short list `IGNORED_FIELDS` of fields known not to change the iterates (logging, reporting, where and how
often things are saved, the Hub, data loader workers, ...). A field added by a new TRL or transformers release
therefore counts until someone decides otherwise; `tests/test_validation.py` fails while a field of `SPACConfig`
is in neither `IGNORED_FIELDS` nor `RESULT_FIELDS`, so the decision cannot be skipped.

Besides the config, the identity holds the method, the starting model, the number of processes, content hashes of
the training and evaluation data and of the chat template, and the PEFT config.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..utils import atomic_write_json


IDENTITY_VERSION = 2

# Fields that do not change the iterates, with the reason. Everything else counts (see the module docstring).
IGNORED_FIELDS: dict[str, str] = {
    **dict.fromkeys(("output_dir", "run_name", "project", "resume_from_checkpoint"), "where and under which name"),
    **dict.fromkeys(
        (
            "logging_strategy", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_level",
            "log_level_replica", "log_on_each_node", "report_to", "disable_tqdm", "skip_memory_metrics",
            "include_num_input_tokens_seen", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id",
        ),
        "logging and reporting",
    ),
    **dict.fromkeys(
        (
            "save_strategy", "save_steps", "save_total_limit", "save_on_each_node", "save_only_model",
            "enable_jit_checkpoint", "average_iterates",
        ),
        "what is saved and how often (checkpoints restore the full training state)",
    ),
    **dict.fromkeys(
        ("push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push",
         "hub_revision"),
        "the Hub (and a token must never be written to disk)",
    ),
    **dict.fromkeys(
        (
            "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
            "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "dataset_num_proc",
            "torch_empty_cache_steps", "ddp_timeout", "local_rank", "trust_remote_code",
        ),
        "workers, memory housekeeping and per-process settings",
    ),
}  # fmt: skip

# Fields known to change the iterates (or, for the evaluation options, what is recorded about them). Only the test
# reads this list: the identity counts every field not ignored, listed here or not.
RESULT_FIELDS = frozenset(
    {
        # The optimisation: optimizer, schedule, batch and its accumulation, precision, seeds
        "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "optim",
        "optim_args", "optim_target_modules", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps",
        "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
        "auto_find_batch_size", "average_tokens_across_devices", "seed", "data_seed", "full_determinism",
        "bf16", "fp16", "tf32", "use_cpu", "torch_compile", "torch_compile_backend", "torch_compile_mode",
        "gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_checkpointing",
        "activation_checkpointing_kwargs", "activation_offloading", "label_smoothing_factor", "neftune_noise_alpha",
        "use_liger_kernel", "liger_kernel_config", "use_cache", "train_sampling_strategy", "dataloader_drop_last",
        "dataloader_in_order", "ignore_data_skip", "remove_unused_columns", "length_column_name", "label_names",
        "restore_callback_states_from_checkpoint", "debug",
        # Distribution: how the batch is split and reduced
        "accelerator_config", "parallelism_config", "deepspeed", "fsdp", "fsdp_config", "ddp_backend",
        "ddp_broadcast_buffers", "ddp_bucket_cap_mb", "ddp_find_unused_parameters", "ddp_static_graph",
        # Evaluation during training: its metrics are part of each iterate's record
        "do_train", "do_eval", "do_predict", "eval_strategy", "eval_steps", "eval_delay", "eval_on_start",
        "per_device_eval_batch_size", "eval_accumulation_steps", "eval_do_concat_batches", "eval_use_gather_object",
        "bf16_full_eval", "fp16_full_eval", "prediction_loss_only", "batch_eval_metrics", "include_for_metrics",
        "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
        # DPO: the loss, the data's tokens and the reference
        "beta", "loss_type", "loss_weights", "label_smoothing", "use_weighting", "ld_alpha", "discopop_tau",
        "f_divergence_type", "f_alpha_divergence_coef", "sync_ref_model", "ref_model_mixup_alpha",
        "ref_model_sync_steps", "precompute_ref_log_probs", "precompute_ref_batch_size", "max_length",
        "truncation_mode", "padding_free", "pad_to_multiple_of", "pad_token", "model_init_kwargs",
        "disable_dropout", "router_aux_loss_coef",
        # Self-play generation and the loop
        "max_new_tokens", "temperature", "top_p", "top_k", "generation_batch_size", "generation_backend",
        "generation_precision",
        "num_iterations", "iteration_data", "history_iterations",
        # SPAC's loss
        "lam", "real_response", "smoothing", "use_pessimism", "lam_scaling", "pessimism_weight",
        # How the trainer batches the three responses (its numerics may differ in the last bits)
        "share_prompt",
    }
)  # fmt: skip

# Keys of the identity that are not config fields; no config field may take one of these names.
RUN_KEYS = (
    "identity_version", "method", "base_model", "world_size", "train_rows", "train_data_hash", "eval_rows",
    "eval_data_hash", "chat_template_hash", "peft_config",
)  # fmt: skip


class RunRecordError(ValueError):
    """`output_dir` holds another run, or its run record cannot be read. The message says what to do."""


def _plain(value: Any) -> Any:
    """A JSON value that reads back equal, whatever the config holds (enums, dataclasses, paths, tuples)."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):  # PEFT configs, transformers configs
        return _plain(value.to_dict())
    text = str(value)  # `torch.bfloat16`, ...
    if " at 0x" in text:  # an object's default repr: its address differs per process, never equal on resume
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
    return text


def data_hash(dataset: Dataset) -> str:
    """Content hash of the preference columns, so a resumed run provably continues on the same data."""
    digest = hashlib.sha256()
    columns = [c for c in ("prompt", "chosen", "rejected") if c in dataset.column_names]
    for batch in dataset.select_columns(columns).iter(batch_size=4096):
        digest.update(json.dumps(batch, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def config_identity(args) -> dict[str, Any]:
    """Every field of `args` except `IGNORED_FIELDS`, as plain JSON values."""
    return {
        f.name: _plain(getattr(args, f.name, None)) for f in dataclasses.fields(args) if f.name not in IGNORED_FIELDS
    }


def run_identity(
    *,
    method: str,
    base_model: str,
    args,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    tokenizer=None,
    peft_config=None,
    world_size: int = 1,
) -> dict[str, Any]:
    """The identity of a run: compared key by key on resume (see `check_run_record`)."""
    template = getattr(tokenizer, "chat_template", None)
    identity = {
        "identity_version": IDENTITY_VERSION,
        "method": method,
        "base_model": base_model,
        "world_size": world_size,
        "train_rows": len(train_dataset),
        "train_data_hash": data_hash(train_dataset),
        "eval_rows": len(eval_dataset) if eval_dataset is not None else None,
        "eval_data_hash": data_hash(eval_dataset) if eval_dataset is not None else None,
        "chat_template_hash": hashlib.sha256(json.dumps(template).encode()).hexdigest()[:16] if template else None,
        "peft_config": _plain(peft_config),
    }
    config = config_identity(args)
    clash = set(config) & set(identity)
    if clash:  # a new TRL field named like one of ours: fail loudly rather than overwrite either
        raise RuntimeError(f"Config fields {sorted(clash)} clash with the run identity's own keys.")
    return json.loads(json.dumps({**identity, **config}))  # exactly as it will read back from the file


def read_run_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The run record at `path`, None if there is none; a damaged one is an error saying what to delete."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise TypeError(f"expected a JSON object, got {type(record).__name__}")
    except (OSError, TypeError, ValueError) as err:
        raise RunRecordError(
            f"The run record {str(path)!r} is damaged ({type(err).__name__}: {err}). If this folder holds the run "
            f"you mean to resume, delete {str(path)!r} and rerun with the same settings: the run continues from its "
            "finished iterates and a new record is written. Otherwise choose a new `output_dir`."
        ) from None
    return record


def changed_fields(recorded: dict[str, Any], identity: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`{key: (recorded, now)}` for every key of `identity` whose value differs from the record's."""
    missing = object()
    changed = {}
    for key, value in identity.items():
        old = recorded.get(key, missing)
        if old is missing or old != value:
            changed[key] = ("(not recorded)" if old is missing else old, value)
    return changed


def check_run_record(path: str | os.PathLike, identity: dict[str, Any]) -> bool:
    """Whether the run record at `path` is this run's (True) or absent (False); raise if it is another run's.

    Reads only: the record is written by `write_run_record` once everything else has been validated.
    """
    recorded = read_run_record(path)
    if recorded is None:
        return False
    changed = changed_fields(recorded, identity)
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise RunRecordError(
            f"`output_dir` {str(Path(path).parent)!r} holds another run ({details}). Resume it with the same "
            "settings or choose a new `output_dir`."
        )
    return True


def write_run_record(path: str | os.PathLike, identity: dict[str, Any]) -> Path:
    """Write the run record (atomically); call it only after every input has been validated."""
    return atomic_write_json(path, {**identity, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
