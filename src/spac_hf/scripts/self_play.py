"""What `spac_hf.scripts.{spac,dpo,spin}` share: parse, load, run the loop, report. The scripts only pick the method.

Supports: every method of `spac_hf.methods` through `run_self_play`, standard and conversational data from a local
folder, a Hub id or a `datasets:` mixture, LoRA/QLoRA through TRL's `ModelConfig`, and a programmatic true reward
(`--true_reward_task reviews`) evaluated on the starting model and every iterate. Assumes: the whole data set fits on
disk (no streaming). Relative paths in a YAML are found from the current directory, else from the YAML's folder up.

Parsing is TRL's: `TrlParser((SelfPlayScriptArguments, <config>, ModelConfig, DatasetMixtureConfig))`, so a YAML given
with `--config` sets defaults and command-line flags override them. A script run with no argument at all runs its
embedded default config (`spac_hf/default/<method>.yaml`, shipped with the package): a complete run on CPU, on the
shipped model and data.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from trl import (
    DatasetMixtureConfig,
    ModelConfig,
    ScriptArguments,
    TrlParser,
    get_dataset,
    get_peft_config,
    get_quantization_config,
)

from spac_hf.config import OptionError, SelfPlayConfig
from spac_hf.data import drop_long_prompts, normalize_prompt_column
from spac_hf.methods import get_method
from spac_hf.run.loop import SelfPlayResult, run_self_play
from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.scripts.console import console_logging, library_defaults, quiet_libraries
from spac_hf.scripts.script_utils import save_figure
from spac_hf.tasks.evaluators import evaluator_of
from spac_hf.tasks.registry import TASKS, get_task
from spac_hf.utils import atomic_write_text


logger = logging.getLogger(__name__)

TRUE_REWARD_TASKS = tuple(TASKS)  # spac_hf.tasks.registry: one record per task
Z95 = 1.959964  # the 95% normal interval from a standard error: the one uncertainty the reports show


@dataclass
class SelfPlayScriptArguments(ScriptArguments):
    """TRL's script arguments (`dataset_name`, `dataset_train_split`, ...), data limits and the reward evaluation."""

    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Use only the first N training rows (after shuffling with the seed); for quick runs."},
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Use only the first N rows of the test split for the evaluation loss."},
    )
    drop_long_prompts: bool = field(
        default=False,
        metadata={
            "help": "Drop rows whose prompt alone is at least `max_length` tokens (they are an error otherwise: a "
            "silently shrinking data set would change the per-iteration parts)."
        },
    )
    true_reward_task: str | None = field(
        default=None,
        metadata={
            "help": "A task with a programmatic reward (spac_hf.tasks.registry: `reviews`, the shipped task; "
            "`instruction_following`, IFEval's checkers on real prompts): the starting model and every iterate are "
            "scored by their mean true reward on the test split's prompts.",
            "choices": list(TRUE_REWARD_TASKS),
        },
    )
    true_reward_prompts: int = field(
        default=200,
        metadata={"help": "Number of held-out prompts the true reward is averaged over."},
    )
    true_reward_samples: int = field(
        default=2,
        metadata={"help": "Sampled responses per prompt for the true reward."},
    )
    true_reward_max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Longest response scored by the true reward (default: the task's own)."},
    )

    def __post_init__(self):
        # Checked at parsing, with the training options: a bad count fails before any work, one line per option.
        counts = {
            "max_train_samples": self.max_train_samples,
            "max_eval_samples": self.max_eval_samples,
            "true_reward_prompts": self.true_reward_prompts,
            "true_reward_samples": self.true_reward_samples,
            "true_reward_max_new_tokens": self.true_reward_max_new_tokens,
        }
        problems = [(name, value, ">= 1") for name, value in counts.items() if value is not None and value < 1]
        if problems:
            raise OptionError(problems)
        if hasattr(super(), "__post_init__"):
            super().__post_init__()


def parse_recipe_args(
    config_class: type[SelfPlayConfig], default_config: str | Path, argv: list[str] | None = None, method: str = ""
):
    """Parse `argv` (default: the command line). The embedded `default_config` is the base config unless `--config`
    names another; any option overrides it (`spac_hf.scripts.arguments`: grouped `--help`, "did you mean").
    Returns (script_args, training_args, model_args, dataset_args)."""
    from spac_hf.scripts.arguments import parse

    parser = TrlParser((SelfPlayScriptArguments, config_class, ModelConfig, DatasetMixtureConfig))
    argv = sys.argv[1:] if argv is None else list(argv)
    label = get_method(method).label if method else config_class.__name__
    prog = f"spac-hf train --method {get_method(method).paper.key}" if method else "recipe"
    with library_defaults():  # the config's defaults as on a fresh start, whatever an earlier run in this process did
        return parse(parser, argv, Path(default_config), label, prog)


