"""The outer loop: T iterations of generate y ~ pi_t, train from pi_t, save pi_{t+1}; for every method of `methods.py`.

Iteration t:
1. pi_t is the starting model (t = 1) or iterate t - 1, loaded from disk;
2. when the method generates, its part of the data gets one response y ~ pi_t per prompt, saved once;
3. the method's record turns that into its trainer's data (plus `history_iterations` earlier generated parts);
4. its trainer trains from pi_t with pi_t as the reference, resuming from the last complete checkpoint;
5. iterate t is published with its record and model card, then evaluated and pushed when asked (`outputs.py`).

The run folder (its layout, identity and checkpoints) and the rank rule that lets several processes run this loop
(every process enters every step in the same order; only the main process writes, inside `main_only`) are in
`folder.py`. A run killed at any moment restarts at the first unfinished step: finished iterates and generated
data are reused, and an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.logging import get_logger
from datasets import Dataset, concatenate_datasets, load_from_disk
from transformers import PreTrainedTokenizerBase

from ..config import SelfPlayConfig
from ..generation import add_self_play_column, free_memory
from ..utils import atomic_directory, kill_point
from .folder import (
    RunFolder,
    barrier,
    clean_up_after_a_kill,
    last_complete_checkpoint,
    main_only,
    record_run,
    remove_checkpoints_after,
)
from .integrity import load_cached_dataset
from .outputs import RunOutputs
from .preflight import EvaluateFn, ValidatedRun, validate_run


__all__ = ["EvaluateFn", "SelfPlayResult", "last_complete_checkpoint", "run_self_play"]

logger = get_logger(__name__)


@dataclass
class SelfPlayResult:
    output_dir: str
    iterates: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _SelfPlayLoop:
    """The steps of one run over its state (`run`, built by `validate_run` and shared by reference with `outputs`,
    which publishes). Every process holds one."""

    run: ValidatedRun
    outputs: RunOutputs

    @property
    def folder(self) -> RunFolder:
        return self.run.folder

    @property
    def args(self) -> SelfPlayConfig:
        return self.run.args

    # -------------------------------------------------------------- data

    def self_play_data(self, t: int, dataset: Dataset, name: str) -> Dataset:
        """`dataset` with `generated` responses from pi_t, generated once and then read back from disk."""
        path = self.folder.generated(t, name)
        # A damaged copy is discarded (with a warning naming it) by the main process, so every process regenerates.
        main_only(load_cached_dataset)(path, f"the generated responses of iteration {t}")
        if not self.folder.exists(path):
            generated = add_self_play_column(
                dataset,
                self.run.tokenizer,
                self.args,
                conversational=self.run.conversational,
                policy_path=self.folder.policy(t),
                name=f"iteration {t}, {name}",
            )
            _save_dataset(generated, path)
        return load_from_disk(str(path))

    def training_data(self, t: int, part: Dataset, name: str, history: bool = True) -> Dataset:
        """What iteration t trains (or evaluates) on, in its trainer's format. With `history`, the generated data of
        the `history_iterations` previous iterations is added (training data only)."""
        if not self.run.generates:
            return self.run.method.build_training_data(part)
        earlier = range(max(1, t - self.args.history_iterations), t) if history else range(0)
        data = [self.self_play_data(s, self.run.parts[s - 1], name) for s in earlier]
        return self.run.method.build_training_data(concatenate_datasets([*data, self.self_play_data(t, part, name)]))

    # -------------------------------------------------------------- training

    def train_iteration(self, t: int, part: Dataset) -> None:
        train = self.training_data(t, part, "generated")
        evaluation = None
        if self.run.eval_dataset is not None:
            evaluation = self.training_data(t, self.run.eval_dataset, "generated_eval", history=False)
        args = copy.copy(self.args)
        args.output_dir = str(self.folder.checkpoints(t))
        args.run_name = f"{self.args.run_name or self.folder.root.name}-iter{t}"
        args.push_to_hub = False  # iterates are pushed by the loop once they are complete
        trainer = self.run.method.trainer_class(
            model=self.folder.policy(t),
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=self.run.tokenizer,
            peft_config=self.run.peft_config,
            callbacks=list(self.run.callbacks) or None,
        )
        checkpoint = last_complete_checkpoint(self.folder.checkpoints(t))
        if checkpoint:
            logger.info("Iteration %d: resuming training from %s", t, checkpoint)
            remove_checkpoints_after(checkpoint)
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        self.save_iterate(t, trainer, result.metrics, train_rows=len(train), resumed_from=checkpoint)
        del trainer
        free_memory()

    def save_iterate(self, t: int, trainer, metrics: dict, train_rows: int, resumed_from: Path | None) -> None:
        """Write iterate t to a staging folder, then publish it with one rename."""
        staging = self.folder.staging(t)
        main_only(shutil.rmtree)(staging, ignore_errors=True)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(model, "merge_and_unload"):  # PEFT: the next iteration starts from a plain model
            _save_merged(model, staging)
        else:
            trainer.save_model(str(staging))  # on every process: DeepSpeed and FSDP gather the weights here
        record = {
            "iteration": t,
            "num_iterations": self.args.num_iterations,
            "method": self.run.method.name,
            "base_model": self.run.base_model,
            "trained_from": self.folder.policy(t),
            "train_rows": train_rows,
            "resumed_from_checkpoint": resumed_from.name if resumed_from else None,
            "train_metrics": metrics,
            "log_history": trainer.state.log_history,
        }
        if hasattr(trainer, "loss_settings"):  # the lambda the loss used, e.g. lam * sqrt(n) with lam_scaling=sqrt_n
            record["loss"] = trainer.loss_settings
        self.outputs.publish_iterate(t, record)

    def iterations(self) -> SelfPlayResult:
        parts = self.run.parts
        evaluations = {0: self.outputs.evaluation(0)}
        num_iterations = self.args.num_iterations
        for t in range(1, num_iterations + 1):
            if self.folder.is_done(t):
                logger.info("Iteration %d/%d: already done, reusing %s", t, num_iterations, self.folder.iterate(t))
            else:
                policy = self.folder.policy(t)
                logger.info("Iteration %d/%d (%s): training from %s", t, num_iterations, self.run.method.name, policy)
                self.train_iteration(t, parts[t - 1])
            evaluations[t] = self.outputs.evaluation(t)
            self.outputs.finish_iterate(t, evaluations[0], evaluations[t])
        summary = self.outputs.summary(evaluations)
        iterates = [str(self.folder.iterate(t)) for t in range(1, num_iterations + 1)]
        return SelfPlayResult(output_dir=str(self.folder.root), iterates=iterates, summary=summary)


@main_only
def _save_merged(model, path: Path) -> None:
    model.merge_and_unload().save_pretrained(str(path))


@main_only
def _save_dataset(dataset: Dataset, path: Path) -> None:
    kill_point("generated.before_save")
    with atomic_directory(path) as tmp:
        dataset.save_to_disk(str(tmp))


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
    `output_dir/iter_<t>`. Methods (`spac_hf.methods.METHODS`):
    - `"spac"`: `SPACTrainer` on (chosen, rejected, generated); needs a `SPACConfig`.
    - `"spin"`: TRL's `DPOTrainer` on (chosen = the data's chosen response, rejected = the generated one).
    - `"dpo"` (or `"iterative_dpo"`): TRL's `DPOTrainer` on (chosen, rejected). With `num_iterations=1` the run is
      plain DPO, recorded as `"dpo"`; with more it is iterative DPO, recorded as `"iterative_dpo"`.

    Args:
        model: path or Hub id of the starting model pi_1 (each iteration reloads its starting point from disk).
        args: the run's configuration; `output_dir` holds the whole run (see `spac_hf.run.folder`).
        dataset_names: data set names for the model cards.
        evaluate: optional `evaluate(model_path, iteration) -> dict`, run once per model (iteration 0 is the
            starting model), its results saved beside the iterate and added to the model card.
    """
    state = PartialState()  # the process group and accelerate's logger, before anything else
    # Everything is checked before any generation, training step or file write (`spac_hf.run.preflight`); the result is
    # the run's state, shared by reference from here on.
    run = validate_run(
        model, args, train_dataset, method=method, eval_dataset=eval_dataset, processing_class=processing_class,
        peft_config=peft_config, world_size=state.num_processes, callbacks=callbacks, dataset_names=dataset_names,
        evaluate=evaluate,
    )  # fmt: skip
    # Every process has read the run folder (is this a resume?) before the main process writes into it: otherwise a
    # slow process could see the record a fast main process just wrote, take the resume branch and skip a barrier.
    barrier("run_self_play: every process has read the run folder")
    if run.method.name == "spac" and not args.use_pessimism:
        logger.warning("use_pessimism=False: SPAC without its pessimism term is iterative DPO; consider method='dpo'.")
    # Only now is the run recorded (or recognised as the one being resumed), and what a kill left behind removed.
    if not run.resuming:
        record_run(run.folder, run.identity)
    clean_up_after_a_kill(run.folder, args.num_iterations)
    return _SelfPlayLoop(run, RunOutputs(run)).iterations()
