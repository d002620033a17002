"""The tasks' rewards as `evaluate` metrics: which metric scores which evaluation, for the cards' `model-index`.

Each metric is a folder of the repository's `metrics/` laid out as a Hub metric Space (`python metrics/push.py
metrics/<name> --repo-id <namespace>/<name>`), loadable offline with `evaluate.load("metrics/<name>")`. A model
card's evaluation result names its metric by `metric_type` (the Hub id of the metric) and `metric_name`;
`metric_fields(task)` gives both for an evaluation of a task's true reward, so a results row can carry them:

    row.update(metric_fields(row["task"]))      # {"metric_type": "spac-hf/review_reward", "metric_name": ...}
"""

from __future__ import annotations


# The Hub namespace the metric Spaces are published under (the `--repo-id` of metrics/push.py).
METRICS_NAMESPACE = "spac-hf"
# The evaluation's task key (`true_reward_<task>`, as the recipes' evaluator names it) -> the metric module's name.
TASK_METRICS = {
    "true_reward_reviews": "review_reward",
    "true_reward_instruction_following": "instruction_following_reward",
}


def metric_fields(task: str, namespace: str = METRICS_NAMESPACE) -> dict[str, str]:
    """The `model-index` fields naming the `evaluate` metric that scores `task`; empty for a task with none."""
    name = TASK_METRICS.get(task)
    if name is None:
        return {}
    return {
        "metric_type": f"{namespace}/{name}",
        "metric_name": f"mean {name} (evaluate metric {namespace}/{name})",
    }


def metric_location(task: str, namespace: str = METRICS_NAMESPACE) -> str:
    """Where `evaluate.load` finds the metric of `task`: the repository's `metrics/<name>/` in a source checkout (it
    loads offline), else the Hub metric Space `<namespace>/<name>`."""
    from pathlib import Path

    name = TASK_METRICS.get(task)
    if name is None:
        raise ValueError(f"No evaluate metric for task {task!r}; tasks with one: {sorted(TASK_METRICS)}")
    folder = Path(__file__).resolve().parents[3] / "metrics" / name
    return str(folder) if (folder / f"{name}.py").is_file() else f"{namespace}/{name}"


def load_metric(task: str, **kwargs):
    """`evaluate.load` of the metric that scores `task` (see `metric_location`); kwargs go to `evaluate.load`."""
    import evaluate

    return evaluate.load(metric_location(task), **kwargs)
