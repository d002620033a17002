"""The outer loop: T iterations of generate y ~ pi_t, train from pi_t, save pi_{t+1}; for SPAC, SPIN and iterative DPO.

Layout of `output_dir`, where every step is durable and written atomically (a step is done when its folder exists):

    self_play_run.json          what this run is (method, base model, data hash, T, ...); checked on resume
    work/iter_<t>/generated/    the part's data with the self-play responses (`datasets.save_to_disk`)
    work/iter_<t>/generated_eval/
    work/iter_<t>/checkpoints/  Trainer checkpoints of the iteration in progress (deleted once the iterate is saved)
    iter_<t>/                   iterate t: model, tokenizer, model card, iterate.json (and eval.json)
    base_eval.json              the evaluation of the starting model, when an evaluation function is given
    summary.json                all iterates with their training metrics and evaluations

A run killed at any moment restarts at the first unfinished step: finished iterates and generated data are reused,
and an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from datasets import Dataset, concatenate_datasets, load_from_disk
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from trl import DPOTrainer
from trl.trainer.utils import create_model_from_path

from .config import SelfPlayConfig, SPACConfig
from .data import split_into_parts, validate_preference_dataset, with_explicit_prompt
from .generation import add_generated_column
from .trainer import SPACTrainer
from .hub import check_repo_id, push_folder, save_model_card, push_results_dataset, results_dataset_rows, save_results_dataset
from .utils import atomic_directory, atomic_write_json, read_json


logger = logging.getLogger(__name__)

METHODS = ("spac", "spin", "dpo")
RUN_FILE = "self_play_run.json"
ITERATE_FILE = "iterate.json"
EVAL_FILE = "eval.json"
RESULT_AFFECTING = (
    "beta", "learning_rate", "lr_scheduler_type", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_length", "max_new_tokens", "temperature", "top_p", "top_k", "lam",
    "real_response", "smoothing", "use_pessimism", "loss_type",
    "lam_scaling", "pessimism_weight",  # theory issue (11): SPACConfig's lambda options
)

EvaluateFn = Callable[[str, int], dict]
"""`evaluate(model_path, iteration) -> {"results": {task: {metric: value, "<metric>_stderr": value}}, ...}`.

