"""GPU paths: bf16 training against the fp32 CPU loss, self-play generation and one loop iteration on the device.

Marked `gpu`: `scripts/gpu_check.sh` runs them on the GPU machine (`pytest -m gpu`). Without CUDA they are skipped,
except under the check's `--dry-run` (`SPAC_HF_GPU_DRY_RUN=1`), which runs them on the CPU (bf16 through CPU autocast)
so that CI proves they run end to end before a GPU run is spent on them.
"""

import copy
import math
import os
import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from spac_hf import SPACConfig, SPACTrainer, run_self_play
from spac_hf.generation import generate_responses

from helpers import CPU_TRAINING, perturb, preference_rows, rows_with_generated, sentence


DRY_RUN_ENV = "SPAC_HF_GPU_DRY_RUN"
# Skipped at collection (before the session's tiny model is built) unless there is a GPU or it is the dry run.
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() and os.environ.get(DRY_RUN_ENV) != "1",
        reason="needs a CUDA device: scripts/gpu_check.sh runs it on the GPU machine (--dry-run: on the CPU)",
    ),
]
# bf16 keeps 8 bits of mantissa: a relative error of about 2**-8 per rounding, a few roundings deep in a tiny model.
BF16_RTOL, BF16_ATOL = 2e-2, 1e-2


@pytest.fixture
def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"  # cpu: only in the dry run (see pytestmark)


def device_args(device: str, output_dir, **overrides) -> SPACConfig:
    # On CUDA the Trainer places the model on the GPU; `use_cpu` only where the dry run has no GPU.
    return SPACConfig(**{**CPU_TRAINING, "use_cpu": device == "cpu", "output_dir": str(output_dir), **overrides})


def step_losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_bf16_steps_match_the_fp32_cpu_loss_at_step_one(tiny_model_dir, tokenizer, tmp_path, device, record_property):
    """A few bf16 steps on the device; step 1's loss equals the fp32 CPU loss within bf16 tolerance."""
    rows = rows_with_generated(8)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    perturb(policy, seed=3, scale=0.2)  # away from the reference, where the loss would be 2 log 2 at any precision
    runs = {}
    for name, on_device, bf16 in (("fp32_cpu", "cpu", False), ("bf16", device, True)):
        args = device_args(on_device, tmp_path / name, bf16=bf16, max_steps=3, learning_rate=1e-3, beta=0.5)
        trainer = SPACTrainer(
            copy.deepcopy(policy), ref_model=copy.deepcopy(reference), args=args,
            train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        )  # fmt: skip
        trainer.train()
        runs[name] = (trainer, step_losses(trainer))
    (_, cpu_losses), (bf16_trainer, bf16_losses) = runs["fp32_cpu"], runs["bf16"]
    # Recorded in the JUnit XML, which scripts/gpu_check.py copies into its summary.
    record_property("fp32_cpu_losses", cpu_losses)
    record_property(f"bf16_{device}_losses", bf16_losses)
    assert bf16_trainer.model.device.type == device
    assert len(bf16_losses) == 3 and all(math.isfinite(x) for x in bf16_losses)
    assert abs(cpu_losses[0] - 2 * math.log(2)) > 0.05  # an informative comparison, not the trivial point
    assert bf16_losses[0] == pytest.approx(cpu_losses[0], rel=BF16_RTOL, abs=BF16_ATOL)
    # The weights moved on the device, and stayed float32 masters under bf16 mixed precision.
    moved = any(not torch.equal(a.cpu(), b) for a, b in zip(bf16_trainer.model.parameters(), policy.parameters()))
    assert moved and next(bf16_trainer.model.parameters()).dtype == torch.float32


def test_self_play_generation_on_the_device(model, tokenizer, device):
    """Greedy generation on the device equals the CPU's (a sharpened model: no near-ties); sampling is seeded."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    rng = random.Random(0)
    prompts = [sentence(rng, 1, 9) + ":" for _ in range(12)]  # lengths differ: left padding in every batch
    options = {"max_new_tokens": 10, "batch_size": 5, "distributed": False}
    on_cpu = generate_responses(model, tokenizer, prompts, temperature=0.0, **options)
    on_device_model = copy.deepcopy(model).to(device)
    assert generate_responses(on_device_model, tokenizer, prompts, temperature=0.0, **options) == on_cpu
    sampled = [generate_responses(on_device_model, tokenizer, prompts, seed=7, **options) for _ in range(2)]
    assert sampled[0] == sampled[1] and any(text.strip() for text in sampled[0])


def test_one_self_play_iteration_on_the_device(tiny_model_dir, tmp_path, device):
    """`run_self_play` for one SPAC iteration with bf16 on the device: generation, training, the saved iterate."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    args = device_args(device, tmp_path / "run", bf16=True, num_iterations=1, learning_rate=1e-3)
    result = run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(8)), method="spac")
    assert len(result.iterates) == 1
    reloaded = AutoModelForCausalLM.from_pretrained(result.iterates[0])
    assert next(reloaded.parameters()).dtype == torch.float32
    losses = [e["loss"] for e in result.summary["iterates"][0].get("log_history", []) if "loss" in e]
    train_loss = result.summary["iterates"][0]["train_metrics"]["train_loss"]
    assert math.isfinite(train_loss) and all(math.isfinite(x) for x in losses)
    if device == "cuda":
        assert torch.cuda.max_memory_allocated() > 0  # the iteration ran on the GPU
