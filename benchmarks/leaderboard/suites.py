"""The two Open LLM Leaderboard suites: which lm-eval group runs, and which number of its output each column shows.

The lm-eval side (tasks, shots, few-shot splits) is in YAML: v1 is `tasks/open_llm_leaderboard_v1.yaml` (the
leaderboard's per-task shots), v2 is lm-eval's own `leaderboard` group. This file only says how to read the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lm_eval


TASKS_DIR = Path(__file__).resolve().parent / "tasks"
LM_EVAL_TASKS = Path(lm_eval.__file__).resolve().parent / "tasks"


@dataclass(frozen=True)
class Column:
    """One column of the comparison: a task or group of the lm-eval output and its headline metric."""

    key: str  # column id in the CSV and the plot file name
    label: str  # header in the Markdown table and the plot title
    task: str  # name in lm-eval's `results`
    metrics: tuple[str, ...]  # lm-eval result keys ("<metric>,<filter>"); several are averaged into one number
    shots: int | None = None  # the leaderboard's shots, for the labels (None: the task's own, several values)
    in_average: bool = True  # False for a breakdown of another column (HHH's categories)


@dataclass(frozen=True)
class Suite:
    name: str
    group: str  # the lm-eval group to evaluate
    description: str
    columns: tuple[Column, ...]
    # Folders of lm-eval's built-in tasks the group needs. Indexing only these takes 0.1 s instead of the 15 s of
    # lm-eval's full index; the test suite checks that the full index resolves the group to the same tasks.
    builtin_dirs: tuple[str, ...]
    tasks_dir: Path | None = None  # where the group YAML is (None: built in)
    # For a suite whose YAML is written at run time (it names this machine's lm-eval): returns the folder.
    make_tasks_dir: Callable[[], Path] | None = None
    # What the numbers are: "exact" (the leaderboard's tasks on its data), "real-other-source" or "fixture".
    data_note: str = ""

    def task_paths(self, tasks_dir: Path | None = None) -> list[Path]:
        """`include_path` for lm-eval's `TaskManager`: the built-in folders, then the suite's (or a replacement)."""
        paths = [LM_EVAL_TASKS / d for d in self.builtin_dirs]
        extra = tasks_dir or self.tasks_dir or (self.make_tasks_dir() if self.make_tasks_dir else None)
        return paths + ([Path(extra)] if extra else [])

    @property
    def averaged(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.in_average)


V1 = Suite(
    name="v1",
    group="open_llm_leaderboard_v1",
    description="Open LLM Leaderboard v1: ARC-Challenge 25-shot, HellaSwag 10, MMLU 5, TruthfulQA mc2 0, "
    "Winogrande 5, GSM8K 5",
    columns=(
        Column("arc", "ARC", "arc_challenge", ("acc_norm,none",), 25),
        Column("hellaswag", "HellaSwag", "hellaswag", ("acc_norm,none",), 10),
        Column("mmlu", "MMLU", "mmlu_v1", ("acc,none",), 5),
        Column("truthfulqa", "TruthfulQA", "truthfulqa_mc2", ("acc,none",), 0),
        Column("winogrande", "Winogrande", "winogrande", ("acc,none",), 5),
        Column("gsm8k", "GSM8K", "gsm8k", ("exact_match,strict-match",), 5),
    ),
    builtin_dirs=("arc", "hellaswag", "mmlu/default", "truthfulqa", "winogrande", "gsm8k"),
    tasks_dir=TASKS_DIR,
)

# v2 as lm-eval's `leaderboard` group runs it: raw scores, not the leaderboard's rescaling above the random baseline.
# IFEval is the mean of its prompt- and instruction-level strict accuracies, as on the leaderboard.
V2 = Suite(
    name="v2",
    group="leaderboard",
    description="Open LLM Leaderboard v2 (lm-eval's `leaderboard` group): IFEval, BBH, MATH Lvl 5, GPQA, MuSR, "
    "MMLU-Pro; raw scores",
    columns=(
        Column(
            "ifeval", "IFEval", "leaderboard_ifeval", ("prompt_level_strict_acc,none", "inst_level_strict_acc,none"), 0
        ),
        Column("bbh", "BBH", "leaderboard_bbh", ("acc_norm,none",), 3),
        Column("math_hard", "MATH Lvl 5", "leaderboard_math_hard", ("exact_match,none",), 4),
        Column("gpqa", "GPQA", "leaderboard_gpqa", ("acc_norm,none",), 0),
        Column("musr", "MuSR", "leaderboard_musr", ("acc_norm,none",), 0),
        Column("mmlu_pro", "MMLU-Pro", "leaderboard_mmlu_pro", ("acc,none",), 5),
    ),
    builtin_dirs=("leaderboard",),
)


def _offline_tasks_dir() -> Path:
    from benchmarks.eval_data.tasks import write_task_folder

    return write_task_folder()


# Real data without the Hub (benchmarks.eval_data.tasks): IFEval is the leaderboard's exact task on its exact 541
# prompts; the BBH column is the leaderboard's BBH format and few-shot examples on BIG-bench's examples (not BBH's
# subsets);
# HHH alignment is lm-eval's BIG-bench task on BIG-bench's data, overall and per category.
OFFLINE_V2 = Suite(
    name="offline-v2",
    group="offline_v2",
    description="Offline v2: IFEval (the leaderboard's task and prompts), BBH tasks in the leaderboard's 3-shot "
    "format on BIG-bench data (not the leaderboard's BBH), HHH alignment (BIG-bench); raw scores",
    columns=(
        Column(
            "ifeval", "IFEval", "leaderboard_ifeval", ("prompt_level_strict_acc,none", "inst_level_strict_acc,none"), 0
        ),
        Column("bbh_bigbench", "BBH tasks, BIG-bench data", "bbh_bigbench", ("acc_norm,none",), 3),
        Column("hhh", "HHH alignment", "hhh_alignment", ("acc,none",), 0),
        Column("hhh_harmless", "HHH harmless", "hhh_alignment_harmless", ("acc,none",), 0, in_average=False),
        Column("hhh_helpful", "HHH helpful", "hhh_alignment_helpful", ("acc,none",), 0, in_average=False),
        Column("hhh_honest", "HHH honest", "hhh_alignment_honest", ("acc,none",), 0, in_average=False),
        Column("hhh_other", "HHH other", "hhh_alignment_other", ("acc,none",), 0, in_average=False),
    ),
    builtin_dirs=(),
    make_tasks_dir=_offline_tasks_dir,
    data_note="IFEval: the leaderboard's exact task on its exact prompts. BBH: the leaderboard's task format on "
    "BIG-bench data (another source, other examples). HHH: BIG-bench's data.",
)

SUITES = {suite.name: suite for suite in (V1, V2, OFFLINE_V2)}


def task_manager(suite: Suite, tasks_dir: Path | None = None):
    """lm-eval's `TaskManager` over the folders the suite needs (`tasks_dir` replaces the suite's own YAML folder)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in suite.task_paths(tasks_dir)], include_defaults=False)


def column_value(results: dict, column: Column) -> float | None:
    """The column's number from lm-eval's `results` (0..1), or None when the task or a metric is missing."""
    values = results.get(column.task, {})
    numbers = [values.get(metric) for metric in column.metrics]
    if any(not isinstance(n, (int, float)) for n in numbers):
        return None
    return sum(numbers) / len(numbers)