Iteration 0 is the starting model. Runs on the main process. The `results` part (lm-eval's layout, so lm-eval output
works as is) goes into the iterate's model card and the run's results dataset; other keys (examples, ...) are kept in
the iterate's `eval.json`.
"""


@dataclass
class SelfPlayResult:
    output_dir: str
    iterates: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def data_hash(dataset: Dataset) -> str:
    """Content hash of the preference columns, so a resumed run provably continues on the same data."""
    digest = hashlib.sha256()
    columns = [c for c in ("prompt", "chosen", "rejected") if c in dataset.column_names]
    for batch in dataset.select_columns(columns).iter(batch_size=4096):
        digest.update(json.dumps(batch, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _without_zero3_init():
    """Load a full replica for generation even when the run trains with DeepSpeed ZeRO-3 (untested: no GPU in CI)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-<step>` that Trainer finished writing, or None.

    Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG states), so a checkpoint
    without a readable one was cut off by a crash: resuming from it would fail.
    """
    checkpoints = [p for p in folder.glob("checkpoint-*") if _checkpoint_step(p) >= 0] if folder.is_dir() else []
    for checkpoint in sorted(checkpoints, key=_checkpoint_step, reverse=True):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return checkpoint
        except (OSError, ValueError):
            continue
    return None


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _SelfPlayRun:
    """One run of `run_self_play`; holds what every step needs so the steps stay short."""

    def __init__(self, method, model, args, train_dataset, eval_dataset, tokenizer, peft_config, callbacks,
                 dataset_names, evaluate, conversational):
        self.method, self.base_model, self.args = method, model, args
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.tokenizer, self.peft_config, self.callbacks = tokenizer, peft_config, callbacks
        self.dataset_names, self.evaluate = dataset_names, evaluate
        self.out = Path(args.output_dir)
        self.state = PartialState()
        self.conversational = conversational
        self.generates = method == "spin" or (method == "spac" and args.use_pessimism)

    # -------------------------------------------------------------- helpers

    def on_main(self, fn, *fn_args, **fn_kwargs):
        """Run `fn` on the main process only, then let every process continue."""
        result = fn(*fn_args, **fn_kwargs) if self.state.is_main_process else None
        self.state.wait_for_everyone()
        return result

    def exists(self, path: Path) -> bool:
        """`path.exists()`, seen the same by every process: only the main process writes, between barriers, so after
        this barrier every process takes the same branch (and makes the same barrier calls)."""
        self.state.wait_for_everyone()
        return path.exists()

    def iterate_dir(self, t: int) -> Path:
        return self.out / f"iter_{t}"

    def policy_path(self, t: int) -> str:
        """pi_t: the starting model for t = 1, else the iterate saved by iteration t - 1."""
        return self.base_model if t == 1 else str(self.iterate_dir(t - 1))

    def is_done(self, t: int) -> bool:
        return self.exists(self.iterate_dir(t) / ITERATE_FILE)

    # -------------------------------------------------------------- run identity

    def check_or_record_run(self) -> None:
        identity = {
            "method": self.method,
            "base_model": self.base_model,
            "num_iterations": self.args.num_iterations,
            "iteration_data": self.args.iteration_data,
            "history_iterations": self.args.history_iterations,
            "seed": self.args.seed,
            "train_rows": len(self.train_dataset),
            "train_data_hash": data_hash(self.train_dataset),
            # What changes the iterates: resuming with other values would mix two different runs.
            **{name: getattr(self.args, name) for name in RESULT_AFFECTING if hasattr(self.args, name)},
        }
        identity = json.loads(json.dumps(identity, default=str))  # as it reads back from the file (enums, tuples)
        recorded = read_json(self.out / RUN_FILE) if self.exists(self.out / RUN_FILE) else None
        if recorded is not None:
            changed = {k: (recorded.get(k), v) for k, v in identity.items() if recorded.get(k) != v}
            if changed:
                details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
                raise ValueError(
                    f"`output_dir` {str(self.out)!r} holds another run ({details}). Resume it with the same settings "
                    "or choose a new `output_dir`."
                )
            return
        self.on_main(atomic_write_json, self.out / RUN_FILE, {**identity, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})

    # -------------------------------------------------------------- data

    def parts(self) -> list[Dataset]:
        if self.args.iteration_data == "full":
            return [self.train_dataset] * self.args.num_iterations
        return split_into_parts(self.train_dataset, self.args.num_iterations, seed=self.args.data_seed or self.args.seed)

    def self_play_data(self, t: int, dataset: Dataset, name: str) -> Dataset:
        """`dataset` with `generated` responses from pi_t, generated once and then read back from disk."""
        path = self.out / "work" / f"iter_{t}" / name
        if not self.exists(path):
            policy = self.policy_path(t)
            kwargs = self.args.generation_kwargs
            desc = f"Iteration {t}: generating ({name})"
            if self.args.generation_backend == "vllm":
                dataset = add_generated_column(
                    dataset, policy, self.tokenizer, conversational=self.conversational, backend="vllm", desc=desc,
                    **kwargs,
                )
            else:
                init_kwargs = dict(self.args.model_init_kwargs or {})
                with _without_zero3_init():
                    model = create_model_from_path(policy, **init_kwargs)
                if model.device.type == "cpu" and self.state.device.type != "cpu":
                    model.to(self.state.device)
                dataset = add_generated_column(
                    dataset, model, self.tokenizer, conversational=self.conversational, desc=desc, **kwargs
                )
                del model
                _free_memory()

            def save():
                with atomic_directory(path) as tmp:
                    dataset.save_to_disk(str(tmp))

            self.on_main(save)
        return load_from_disk(str(path))

    def training_data(self, t: int, part: Dataset, name: str, history: bool = True) -> Dataset:
        """What iteration t trains (or evaluates) on, in the format its trainer expects. With `history`, the
        generated data of the `history_iterations` previous iterations is added (training data only)."""
        if not self.generates:
            return part
        data = self.self_play_data(t, part, name)
        earlier = range(max(1, t - self.args.history_iterations), t) if history else range(0)
        data = concatenate_datasets(
            [load_from_disk(str(self.out / "work" / f"iter_{s}" / name)) for s in earlier] + [data]
        )
        if self.method == "spin":  # SPIN is DPO with the data's chosen response against pi_t's own
            data = data.remove_columns("rejected").rename_column("generated", "rejected")
        return data

    # -------------------------------------------------------------- training

    def iteration_args(self, t: int) -> SelfPlayConfig:
        args = copy.copy(self.args)
        args.output_dir = str(self.out / "work" / f"iter_{t}" / "checkpoints")
        args.run_name = f"{self.args.run_name or self.out.name}-iter{t}"
        args.push_to_hub = False  # iterates are pushed by the loop once they are complete
        return args

    def train_iteration(self, t: int, part: Dataset) -> None:
        train = self.training_data(t, part, "generated")
        evaluation = self.training_data(t, self.eval_dataset, "generated_eval", history=False) if self.eval_dataset else None
        trainer_cls = SPACTrainer if self.method == "spac" else DPOTrainer
        trainer = trainer_cls(
            model=self.policy_path(t),
            args=self.iteration_args(t),
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=self.tokenizer,
            peft_config=self.peft_config,
            callbacks=self.callbacks,
        )
        checkpoints = Path(trainer.args.output_dir)
        checkpoint = last_complete_checkpoint(checkpoints)
        if checkpoint:
            logger.warning("Iteration %d: resuming training from %s", t, checkpoint)
            # Checkpoints cut off by a crash would confuse Trainer's rotation: remove them.
            cut_off = [p for p in checkpoints.glob("checkpoint-*") if _checkpoint_step(p) > _checkpoint_step(checkpoint)]
            self.on_main(lambda: [shutil.rmtree(p, ignore_errors=True) for p in cut_off])
            checkpoint = str(checkpoint)
        result = trainer.train(resume_from_checkpoint=checkpoint)
        self.save_iterate(t, trainer, result.metrics, train_rows=len(train), resumed_from=checkpoint)
        del trainer
        _free_memory()

    def save_iterate(self, t: int, trainer, metrics: dict, train_rows: int, resumed_from: str | None) -> None:
        """Write iterate t to a temporary folder on every process, then publish it with one rename."""
        final, tmp = self.iterate_dir(t), self.out / f".iter_{t}.tmp"
        self.on_main(shutil.rmtree, tmp, ignore_errors=True)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(model, "merge_and_unload"):  # PEFT: the next iteration starts from a plain model
            self.on_main(lambda: model.merge_and_unload().save_pretrained(str(tmp)))
        else:
            trainer.save_model(str(tmp))  # on every process: DeepSpeed and FSDP gather the weights here

        def publish():
            self.tokenizer.save_pretrained(str(tmp))
            record = {
                "iteration": t,
                "num_iterations": self.args.num_iterations,
                "method": self.method,
                "base_model": self.base_model,
                "trained_from": self.policy_path(t),
                "train_rows": train_rows,
                "resumed_from_checkpoint": Path(resumed_from).name if resumed_from else None,
                "train_metrics": metrics,
                "log_history": trainer.state.log_history,
            }
            if hasattr(trainer, "loss_settings"):  # theory issue (11): the lambda the loss used, e.g. lam * sqrt(n)
                record["loss"] = trainer.loss_settings
            atomic_write_json(tmp / ITERATE_FILE, record)
            self.write_card(tmp, t)
            if final.exists():  # without its marker (is_done was False): a leftover, never a finished iterate
                shutil.rmtree(final)
            tmp.rename(final)
            shutil.rmtree(self.out / "work" / f"iter_{t}" / "checkpoints", ignore_errors=True)

        self.on_main(publish)

    def write_card(self, folder: Path, t: int, eval_results: list[dict] | None = None) -> None:
        args = self.args
        hyperparameters = {
            "beta": args.beta,
            "learning_rate": args.learning_rate,
            "num_iterations": args.num_iterations,
            "iteration_data": args.iteration_data,
            "num_train_epochs": args.num_train_epochs,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "max_length": args.max_length,
            "seed": args.seed,
        }
        if self.method != "dpo":
            hyperparameters.update(
                max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                history_iterations=args.history_iterations,
            )
        if isinstance(args, SPACConfig) and self.method == "spac":
            hyperparameters.update(
                lam=args.lam, real_response=args.real_response, smoothing=args.smoothing,
                use_pessimism=args.use_pessimism,
            )
            # theory issue (11): lambda's scaling, and the value the loss used for this iterate (iterate.json)
            hyperparameters.update(lam_scaling=args.lam_scaling, pessimism_weight=args.pessimism_weight)
            loss = read_json(folder / ITERATE_FILE, {}).get("loss") or {}
            if "effective_lam" in loss:
                hyperparameters["effective_lam"] = loss["effective_lam"]
        save_model_card(
            folder,
            model_name=self.model_label(t),
            base_model=self.base_model,
            datasets=list(self.dataset_names or []),
            method=self.method,
            iteration=t,
            num_iterations=args.num_iterations,
            hyperparameters=hyperparameters,
            eval_results=eval_results,
        )

    # -------------------------------------------------------------- evaluation, Hub and summary

    def model_label(self, t: int) -> str:
        """Unique across runs, so that results of several runs can share one table: `default-spac-iter2`."""
        run = f"{self.out.parent.name}-{self.out.name}" if self.out.parent.name else self.out.name
        return f"{run}-base" if t == 0 else f"{run}-iter{t}"

    def result_rows(self, t: int, evaluation: dict | None) -> list[dict]:
        if not evaluation or not evaluation.get("results"):
            return []
        return results_dataset_rows(
            {"results": evaluation["results"], "n-shot": evaluation.get("n-shot", {})},
            model=self.model_label(t),
            method=self.method if t else None,
            iteration=t,
            base_model=self.base_model,
        )

    def hub_repo(self, suffix: str) -> str:
        return f"{self.args.hub_model_id or self.out.name}-{suffix}"

    def push(self, folder: Path, repo_id: str, repo_type: str = "model") -> None:
        url = push_folder(folder, repo_id, repo_type=repo_type, private=self.args.hub_private_repo,
                          token=self.args.hub_token)
        logger.warning("Pushed %s to %s", folder, url)

    def evaluate_once(self, path: str, t: int, record: Path) -> dict | None:
        """Evaluate a model unless its record exists; runs on the main process."""
        if self.evaluate is None:
            return None
        if not self.exists(record):
            def run():
                atomic_write_json(record, self.evaluate(path, t))

            self.on_main(run)
        return read_json(record)

    def average_iterates(self) -> str:
        """Uniform average of the iterates' weights, saved like an iterate."""
        path = self.out / "iter_average"
        if not self.exists(path / ITERATE_FILE):
            def average():
                from transformers import AutoModelForCausalLM

                iterates = [str(self.iterate_dir(t)) for t in range(1, self.args.num_iterations + 1)]
                model = AutoModelForCausalLM.from_pretrained(iterates[0], dtype=torch.float32)
                total = {k: v.clone() for k, v in model.state_dict().items()}
                for other in iterates[1:]:
                    state = AutoModelForCausalLM.from_pretrained(other, dtype=torch.float32).state_dict()
                    for k in total:
                        total[k] += state[k]
                model.load_state_dict({k: v / len(iterates) for k, v in total.items()})
                with atomic_directory(path) as tmp:
                    model.save_pretrained(str(tmp))
                    self.tokenizer.save_pretrained(str(tmp))
                    atomic_write_json(tmp / ITERATE_FILE, {"iteration": "average", "of": iterates})

            self.on_main(average)
        return str(path)

    def run(self) -> SelfPlayResult:
        self.check_or_record_run()
        parts = self.parts()
        evaluations = {0: self.evaluate_once(self.base_model, 0, self.out / "base_eval.json")}
        rows = self.result_rows(0, evaluations[0])
        for t in range(1, self.args.num_iterations + 1):
            if self.is_done(t):
                logger.warning("Iteration %d/%d: already done, reusing %s", t, self.args.num_iterations, self.iterate_dir(t))
            else:
                logger.warning("Iteration %d/%d (%s): training from %s", t, self.args.num_iterations, self.method, self.policy_path(t))
                self.train_iteration(t, parts[t - 1])
            evaluations[t] = self.evaluate_once(str(self.iterate_dir(t)), t, self.iterate_dir(t) / EVAL_FILE)
            iterate_rows = self.result_rows(t, evaluations[t])
            rows += iterate_rows
            if iterate_rows:
                self.on_main(self.write_card, self.iterate_dir(t), t, iterate_rows)
            if self.args.push_to_hub:  # idempotent: an unchanged folder makes no new commit
                self.on_main(self.push, self.iterate_dir(t), self.hub_repo(f"iter{t}"))
        iterates = [str(self.iterate_dir(t)) for t in range(1, self.args.num_iterations + 1)]
        summary = {
            "method": self.method,
            "base_model": self.base_model,
            "iterates": [
                {"iteration": t, "path": path, **read_json(Path(path) / ITERATE_FILE, {})}
                for t, path in enumerate(iterates, start=1)
            ],
            "evaluations": {str(t): e for t, e in evaluations.items() if e is not None},
        }
        for entry in summary["iterates"]:
            entry.pop("log_history", None)
        if self.args.average_iterates:
            summary["average"] = self.average_iterates()
        if rows:
            description = f"Evaluation of the {self.method} iterates of `{self.out.name}`, starting from {self.base_model}."
            self.on_main(save_results_dataset, rows, self.out / "results", dataset_name=f"{self.out.name}-results",
                         description=description)
            if self.args.push_to_hub:
                self.on_main(push_results_dataset, rows, self.hub_repo("results"), local_dir=self.out / "results",
                             description=description, private=self.args.hub_private_repo, token=self.args.hub_token)
        self.on_main(atomic_write_json, self.out / "summary.json", summary)
        return SelfPlayResult(output_dir=str(self.out), iterates=iterates, summary=summary)


def run_self_play(
    model: str,
    args: SelfPlayConfig,
    train_dataset: Dataset,
    *,
    method: str = "spac",
    eval_dataset: Dataset | None = None,
    processing_class: PreTrainedTokenizerBase | None = None,
    peft_config=None,
    callbacks=None,
    dataset_names: list[str] | None = None,
    evaluate: EvaluateFn | None = None,
) -> SelfPlayResult:
    """Run T iterations of self-play preference optimisation and return the iterates.

    Iteration t loads pi_t (the starting `model` for t = 1, else `output_dir/iter_<t-1>`), generates one response per
    prompt of its part of the data (SPAC, SPIN), trains from pi_t with pi_t as the reference, and saves
    `output_dir/iter_<t>`. Methods:
    - `"spac"`: `SPACTrainer` on (chosen, rejected, generated); needs a `SPACConfig`.
    - `"spin"`: TRL's `DPOTrainer` on (chosen = the data's chosen response, rejected = the generated one).
    - `"dpo"`: TRL's `DPOTrainer` on (chosen, rejected): iterative DPO, or plain DPO with `num_iterations=1` and
      `iteration_data="full"`.

    Args:
        model: path or Hub id of the starting model pi_1 (each iteration reloads its starting point from disk).
        args: the run's configuration; `output_dir` holds the whole run (see the module docstring).
        dataset_names: data set names for the model cards.
        evaluate: optional `evaluate(model_path, iteration) -> dict`, run once per model (iteration 0 is the
            starting model), its results saved beside the iterate and added to the model card.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    if method == "spac" and not isinstance(args, SPACConfig):
        raise TypeError(f"method='spac' needs a `SPACConfig`, got `{type(args).__name__}`.")
    if not isinstance(args, SelfPlayConfig):
        raise TypeError(f"`args` must be a `SelfPlayConfig` (or `SPACConfig`), got `{type(args).__name__}`.")
    if not isinstance(model, str):
        raise TypeError(
            "`model` must be a path or Hub id: every iteration reloads its starting point from disk. Save an "
            "in-memory model with `save_pretrained` first."
        )
    formats = {}
    for name, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
        if dataset is None:
            continue
        if not isinstance(dataset, Dataset):
            raise TypeError(f"{name}: the loop needs a map-style `datasets.Dataset`, got `{type(dataset).__name__}`.")
        formats[name] = validate_preference_dataset(dataset, name)
        if "generated" in dataset.column_names and method != "dpo":
            raise ValueError(f"{name}: the loop generates the `generated` responses itself (y ~ pi_t); drop that column.")
    if method == "spac" and not args.use_pessimism:
        logger.warning("use_pessimism=False: SPAC without its pessimism term is iterative DPO; consider method='dpo'.")
    if args.push_to_hub:  # fail before any compute, not after the first iteration
        base = args.hub_model_id or Path(args.output_dir).name
        for suffix in [f"iter{t}" for t in range(1, args.num_iterations + 1)] + ["results"]:
            check_repo_id(f"{base}-{suffix}")
    if processing_class is None:
        processing_class = AutoTokenizer.from_pretrained(model)
    if processing_class.pad_token is None:
        processing_class.pad_token = processing_class.eos_token
    train_dataset = with_explicit_prompt(train_dataset)
    eval_dataset = with_explicit_prompt(eval_dataset) if eval_dataset is not None else None
    run = _SelfPlayRun(method, model, args, train_dataset, eval_dataset, processing_class, peft_config, callbacks,
                       dataset_names, evaluate, conversational=formats["train_dataset"] == "conversational")
    return run.run()

