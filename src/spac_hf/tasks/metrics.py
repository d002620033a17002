"""The tasks' rewards as `evaluate` metrics: the one path every evaluation scores through, and what cards cite.

Each metric is a folder of `spac_hf/metrics/` (shipped with the package) laid out as a Hub metric Space, loadable
offline with `evaluate.load(<folder>)` and pushed with `python src/spac_hf/metrics/push.py src/spac_hf/metrics/<name>
--repo-id <namespace>/<name>`. `task_rewards` is how spac-hf scores a task's responses (the recipes' evaluator, the
benchmarks, the Space): through the metric, so a number spac-hf reports is the number anyone gets from the metric.
A model card's evaluation result names its metric by `metric_type` (the Hub id of the metric) and `metric_name`:
`metric_fields(task, metric)` gives both for an evaluation of a task's true reward (the cards use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from .registry import TASKS


# The Hub namespace the metric Spaces are published under (the `--repo-id` of src/spac_hf/metrics/push.py).
METRICS_NAMESPACE = "spac-hf"
METRICS_DIR = Path(__file__).resolve().parents[1] / "metrics"
# The evaluation's task key (`true_reward_<task>`, as the recipes' evaluator names it) -> the metric module's name.
TASK_METRICS = {task.key: task.metric for task in TASKS.values()}


def metric_fields(task: str, metric: str = "mean", namespace: str = METRICS_NAMESPACE) -> dict[str, str]:
    """The `model-index` fields of a card's evaluation result for the value `metric` ("mean", "degenerate_fraction",
    ...) of an evaluation of `task`: `metric_type` names the `evaluate` metric that computed it; empty for a task with
    none (an lm-eval task's result keeps its own metric name)."""
    name = TASK_METRICS.get(task)
    if name is None:
        return {}
    return {"metric_type": f"{namespace}/{name}", "metric_name": f"{metric} (evaluate metric {namespace}/{name})"}


def metric_location(task: str) -> str:
    """The folder `evaluate.load` reads the metric of `task` from (shipped with spac-hf, so it loads offline)."""
    name = TASK_METRICS.get(task)
    if name is None:
        raise ValueError(f"No evaluate metric for task {task!r}; tasks with one: {sorted(TASK_METRICS)}")
    return str(METRICS_DIR / name)


@cache
def load_metric(task: str):
    """`evaluate.load` of the metric that scores `task`, once per process. In memory: two processes scoring at the
    same time (ranks, benchmark jobs) never share `evaluate`'s cache files."""
    import evaluate

    return evaluate.load(metric_location(task), keep_in_memory=True)


def task_rewards(task: str, prompts: Sequence[str], responses: Sequence[str], **inputs: Sequence[str]) -> dict:
    """Score `responses` to `prompts` by the metric of `task`: its full result (`rewards` per response, `mean_reward`,
    and what else the metric reports). `inputs` are the metric's other columns (`constraints=` for instruction
    following)."""
    return load_metric(task).compute(predictions=list(responses), prompts=list(prompts), **inputs)
