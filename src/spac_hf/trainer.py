"""`SPACTrainer`: TRL's `DPOTrainer` with a third response (y ~ pi_t) and the SPAC loss.

What changes against `DPOTrainer` (TRL 1.16), and only this:
- `_prepare_dataset` also tokenizes `generated`, and fails on over-long prompts instead of dropping them;
- self-play generation: a data set without a `generated` column gets one from the model as given (pi_t);
- the collator (`spac_hf.collator`) stacks [chosen; rejected; generated], or, with `share_prompt` (the default where
  the attention implementation takes a custom mask), lays each example out as one row [prompt, chosen, rejected,
  generated] so the prompt is processed once (`spac_hf.packing`; `padding_free` also drops the padding);
  `compute_ref_log_probs` / `_precompute_ref_logps` handle the three blocks;
- `_compute_loss` calls `spac_loss` and logs DPO's metrics plus the two SPAC terms (`spac_hf.trainer_metrics`).
These private methods are pinned by `tests/test_trl_compat.py`, which fails loudly if TRL changes their signatures.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate.utils import tqdm
from datasets import Dataset, IterableDataset
from torch.utils.data import DataLoader
from trl import DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import get_config_model_id

from .collator import DataCollatorForSPAC
from .config import SPACConfig
from .data import (
    RESPONSES,
    named_datasets,
    require_map_style,
    tokenize_preference_dataset,
    validate_preference_dataset,
    validate_trainer_datasets,
)
from .generation import add_self_play_column, reference_adapter, trainer_policy
from .losses import LogProbs, spac_loss
from .methods import METHODS
from .packing import attention_mask_for, sliding_window_of, usable_layout
from .trainer_metrics import step_metrics


_SPAC = METHODS["spac"]


class SPACTrainer(DPOTrainer):
    """Trainer for SPAC (Self-Play with Adversarial Critic, arXiv 2406.04274), a drop-in for TRL's `DPOTrainer`.

    Takes the same arguments as `DPOTrainer`, with a [`SPACConfig`]. Lifecycle:

    1. `__init__`, before any model is loaded: every data set is checked (every row; text only; map-style where
       pi_t must generate for it) and lambda is fixed (`lam`, or lam * sqrt(n) for the n training pairs).
    2. `DPOTrainer.__init__` loads the models and tokenizes the data sets (`_prepare_dataset`).
    3. Generation, once per data set, still in `__init__`: a train or eval data set without a `generated` column gets
       one response per prompt from pi_t, the model as given (`_ensure_generated`, the trainer's only call to
       `generation.add_self_play_column`), and is tokenized again so the three responses share one prompt boundary.
    4. Reference log-probs of the three responses: by default (`precompute_ref_log_probs=True`) once, in `__init__`
       right after generation (`_precompute_ref_logps`, skipped when the `ref_*_logps` columns are already there, as
       the loop computes them); otherwise in every step, in `_compute_loss`.
    5. `evaluate(eval_dataset)` with a new, untokenized data set repeats 2-4 for it. After training, pi_t is still
       available only as `ref_model` or PEFT's reference adapter: give such a data set its `generated` column.
    6. Each step: one forward over [chosen; rejected; generated] (or packed), `spac_loss`, metrics (`trainer_metrics`).

    Assumes a causal LM that takes TRL's fused LM head (log-probs, entropy, top-1 per token), a tokenizer with a pad
    token, prompts that fit `max_length` with `truncation_mode="keep_start"` (a longer one is an error naming its
    row), and a `generated` column, where given, sampled from this model as it is now (pi_t). The reference is the
    model as training starts (or `ref_model`).

    Example:

    ```python
    from datasets import load_dataset
    from spac_hf import SPACConfig, SPACTrainer

    dataset = load_dataset("trl-lib/ultrafeedback_binarized", split="train")
    trainer = SPACTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct", args=SPACConfig(output_dir="qwen-spac"), train_dataset=dataset
    )
    trainer.train()
    ```
    """

    # The Hub tags and paper of `spac_hf.methods`, the same as the loop's model cards show.
    _tag_names = _SPAC.tags
    _name = "SPAC"
    _paper = {"title": _SPAC.paper.full_title, "id": _SPAC.paper.arxiv_id, "citation": _SPAC.paper.bibtex}

    def __init__(
        self,
        model,
        ref_model=None,
        args: SPACConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
    ):
        if args is None:
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = SPACConfig(f"{name.split('/')[-1]}-SPAC")
        elif not isinstance(args, SPACConfig):
            raise TypeError(
                f"SPACTrainer needs a `SPACConfig`, got `{type(args).__name__}`. Every DPOConfig option is also a "
                "SPACConfig option: build `SPACConfig(...)` with the same arguments."
            )
        if train_dataset is None:
            raise ValueError("`train_dataset` is required.")
        # Every data set is checked before a model is loaded or a token is generated.
        train_format = validate_trainer_datasets(train_dataset, eval_dataset, generates=args.use_pessimism)
        if args.generation_backend == "vllm" and not isinstance(model, str):
            raise ValueError("generation_backend='vllm' loads pi_t from disk: pass `model` as a path.")
        # lambda as the loss uses it: `lam`, or lam * sqrt(n) for the n pairs this trainer trains on (theory issue).
        self.lam_num_pairs = len(train_dataset) if isinstance(train_dataset, Dataset) else None
        if args.lam_scaling != "constant" and self.lam_num_pairs is None:
            raise ValueError(
                f"train_dataset: `lam_scaling={args.lam_scaling!r}` needs the number of preference pairs; pass a "
                "map-style `Dataset` (not streamed) or use `lam_scaling='constant'`."
            )
        self.lam = args.effective_lam(self.lam_num_pairs)
        self._conversational = train_format == "conversational"
        self._model_path = model if isinstance(model, str) else None
        self.responses = RESPONSES if args.use_pessimism else RESPONSES[:2]

        # DPOTrainer only warns that it falls back to padding; SPACTrainer packs itself (`_packing`).
        padding_free, args.padding_free = args.padding_free, False
        self._packing_requested = (args.share_prompt, padding_free)
        self._packing_layout = None  # (share_prompt, padding_free) in use, decided once the models are loaded
        try:
            super().__init__(
                model=model,
                ref_model=ref_model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                compute_metrics=compute_metrics,
                callbacks=callbacks,
                optimizers=optimizers,
                quantization_config=quantization_config,
                peft_config=peft_config,
            )
        finally:
            args.padding_free = padding_free
        if data_collator is None:
            self.data_collator = self._spac_collator()
        # With precomputed reference log-probs, generation already ran inside `_precompute_ref_logps`.
        self.train_dataset = self._ensure_generated(self.train_dataset, "train")
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {k: self._ensure_generated(v, k) for k, v in self.eval_dataset.items()}
        elif self.eval_dataset is not None:
            self.eval_dataset = self._ensure_generated(self.eval_dataset, "eval")

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        """The card of `spac_hf.hub`, the one the loop's iterates get (method tags, paper, BibTeX, hyperparameters),
        instead of TRL's template; TRL's own extra tags (`tags`) are kept."""
        if self.is_world_process_zero():
            from .hub import save_trainer_card

            base_model = get_config_model_id(self.model.config) or "unknown"
            save_trainer_card(self.args, base_model, model_name, dataset_name, self.hub_model_id, tags)

    @property
    def loss_settings(self) -> dict:
        """The loss's weights as this trainer uses them; the loop records them with each iterate."""
        args = self.args
        return {
            "lam": args.lam,
            "lam_scaling": args.lam_scaling,
            "lam_num_pairs": self.lam_num_pairs,
            "effective_lam": self.lam,
            "pessimism_weight": args.pessimism_weight,
        }

    @property
    def _packing(self) -> tuple[bool, bool]:
        """(share_prompt, padding_free) as used: the options, less what the models cannot take (one warning)."""
        if self._packing_layout is None:
            models = [m for m in (self.model, self.ref_model) if m is not None]
            name = type(self.accelerator.unwrap_model(self.model)).__name__
            device, truncation = self.accelerator.device, self.args.truncation_mode
            self._packing_layout = usable_layout(*self._packing_requested, models, name, device, truncation)
        return self._packing_layout

    def _spac_collator(self) -> DataCollatorForSPAC:
        share_prompt, padding_free = self._packing
        return DataCollatorForSPAC(
            pad_token_id=self._tokenizer.pad_token_id,
            responses=self.responses,
            max_length=self.args.max_length,
            truncation_mode=self.args.truncation_mode,
            pad_to_multiple_of=self.args.pad_to_multiple_of,
            share_prompt=share_prompt,
            padding_free=padding_free,
        )

    # ------------------------------------------------------------------ data

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return tokenize_preference_dataset(dataset, self._tokenizer, self.responses, args, dataset_name)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["prompt_ids"]
            for response in self.responses:
                self._signature_columns += [f"{response}_ids", f"ref_{response}_logps"]

    def _model_for_generation(self):
        """pi_t: before training the policy; afterwards only the reference model (or PEFT's reference adapter)."""
        return trainer_policy(self.accelerator, self.ref_model or self.model, peft_reference=self.ref_model is None)

    def _ensure_generated(self, dataset, name: str):
        """Add the self-play responses y ~ pi_t (and their tokens) to a prepared data set that lacks them."""
        if "generated" not in self.responses or dataset is None or "generated_ids" in (dataset.column_names or []):
            return dataset
        if "prompt" not in dataset.column_names:
            raise ValueError(f"{name}: a pre-tokenized data set must already hold `generated_ids`.")
        dataset = add_self_play_column(
            dataset,
            self._tokenizer,
            self.args,
            conversational=self._conversational,
            policy_path=self._model_path,
            policy=self._model_for_generation,
            name=name,
        )
        # Re-tokenize the row with its new response, so the prompt boundary is shared by all three responses.
        dataset = dataset.remove_columns([c for c in dataset.column_names if c.endswith("_ids")])
        return self._prepare_dataset(dataset, self.processing_class, self.args, name)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        # DPOTrainer prepares a data set passed here, and precomputes its reference log-probs (which generates, see
        # `_precompute_ref_logps`); without precomputation the self-play responses must be added here.
        raw = eval_dataset is not None and not isinstance(eval_dataset, str)
        for name, dataset in named_datasets(eval_dataset, "eval_dataset") if raw else []:
            if "prompt_ids" not in (dataset.column_names or []):
                validate_preference_dataset(dataset, name)
        if raw and not self.precompute_ref_logps:

            def prepare(dataset, name):
                dataset = self._prepare_dataset(dataset, self.processing_class, self.args, name)
                return self._ensure_generated(dataset, name)

            if isinstance(eval_dataset, dict):
                eval_dataset = {key: prepare(value, key) for key, value in eval_dataset.items()}
            else:
                eval_dataset = prepare(eval_dataset, "eval")
        return super().evaluate(
            eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )

    # ------------------------------------------------------------------ log-probs

    def _sequence_logps(self, model, inputs, **model_kwargs):
        """Summed completion log-probs of every sequence of the batch, and the model outputs (fused LM head)."""
        if "sequence_ids" in inputs:  # shared-prompt / padding-free layout (`spac_hf.packing`)
            outputs = model(
                **self._packed_forward_kwargs(model, inputs), **model_kwargs, use_cache=False, fused_lm_head=True
            )
            # Every scored position adds its log-prob to its sequence; unscored ones are 0 (added to sequence 0).
            logps = outputs.log_probs.new_zeros(inputs["completion_lengths"].numel())
            logps = logps.index_add(0, inputs["sequence_ids"].clamp(min=0).flatten(), outputs.log_probs.flatten())
            return logps, outputs
        forward_kwargs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        outputs = model(**forward_kwargs, **model_kwargs, labels=labels, use_cache=False, fused_lm_head=True)
        seq_len = inputs["completion_mask"].size(1) - 1
        # Prompt-learning PEFT prepends virtual tokens to the outputs; keep the positions of the real tokens
        per_token_logps = outputs.log_probs[:, -seq_len:]
        return per_token_logps.sum(dim=1), outputs

    def _packed_forward_kwargs(self, model, inputs):
        """Inputs of a packed batch for `model`: ids, positions, pre-shifted labels and the 4D attention mask."""
        unwrapped = self.accelerator.unwrap_model(model)
        config = unwrapped.config
        mask = attention_mask_for(config._attn_implementation, inputs, unwrapped.dtype, sliding_window_of(config)[0])
        return {
            "input_ids": inputs["input_ids"],
            "attention_mask": mask,
            "position_ids": inputs["position_ids"],
            "shift_labels": inputs["shift_labels"],
        }

    def compute_ref_log_probs(self, model, inputs):
        """Reference log-probs of one padded batch, one tensor per response block."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        adapter = reference_adapter(unwrapped) if self.ref_model is None else contextlib.nullcontext()
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapter,
            self.accelerator.autocast(),
        ):
            logps, _ = self._sequence_logps(model, inputs)
        return logps.chunk(len(self.responses), dim=0)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        require_map_style(dataset, name, "`precompute_ref_log_probs=True` (else set it to False)")
        dataset = self._ensure_generated(dataset, name)
        keys = [f"ref_{response}_logps" for response in self.responses]
        if all(key in dataset.column_names for key in keys):
            return dataset  # computed earlier, e.g. by the iteration loop
        loader = self.accelerator.prepare(
            DataLoader(
                dataset.select_columns(["prompt_ids", *[f"{r}_ids" for r in self.responses]]),
                batch_size=batch_size,
                collate_fn=self._spac_collator(),
                num_workers=self.args.dataloader_num_workers,
                pin_memory=self.args.dataloader_pin_memory,
                shuffle=False,
            )
        )
        if self.ref_model is None and self.is_deepspeed_enabled:
            from trl.models import prepare_deepspeed

            if self._precompute_engine is None:
                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            model = self._precompute_engine
        else:
            model = self.ref_model or self.model
        columns = [[] for _ in keys]
        for batch in tqdm(loader, desc=f"Computing reference log probs for {name} dataset"):
            logps = self.accelerator.gather_for_metrics(self.compute_ref_log_probs(model, batch))
            for column, value in zip(columns, logps):
                column.append(value.float().cpu())
        for key, column in zip(keys, columns):
            if key in dataset.column_names:
                dataset = dataset.remove_columns(key)
            dataset = dataset.add_column(key, torch.cat(column).tolist())
        return dataset

    # ------------------------------------------------------------------ loss

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        n = len(self.responses)
        model_kwargs = {"output_router_logits": True} if self.aux_loss_enabled else {}
        logps, outputs = self._sequence_logps(model, inputs, **model_kwargs)
        policy = dict(zip(self.responses, logps.chunk(n, dim=0)))

        if all(f"ref_{r}_logps" in inputs for r in self.responses):
            ref = {r: inputs[f"ref_{r}_logps"] for r in self.responses}
        else:
            ref = dict(zip(self.responses, self.compute_ref_log_probs(self.ref_model or model, inputs)))

        args = self.args
        losses, pessimism_losses, preference_losses = spac_loss(
            LogProbs(policy["chosen"], policy["rejected"], policy.get("generated")),
            LogProbs(ref["chosen"], ref["rejected"], ref.get("generated")),
            beta=self.beta,
            lam=self.lam,
            real=args.real_response,
            smoothing=args.smoothing,
            pessimism=args.use_pessimism,
            pessimism_weight=args.pessimism_weight,
        )
        loss = losses.mean()
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(outputs.aux_loss).mean().item())

        with torch.no_grad():
            self._log_metrics(mode, inputs, outputs, policy, ref, pessimism_losses, preference_losses)
        self._metrics[mode]["spac/lam"].append(self.lam)  # the lambda the loss used (lam * sqrt(n) with sqrt_n)

        if return_outputs:  # deprecated by TRL (logits for compute_metrics need an extra forward)
            if "sequence_ids" in inputs:
                forward_kwargs = self._packed_forward_kwargs(model, inputs)
                forward_kwargs.pop("shift_labels")
                outputs = model(**forward_kwargs)
            else:
                outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return (loss, outputs) if return_outputs else loss

    def _log_metrics(self, mode, inputs, outputs, policy, ref, pessimism_losses, preference_losses):
        """Append the step's metrics (`spac_hf.trainer_metrics`) to TRL's metric lists."""
        gather = self.accelerator.gather_for_metrics
        settings = {"responses": self.responses, "beta": self.beta, "real_response": self.args.real_response}
        losses = (pessimism_losses, preference_losses)
        values, tokens = step_metrics(inputs, outputs, policy, ref, *losses, **settings, gather=gather)
        metrics = self._metrics[mode]
        metrics["entropy"].append(values.pop("entropy"))
        if mode == "train":  # an integer count, read after the sync above
            self._total_train_tokens += gather(tokens.sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        for name, value in values.items():
            metrics[name].append(value)
