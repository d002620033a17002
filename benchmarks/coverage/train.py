"""One arm-run: train one variant from pi_1 at the benchmark's budget, checkpoint it at the declared steps, score every
checkpoint on the validation prompts, and score the validation-chosen and the last checkpoint on the test prompts.

Training goes through the library's own loop (`spac_hf.run_self_play`) with the variant's trainer and config
(`spac_hf.variants.variant_config`), so every arm is the code a user runs. What the benchmark adds:
- the schedule that spends exactly the budget (`fit_schedule`): T iterations x E epochs x the steps of one epoch of
  an iteration's part = the budget's optimizer steps, for every arm;
- `_Checkpoints`, a trainer callback that counts optimizer steps across the loop's iterations (each iteration is a
  fresh trainer) and saves the policy at each declared step;
- the scoring (`score_policy`): responses sampled at temperature 1 from the checkpoint (or, for a variant whose
  output is the uniform mixture of its iterates, from the mixture of the iterates finished by then), scored by the
  task's metric, the one scoring path of the project.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spac_hf.variants import get_variant

from .data import SHIPPED_MODEL


BATCH_SIZE = 16
VALIDATION_SAMPLES = 2  # samples per validation prompt at each checkpoint
TEST_SAMPLES = 8  # samples per test prompt for the two scored checkpoints
MAX_NEW_TOKENS = 48  # as every evaluation of the task (spac_hf.tasks.true_reward.DEFAULT_MAX_NEW_TOKENS)
# What every arm shares: the shipped default's training settings (src/spac_hf/default/*.yaml) minus what is tuned.
COMMON = {
    "use_cpu": True,
    "bf16": False,
    "lr_scheduler_type": "linear",
    "per_device_train_batch_size": BATCH_SIZE,
    "gradient_accumulation_steps": 1,
    "max_length": 64,
    "max_new_tokens": MAX_NEW_TOKENS,
    "temperature": 1.0,
    "generation_batch_size": 128,
    "save_strategy": "no",  # the benchmark resumes whole runs; checkpoints are its own (`_Checkpoints`)
    "logging_steps": 5,
    "report_to": "none",
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
    "include_num_input_tokens_seen": True,
}
SCHEDULE_KEYS = ("num_iterations", "iteration_data")


@dataclass(frozen=True)
class Schedule:
    num_iterations: int
    iteration_data: str  # "split" (disjoint parts) or "full"
    num_train_epochs: int
    steps_per_iteration: int


def fit_schedule(overrides: Mapping[str, Any], pairs: int, budget_steps: int) -> Schedule:
    """The variant's T and data schedule, with the epochs per iteration that spend exactly `budget_steps`.

    Raises ValueError naming the budget when no whole number of epochs does (the caller names the arm)."""
    iterations = int(overrides.get("num_iterations", 1))
    data = overrides.get("iteration_data", "split") if iterations > 1 else "full"
    part = pairs // iterations if data == "split" else pairs
    steps_per_epoch = math.ceil(part / BATCH_SIZE)
    per_iteration, rest = divmod(budget_steps, iterations)
    if rest or per_iteration % steps_per_epoch:
        raise ValueError(
            f"--budget {budget_steps}: T = {iterations} iterations of {part} pairs ({steps_per_epoch} steps an "
            f"epoch) cannot spend it in whole epochs"
        )
    return Schedule(iterations, data, per_iteration // steps_per_epoch, per_iteration)


def arm_config(
    arm_variant: str,
    settings: Mapping[str, Any],
    params: Mapping[str, Any],
    pairs: int,
    budget: int,
    seed: int,
    output_dir: Path,
):
    """The run's config: COMMON, the variant's overrides, the arm's fixed settings, the schedule, the trial's
    parameters (`rpo_alpha` becomes TRL's `loss_weights` [1, alpha]), the seed."""
    import dataclasses

    from spac_hf.methods import METHODS
    from spac_hf.variants import variant_config

    variant = get_variant(arm_variant)
    overrides = {**variant.overrides, **settings}
    schedule = fit_schedule(overrides, pairs, budget)
    base = METHODS[variant.method].config_class(output_dir=str(output_dir), seed=seed, **COMMON)
    config = variant_config(variant, base)
    tuned = dict(params)
    if "rpo_alpha" in tuned:
        tuned["loss_weights"] = [1.0, float(tuned.pop("rpo_alpha"))]
    fields = {
        **settings,
        "num_iterations": schedule.num_iterations,
        "iteration_data": schedule.iteration_data,
        "num_train_epochs": schedule.num_train_epochs,
        **tuned,
    }
    return dataclasses.replace(config, **fields), schedule


def _make_callback(checkpoints: Sequence[int], folder: Path):
    from transformers import TrainerCallback

    class _Checkpoints(TrainerCallback):
        """Count optimizer steps across the loop's trainers; save the policy at every declared checkpoint."""

        def __init__(self):
            self.done = 0  # steps of the finished iterations
            self.steps = 0
            self.tokens = 0
            self.iteration_ends: list[int] = []

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.steps = self.done + state.global_step
            if self.steps in checkpoints:
                model.save_pretrained(str(folder / f"step_{self.steps}"))

        def on_train_end(self, args, state, control, **kwargs):
            self.done += state.global_step
            self.tokens += int(getattr(state, "num_input_tokens_seen", 0) or 0)
            self.iteration_ends.append(self.done)

    return _Checkpoints()


def score_policy(paths: Sequence[str], tokenizer, prompts: Sequence[str], samples: int, seed: int) -> dict:
    """Mean over prompts of the mean true reward of `samples` responses, the share of degenerate responses (the
    reward's minimum) and the mean length in words. One path: that model; several: their uniform mixture (one iterate
    drawn per response, seeded)."""
    import torch
    from transformers import AutoModelForCausalLM

    from spac_hf.generation import generate_responses
    from spac_hf.mixture import IterateMixture
    from spac_hf.tasks import reviews
    from spac_hf.tasks.metrics import task_rewards

    flat = [p for p in prompts for _ in range(samples)]
    if len(paths) == 1:
        model = AutoModelForCausalLM.from_pretrained(paths[0], dtype=torch.float32)
        texts = generate_responses(
            model,
            tokenizer,
            flat,
            max_new_tokens=MAX_NEW_TOKENS,
            temperature=1.0,
            seed=seed,
            batch_size=128,
            distributed=False,
            desc="scoring",
        )
    else:
        texts = IterateMixture(tuple(paths), seed=seed).generate(
            tokenizer, flat, max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, batch_size=128
        )
    rewards = task_rewards("true_reward_reviews", flat, texts)["rewards"]
    per_prompt = [sum(rewards[i * samples : (i + 1) * samples]) / samples for i in range(len(prompts))]
    return {
        "reward": sum(per_prompt) / len(per_prompt),
        "degenerate_fraction": sum(r <= reviews.REWARD_RANGE[0] for r in rewards) / len(rewards),
        "mean_words": sum(len(reviews.words(t)) for t in texts) / len(texts),
    }


@dataclass(frozen=True)
class RunSpec:
    regime: str
    arm: str
    variant: str
    settings: Mapping[str, Any]  # the arm's fixed schedule settings (Arm.settings)
    params: Mapping[str, Any]  # the trial's parameters
    seed: int
    budget: int
    checkpoints: tuple[int, ...]

    def identity(self) -> dict:
        return {
            "regime": self.regime,
            "arm": self.arm,
            "variant": self.variant,
            "settings": dict(self.settings),
            "params": dict(self.params),
            "seed": self.seed,
            "budget": self.budget,
            "checkpoints": list(self.checkpoints),
            "common": COMMON,
            "validation_samples": VALIDATION_SAMPLES,
            "test_samples": TEST_SAMPLES,
        }

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_arm(
    spec: RunSpec,
    pairs: list[dict],
    start_model: Path,
    prompts: dict[str, list[str]],
    scratch: Path,
    test: bool,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, checkpoint and score one run; `test=False` (a tuning trial) scores validation only. Returns the run's
    result: the validation curve, the chosen checkpoint, test scores of the chosen and the last checkpoint, what
    was spent. `scratch` (iterates, checkpoints) is deleted at the end."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from spac_hf.run.loop import run_self_play

    variant = get_variant(spec.variant)
    shutil.rmtree(scratch, ignore_errors=True)  # an interrupted run restarts from the beginning
    ckpt_dir = scratch / "checkpoints"
    config, schedule = arm_config(
        spec.variant, spec.settings, spec.params, len(pairs), spec.budget, spec.seed, scratch / "run"
    )
    tokenizer = AutoTokenizer.from_pretrained(str(SHIPPED_MODEL))
    callback = _make_callback(spec.checkpoints, ckpt_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_self_play(
        str(start_model),
        config,
        Dataset.from_list(pairs),
        method=variant.method,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    iterate_rows = [json.loads((Path(p) / "iterate.json").read_text())["train_rows"] for p in result.iterates]
    pairs_seen = sum(rows * schedule.num_train_epochs for rows in iterate_rows)
    self_play = (
        sum(iterate_rows) if variant.method in ("spac", "spin") and config.__dict__.get("use_pessimism", True) else 0
    )
    if callback.steps != spec.budget or set(spec.checkpoints) - {int(p.name[5:]) for p in ckpt_dir.iterdir()}:
        raise RuntimeError(f"{spec.arm}: trained {callback.steps} optimizer steps, budget {spec.budget}")

    def policy(step: int) -> list[str]:
        own = [str(ckpt_dir / f"step_{step}")]
        if variant.output != "mixture":
            return own
        finished = [p for p, end in zip(result.iterates, callback.iteration_ends) if end < step]
        return finished + own  # at an iteration end the checkpoint is that iterate: the mixture of iterates 1..k

    curve, val_metrics = {}, {}
    for step in spec.checkpoints:
        val_metrics[step] = score_policy(policy(step), tokenizer, prompts["validation"], VALIDATION_SAMPLES, spec.seed)
        curve[step] = val_metrics[step]["reward"]
    from benchmarks.protocol import select_checkpoint

    chosen, last = select_checkpoint(curve), spec.checkpoints[-1]
    out = {
        "identity": spec.identity(),
        "config_hash": spec.config_hash(),
        "curve": {str(k): v for k, v in curve.items()},
        "validation": {str(k): v for k, v in val_metrics.items()},
        "chosen": chosen,
        "last": last,
        "spent": {
            "optimizer_steps": callback.steps,
            "pairs_seen": pairs_seen,
            "self_play_samples": self_play,
            "tokens_trained": callback.tokens,
            "wall_s": round(train_wall, 2),
            "cpu_s": round(train_cpu, 2),
        },
        "schedule": schedule.__dict__,
        "test": {},
    }
    if test:
        for step in dict.fromkeys([chosen, last]):
            out["test"][str(step)] = score_policy(policy(step), tokenizer, prompts["test"], TEST_SAMPLES, spec.seed)
    out["wall_s_total"] = round(time.perf_counter() - wall, 2)
    shutil.rmtree(scratch, ignore_errors=True)
    log(
        f"{spec.regime}/{spec.arm} seed {spec.seed} {dict(spec.params)}: val {curve[chosen]:.3f} at step {chosen}"
        + (f", test {out['test'][str(chosen)]['reward']:.3f}" if test else "")
        + f" ({out['wall_s_total']:.0f} s)"
    )
    return out


def mu_start_model(samples: list[dict], out: Path, seed: int) -> Path:
    """pi_1 = mu: the SFT model fine-tuned on mu's samples with TRL's SFTTrainer (loss on the completion), saved at
    `out` (built once; a finished folder is reused)."""
    if (out / "config.json").is_file():
        return out
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from spac_hf.utils import atomic_directory

    tokenizer = AutoTokenizer.from_pretrained(str(SHIPPED_MODEL))
    args = SFTConfig(
        output_dir=str(out) + ".tmp_trainer",
        use_cpu=True,
        bf16=False,
        seed=seed,
        learning_rate=MU_SFT["lr"],
        num_train_epochs=MU_SFT["epochs"],
        per_device_train_batch_size=MU_SFT["batch"],
        lr_scheduler_type="linear",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=20,
        max_length=64,
    )
    trainer = SFTTrainer(
        model=str(SHIPPED_MODEL), args=args, train_dataset=Dataset.from_list(samples), processing_class=tokenizer
    )
    trainer.train()
    with atomic_directory(out) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(str(out) + ".tmp_trainer", ignore_errors=True)
    return out


MU_SFT = {"lr": 5e-4, "epochs": 2, "batch": 32}  # 2880 rows: 180 steps