def _check_local_path(path: str, what: str) -> None:
    """A path that is not a Hub id must exist: say so now, not after a failed download."""
    if Path(path).exists():
        return
    try:
        validate_repo_id(path)
    except HFValidationError:
        raise FileNotFoundError(
            f"{what} {path!r} is neither an existing local path nor a Hub id. Relative paths are resolved from the "
            f"current directory ({Path.cwd()}), then from the YAML's folder and the folders above it."
        ) from None


def load_preference_data(script_args, dataset_args, seed: int) -> tuple[Dataset, Dataset | None]:
    """The train and test splits, as `datasets` mixture (`datasets:` in the YAML) or `dataset_name`."""
    if script_args.dataset_streaming or dataset_args.streaming:
        raise ValueError("Self-play needs the whole data set on disk (it is split and generated on): no streaming.")
    if dataset_args.datasets:
        data = get_dataset(dataset_args)
    elif script_args.dataset_name:
        _check_local_path(script_args.dataset_name, "dataset_name")
        data = load_dataset(script_args.dataset_name, name=script_args.dataset_config)
    else:
        raise ValueError("No data: set `dataset_name` or a `datasets:` mixture.")
    if not isinstance(data, DatasetDict) or script_args.dataset_train_split not in data:
        splits = list(data) if isinstance(data, DatasetDict) else []
        raise ValueError(f"No train split {script_args.dataset_train_split!r} in the data; splits: {splits}.")
    train = normalize_prompt_column(data[script_args.dataset_train_split])
    test = data.get(script_args.dataset_test_split)
    test = normalize_prompt_column(test) if test is not None else None
    if script_args.max_train_samples:
        train = train.shuffle(seed=seed).select(range(min(script_args.max_train_samples, len(train))))
    if test is not None and script_args.max_eval_samples:
        test = test.select(range(min(script_args.max_eval_samples, len(test))))
    return train, test


def true_reward_evaluator(script_args, test: Dataset, tokenizer, seed: int):
    """`evaluate(model_path, iteration)` scoring a model by its task's true reward on held-out prompts: the task
    record's evaluator (`spac_hf.tasks.registry`)."""
    if test is None:
        raise ValueError(
            f"`true_reward_task` needs a test split ({script_args.dataset_test_split!r}) for its prompts."
        )
    return evaluator_of(get_task(script_args.true_reward_task))(
        test,
        tokenizer,
        num_prompts=script_args.true_reward_prompts,
        num_samples=script_args.true_reward_samples,
        max_new_tokens=script_args.true_reward_max_new_tokens,
        seed=seed,
    )


def run_recipe(method: str, argv: list[str] | None = None) -> SelfPlayResult:
    """What `spac-hf train --method <method>` runs: its arguments over the base config `spac_hf/default/<method>.yaml`
    (or the one `--config` names), then `main`."""
    record = get_method(method)
    default_config = EMBEDDED_DEFAULT / f"{record.paper.key}.yaml"
    return main(method, *parse_recipe_args(record.config_class, default_config, argv, method=method))


def main(method: str, script_args, training_args, model_args, dataset_args) -> SelfPlayResult:
    """Load, run `run_self_play` for `method`, and write the report next to the iterates."""
    from transformers import AutoTokenizer

    # Progress at INFO, from the main process only (the library logs through accelerate's logger).
    console_logging()
    logger.setLevel(logging.INFO)
    quiet_libraries()  # spac_hf.scripts.console: no internal bars, no warnings the user cannot act on

    _check_local_path(model_args.model_name_or_path, "model_name_or_path")
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:  # QLoRA: each process keeps its whole quantized model on its own GPU
        from accelerate import PartialState

        model_init_kwargs.update(
            quantization_config=quantization_config, device_map={"": PartialState().local_process_index}
        )
    training_args.model_init_kwargs = model_init_kwargs

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train, test = load_preference_data(script_args, dataset_args, training_args.seed)
    if script_args.drop_long_prompts and training_args.max_length is not None:
        before = len(train), len(test) if test is not None else 0
        train = drop_long_prompts(train, tokenizer, training_args.max_length)
        test = drop_long_prompts(test, tokenizer, training_args.max_length) if test is not None else None
        logger.info(
            "Dropped the rows whose prompt fills max_length: %d of %d training rows, %d of %d test rows",
            before[0] - len(train),
            before[0],
            before[1] - (len(test) if test is not None else 0),
            before[1],
        )
    evaluate = None
    if script_args.true_reward_task:
        evaluate = true_reward_evaluator(script_args, test, tokenizer, training_args.seed)
    dataset_names = [d.path for d in dataset_args.datasets] or [script_args.dataset_name]

    result = run_self_play(
        model_args.model_name_or_path,
        training_args,
        train,
        method=method,
        eval_dataset=test if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        dataset_names=dataset_names,
        evaluate=evaluate,
    )
    if training_args.process_index == 0:
        report = write_report(result)
        print(report, flush=True)
    return result


