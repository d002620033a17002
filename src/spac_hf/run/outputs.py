"""What a `run_self_play` run publishes besides the iterates' weights: evaluations, model cards, the results dataset,
pushes to the Hub, the average of the iterates and the summary.

Every function here follows the rank rule of `folder.py`: every process calls it, the main process alone writes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.logging import get_logger

from ..hub import push_folder, push_results_dataset, results_dataset_rows, save_model_card, save_results_dataset
from ..hub.card_content import paired_samples
from ..utils import atomic_directory, atomic_write_json, kill_point, read_json
from .folder import ITERATE_FILE, RunFolder, main_only
from .integrity import read_json_cache
from .preflight import ValidatedRun


logger = get_logger(__name__)


@dataclass(frozen=True)
class RunOutputs:
    """The writer of everything but the iterates' weights and the generated data, over the run's state (shared by
    reference with the loop: `ValidatedRun`)."""

    run: ValidatedRun

    @property
    def folder(self) -> RunFolder:
        return self.run.folder

    @property
    def args(self) -> Any:  # SelfPlayConfig
        return self.run.args

    # -------------------------------------------------------------- iterates

    @main_only
    def publish_iterate(self, t: int, record: dict) -> None:
        """Move the staged iterate t, with its record and card, into place with one rename; drop its checkpoints."""
        staging, final = self.folder.staging(t), self.folder.iterate(t)
        kill_point("iterate.weights_written")
        self.run.tokenizer.save_pretrained(str(staging))
        atomic_write_json(staging / ITERATE_FILE, record)
        self.write_card(staging, t)
        if final.exists():  # without its marker (is_done was False): a leftover, never a finished iterate
            shutil.rmtree(final)
        kill_point("iterate.before_rename")
        staging.rename(final)
        kill_point("iterate.after_rename")  # its checkpoints still there: `remove_leftovers` deletes them on resume
        shutil.rmtree(self.folder.checkpoints(t), ignore_errors=True)

    def write_card(
        self, folder: Path, t: int, eval_results: list[dict] | None = None, samples: list[dict] | None = None
    ) -> None:
        """Model card of iterate t in `folder`: with its evaluation rows and samples when given (values computed by
        every process before this main-only write: nothing here may wait for the other processes)."""
        method = self.run.method
        hyperparameters = {k: getattr(self.args, k) for k in method.card_hyperparameters if hasattr(self.args, k)}
        loss = read_json(folder / ITERATE_FILE, {}).get("loss") or {}
        if "effective_lam" in loss:  # lambda as the loss used it for this iterate (lam * sqrt(n) with sqrt_n)
            hyperparameters["effective_lam"] = loss["effective_lam"]
        # Where a reader finds the model: its Hub repo when the run pushes, else the iterate's own folder, by its full
        # path so that the card's usage snippet runs from anywhere (a local card stays in the run folder; what is
        # committed or pushed names no machine path).
        where = self.folder.repo_id(f"iter{t}") if self.args.push_to_hub else str(self.folder.iterate(t))
        save_model_card(
            folder,
            repo_id=where,
            chat=bool(getattr(self.run.tokenizer, "chat_template", None)),
            samples=samples,
            model_name=self.folder.model_label(t),
            base_model=self.run.base_model,
            datasets=list(self.run.dataset_names),
            method=method.name,
            iteration=t,
            num_iterations=self.args.num_iterations,
            hyperparameters=hyperparameters,
            eval_results=eval_results,
        )

    def evaluation(self, t: int) -> dict | None:
        """The evaluation of model t (0: the starting model), computed once on the main process, then read back by
        every process. Every process calls it (it holds barriers), never from inside a main-only step."""
        if self.run.evaluate is None:
            return None
        main_only(read_json_cache)(self.folder.eval_record(t), "the evaluation")  # damaged: evaluated again
        if not self.folder.exists(self.folder.eval_record(t)):
            self._save_evaluation(t)
        return read_json(self.folder.eval_record(t))

    @main_only
    def _save_evaluation(self, t: int) -> None:
        atomic_write_json(self.folder.eval_record(t), self.run.evaluate(self.folder.model(t), t))

    def result_rows(self, t: int, evaluation: dict | None) -> list[dict]:
        if not evaluation or not evaluation.get("results"):
            return []
        return results_dataset_rows(
            {"results": evaluation["results"], "n-shot": evaluation.get("n-shot", {})},
            model=self.folder.model_label(t),
            method=self.run.method.name if t else None,
            iteration=t,
            base_model=self.run.base_model,
        )

    @main_only
    def finish_iterate(self, t: int, base_evaluation: dict | None, evaluation: dict | None) -> None:
        """Add the evaluation to iterate t's card (with samples beside the starting model's), and push the iterate
        when asked (an unchanged folder makes no new commit, so a resumed run pushes again safely). The evaluations
        come as values: every process read them before this main-only step."""
        rows = self.result_rows(t, evaluation)
        if rows:
            self.write_card(self.folder.iterate(t), t, rows, paired_samples(base_evaluation, evaluation))
        if self.args.push_to_hub:
            url = push_folder(
                self.folder.iterate(t),
                self.folder.repo_id(f"iter{t}"),
                private=self.args.hub_private_repo,
                token=self.args.hub_token,
            )
            logger.info("Pushed %s to %s", self.folder.iterate(t), url)

    # -------------------------------------------------------------- the run

    @main_only
    def publish_results(self, rows: list[dict]) -> None:
        name, run = self.folder.root.name, self.run
        description = f"Evaluation of the {run.method.label} iterates of `{name}`, starting from {run.base_model}."
        save_results_dataset(rows, self.folder.results, dataset_name=f"{name}-results", description=description)
        if self.args.push_to_hub:
            push_results_dataset(
                rows,
                self.folder.repo_id("results"),
                local_dir=self.folder.results,
                description=description,
                private=self.args.hub_private_repo,
                token=self.args.hub_token,
            )

    def average_iterates(self) -> str:
        """Uniform average of the iterates' weights, saved like an iterate."""
        if not self.folder.exists(self.folder.average / ITERATE_FILE):
            self._save_average()
        return str(self.folder.average)

    @main_only
    def _save_average(self) -> None:
        from transformers import AutoModelForCausalLM

        iterates = [str(self.folder.iterate(t)) for t in range(1, self.args.num_iterations + 1)]
        model = AutoModelForCausalLM.from_pretrained(iterates[0], dtype=torch.float32)
        total = {k: v.clone() for k, v in model.state_dict().items()}
        for other in iterates[1:]:
            state = AutoModelForCausalLM.from_pretrained(other, dtype=torch.float32).state_dict()
            for k in total:
                total[k] += state[k]
        model.load_state_dict({k: v / len(iterates) for k, v in total.items()})
        with atomic_directory(self.folder.average) as tmp:
            model.save_pretrained(str(tmp))
            self.run.tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / ITERATE_FILE, {"iteration": "average", "of": iterates})

    def summary(self, evaluations: dict[int, dict | None]) -> dict[str, Any]:
        """The run's summary (written to `summary.json`), after the average and the results dataset when asked."""
        iterates = []
        for t in range(1, self.args.num_iterations + 1):
            record = read_json(self.folder.iterate_record(t), {})
            record.pop("log_history", None)
            iterates.append({"iteration": t, "path": str(self.folder.iterate(t)), **record})
        summary = {
            "method": self.run.method.name,
            "base_model": self.run.base_model,
            "iterates": iterates,
            "evaluations": {str(t): e for t, e in evaluations.items() if e is not None},
        }
        if self.args.average_iterates:
            summary["average"] = self.average_iterates()
        rows = [row for t, evaluation in sorted(evaluations.items()) for row in self.result_rows(t, evaluation)]
        if rows:
            self.publish_results(rows)
        main_only(atomic_write_json)(self.folder.summary, summary)
        return summary
