"""The three training setups compared by the cost benchmark, built on the same weights, batch and lengths.

- `dpo`: TRL's `DPOTrainer`, reference log-probs precomputed (2 sequences per example: chosen, rejected);
- `spac`: `SPACTrainer`, reference log-probs precomputed (3 sequences: chosen, rejected, generated);
- `spac_ref_forward`: `SPACTrainer` with `precompute_ref_log_probs=False`: a no-grad reference forward every step.

`SPACTrainer` processes each prompt once (`share_prompt=True`, its default). The shared-prompt comparison
(`shared_prompt.py`) adds:
- `spac_unshared`: `SPACTrainer(share_prompt=False)`, the padded [3 * batch, length] layout (the prompt three times);
- `spac_padding_free`: `SPACTrainer(share_prompt=True, padding_free=True)`: the batch in one unpadded row.

Every trainer gets its own deep copy of one model, so they start from identical weights, and rows with exactly the
same token counts: `dpo` trains on [2 * batch, P + R], `spac_unshared` on [3 * batch, P + R], `spac` on
[batch, P - 1 + 3 (R + 1)] (fixed lengths; the longest of each batch otherwise).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass


VARIANTS = ("dpo", "spac", "spac_ref_forward")
SHARED_PROMPT_VARIANTS = ("dpo", "spac", "spac_unshared", "spac_padding_free")
LABELS = {
    "dpo": "TRL DPOTrainer (precomputed ref)",
    "spac": "SPACTrainer (precomputed ref)",
    "spac_ref_forward": "SPACTrainer (ref forward each step)",
    "spac_unshared": "SPACTrainer, share_prompt=False",
    "spac_padding_free": "SPACTrainer, padding_free=True",
}
SEQUENCES_PER_EXAMPLE = {"dpo": 2, "spac": 3, "spac_ref_forward": 3, "spac_unshared": 3, "spac_padding_free": 3}
# The trainer options of each SPAC variant (on top of `trainer_args`).
SPAC_OPTIONS = {
    "spac": {},
    "spac_ref_forward": {"precompute_ref_log_probs": False},
    "spac_unshared": {"share_prompt": False},
    "spac_padding_free": {"padding_free": True},
}


@dataclass(frozen=True)
class StepSettings:
    """What a training step is made of; identical for every variant."""

    batch_size: int = 4
    prompt_tokens: int = 64
    response_tokens: int = 64  # EOS included
    rows: int = 8  # examples in each trainer's data set (steps cycle through them)
    learning_rate: float = 1e-6
    device: str = "cpu"
    bf16: bool = False
    gradient_checkpointing: bool = True  # TRL's DPOConfig default (SPACConfig inherits it)
    seed: int = 0
    lengths: str = "fixed"  # "fixed": every prompt `prompt_tokens`, every response `response_tokens`; "ultrafeedback"
    length_scale: float = 1.0  # multiplies the UltraFeedback-like lengths (models.ULTRAFEEDBACK_LIKE)

    @property
    def max_length(self) -> int:
        if self.lengths == "fixed":
            return self.prompt_tokens + self.response_tokens
        from .models import ULTRAFEEDBACK_LIKE  # the clipping bounds: no row is ever truncated

        return int((ULTRAFEEDBACK_LIKE["prompt"]["max"] + ULTRAFEEDBACK_LIKE["response"]["max"]) * self.length_scale)

    def as_dict(self) -> dict:
        return {**asdict(self), "max_length": self.max_length}


def trainer_args(settings: StepSettings, output_dir: str) -> dict:
    """The config keyword arguments every variant shares (valid for `DPOConfig` and `SPACConfig`)."""
    return dict(
        output_dir=output_dir,
        use_cpu=settings.device == "cpu",
        bf16=settings.bf16,
        report_to=[],
        save_strategy="no",
        # The metrics are computed (with their `.item()` calls) on every step whatever this is; it only sets how often
        # the averages are printed, which happens after the timed window.
        logging_steps=10**6,
        per_device_train_batch_size=settings.batch_size,
        max_length=settings.max_length,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",  # the benchmark calls `train()` once per round: no schedule to run out
        disable_tqdm=True,
        seed=settings.seed,
        precompute_ref_log_probs=True,
        gradient_checkpointing=settings.gradient_checkpointing,
    )


def build_trainer(variant: str, model, tokenizer, rows: list[dict], settings: StepSettings, output_dir: str):
    """A trainer of `variant` on a deep copy of `model` (call before any trainer patches `model`)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from spac_hf import SPACConfig, SPACTrainer

    if variant not in LABELS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {list(LABELS)}")
    policy = copy.deepcopy(model)
    args = trainer_args(settings, output_dir)
    if variant == "dpo":
        data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
        trainer = DPOTrainer(policy, args=DPOConfig(**args), train_dataset=data, processing_class=tokenizer)
    else:
        ref_model = None
        args.update(SPAC_OPTIONS[variant])
        if not args["precompute_ref_log_probs"]:
            # An in-memory model has no path to reload the reference from: hand the trainer its copy.
            ref_model = copy.deepcopy(model)
        data = Dataset.from_list(rows)  # with a `generated` column: no generation inside the timed setup
        trainer = SPACTrainer(
            policy, ref_model=ref_model, args=SPACConfig(**args), train_dataset=data, processing_class=tokenizer
        )
    trainer.remove_callback(PrinterCallback)  # keep stdout for the progress bar
    return trainer