def write_report(result: SelfPlayResult) -> str:
    """`summary.md` (and `true_reward.png` when there are evaluations) in the run folder; returns the Markdown."""
    out = Path(result.output_dir)
    summary, iterates = result.summary, result.iterates
    evaluations = summary.get("evaluations", {})
    tasks = _tasks(evaluations)
    label = get_method(summary["method"]).label
    lines = [
        f"# {label}: {len(iterates)} iteration{'s' if len(iterates) != 1 else ''} from `{summary['base_model']}`",
        "",
        f"Run folder `{out}`. Iterates: {', '.join(f'`{Path(p).name}`' for p in iterates)}.",
        "",
        "| " + " | ".join(["model", "train loss", "train rows", *(f"{t} ± 95% CI" for t in tasks)]) + " |",
        "|" + "---|" * (3 + len(tasks)),
    ]
    rows = [("starting model", None, None, evaluations.get("0"))]
    rows += [
        (
            f"iter_{it['iteration']}",
            it.get("train_metrics", {}).get("train_loss"),
            it.get("train_rows"),
            evaluations.get(str(it["iteration"])),
        )
        for it in summary["iterates"]
    ]
    for name, loss, n, evaluation in rows:
        cells = [name, f"{loss:.4f}" if loss is not None else "", str(n or "")]
        cells += [_format_score(evaluation, task) for task in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    if evaluations:
        _plot_evaluations(evaluations, out / "true_reward.png", get_method(summary["method"]).label)
        lines += ["", "![evaluation by iteration](true_reward.png)"]
    lines += ["", "## Where everything is", "", *output_locations(out, iterates, bool(evaluations))]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "summary.md", text)
    return text


def output_locations(out: Path, iterates: list[str], evaluated: bool) -> list[str]:
    """One line per output of the run, with its path, for the summary the run prints."""
    lines = [
        f"- iterate {Path(p).name.removeprefix('iter_')}: `{p}` (model, tokenizer, model card `README.md`)"
        for p in iterates
    ]
    lines.append(f"- this summary: `{out / 'summary.md'}`; every number: `{out / 'summary.json'}`")
    if evaluated:
        lines.append(f"- the plot: `{out / 'true_reward.png'}`; the results dataset: `{out / 'results'}`")
    runs = sorted(out.glob("work/iter_*/checkpoints/runs")) + sorted(out.glob("runs"))
    if runs:
        lines.append(f"- training metrics for `report_to` trackers: `{runs[0].parent}` (e.g. `tensorboard --logdir`)")
    return lines


def _tasks(evaluations: dict) -> list[str]:
    return sorted({task for e in evaluations.values() for task in e.get("results", {})})


def _format_score(evaluation: dict | None, task: str) -> str:
    if not evaluation or task not in evaluation.get("results", {}):
        return ""
    metrics = evaluation["results"][task]
    text = f"{metrics['mean']:.3f} ± {Z95 * metrics.get('mean_stderr', float('nan')):.3f}"
    if evaluation.get("degenerate_fraction"):
        text += f" ({evaluation['degenerate_fraction']:.0%} degenerate)"
    return text


def _plot_evaluations(evaluations: dict, path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for task in _tasks(evaluations):
        points = sorted((int(t), e["results"][task]) for t, e in evaluations.items() if task in e.get("results", {}))
        xs = [t for t, _ in points]
        means = [m["mean"] for _, m in points]
        errors = [Z95 * m.get("mean_stderr", 0.0) for _, m in points]
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=task)
    ax.set_xlabel("iteration (0 = starting model)")
    ax.set_ylabel("mean true reward")
    ax.set_title(f"{label}: held-out true reward by iteration")
    ax.set_xticks(sorted(int(t) for t in evaluations))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="error bars: 95% CI", title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
