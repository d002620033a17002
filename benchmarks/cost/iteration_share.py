"""Where one SPAC iteration's time goes: self-play generation, reference log-probs, training.

One iteration as `spac_hf.run.loop` runs it, on the trainer's own path: a `SPACTrainer` is built on data without a
`generated` column, so it samples y ~ pi_t itself (`_ensure_generated`), computes the reference log-probs of the three
responses once (`_precompute_ref_logps`), and `train()` runs the epochs. A subclass only reads the clock around those
two methods. The phases:

    generation  `_ensure_generated`: `generate_responses` over the part's prompts, then re-tokenizing the rows
    reference   `_precompute_ref_logps` without the generation inside it: one no-grad forward per batch
    training    `trainer.train()`: every optimizer step, plus the call's own setup
    setup       the rest of the constructor: tokenization, model preparation

The settings are the paper's scaled down (`max_new_tokens` = the response length, temperature 1, batch 4, one or more
epochs over the part's prompts). Runs in a fresh process (see `fresh_process.py`).
"""

from __future__ import annotations

import tempfile
import time

from spac_hf import SPACConfig, SPACTrainer


class TimedSPACTrainer(SPACTrainer):
    """`SPACTrainer` that records how long generation and the reference precomputation take (nothing else changes)."""

    def __init__(self, *args, **kwargs):
        self.phase_seconds = {"generation": 0.0, "reference": 0.0}
        super().__init__(*args, **kwargs)

    def _ensure_generated(self, dataset, name):
        start = time.perf_counter()
        try:
            return super()._ensure_generated(dataset, name)
        finally:
            self.phase_seconds["generation"] += time.perf_counter() - start

    def _precompute_ref_logps(self, dataset, name, batch_size):
        start, generated_before = time.perf_counter(), self.phase_seconds["generation"]
        try:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        finally:
            inner_generation = self.phase_seconds["generation"] - generated_before
            self.phase_seconds["reference"] += time.perf_counter() - start - inner_generation


def timed_iteration(model, args: SPACConfig, rows: list[dict], tokenizer=None) -> tuple[TimedSPACTrainer, dict]:
    """Build and train a `TimedSPACTrainer` on `rows`; return it and the seconds of each phase of the iteration
    (setup, generation, reference log-probs, training)."""
    from datasets import Dataset
    from transformers import PrinterCallback

    start = time.perf_counter()
    trainer = TimedSPACTrainer(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    built = time.perf_counter()
    trainer.train()
    trained = time.perf_counter()
    phases = dict(trainer.phase_seconds)
    phases["setup"] = (built - start) - phases["generation"] - phases["reference"]
    phases["training"] = trained - built
    return trainer, phases


def measure(size_name: str, prompts: int, epochs: float, settings: dict, threads: int) -> dict:
    """Run in a fresh process: build the trainer (generation + reference), train, and return the phase seconds."""
    import torch

    from benchmarks.cost.models import SIZES, build_model, build_tokenizer, count_parameters, preference_rows

    torch.set_num_threads(threads)
    size = SIZES[size_name]
    tokenizer = build_tokenizer(size.vocab_size)
    model = build_model(size, tokenizer, seed=settings["seed"])
    rows = preference_rows(
        prompts,
        size.vocab_size,
        settings["prompt_tokens"],
        settings["response_tokens"],
        seed=settings["seed"],
        with_generated=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SPACConfig(
            output_dir=tmp,
            use_cpu=settings["device"] == "cpu",
            bf16=settings["bf16"],
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            per_device_train_batch_size=settings["batch_size"],
            max_length=settings["max_length"],
            max_new_tokens=settings["response_tokens"],
            num_train_epochs=epochs,
            seed=settings["seed"],
            gradient_checkpointing=settings["gradient_checkpointing"],
            # the paper's loss settings (they do not change the cost)
            beta=0.1,
            lam=1.0,
            learning_rate=5e-7,
        )
        trainer, phases = timed_iteration(model, args, rows, tokenizer)
    total = sum(phases.values())
    generated = trainer.train_dataset["generated_ids"]
    return {
        "size": size_name,
        "parameters": count_parameters(trainer.model),
        "prompts": prompts,
        "epochs": epochs,
        "optimizer_steps": trainer.state.global_step,
        "max_new_tokens": settings["response_tokens"],
        "generated_tokens": sum(len(ids) for ids in generated),
        "seconds": phases,
        "total_seconds": total,
        "share": {phase: seconds / total for phase, seconds in phases.items()},
    }
