"""The task's true reward of an answer, shown beside it in the side-by-side tab: on the default task the reward is a
program, so the page can say exactly how good each answer is, and why.

The score comes from the task's `evaluate` metric, the path every spac-hf evaluation scores through (so the page shows
the number the benchmarks report): from the checkout's `src/spac_hf/metrics/<name>/` when the Space runs in one, else
from the Hub metric Space `spac-hf/<name>` (needs `evaluate` and the Hub). Where neither loads, the page says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from settings import REPO_ROOT


logger = logging.getLogger(__name__)

# task -> its `evaluate` metric (spac_hf.tasks.metrics.TASK_METRICS, for the tasks whose metric gives a breakdown)
REWARD_METRICS = {"reviews": "review_reward"}
METRICS_NAMESPACE = "spac-hf"


def metric_location(name: str) -> str:
    folder = REPO_ROOT / "src" / "spac_hf" / "metrics" / name
    return str(folder) if (folder / f"{name}.py").is_file() else f"{METRICS_NAMESPACE}/{name}"


def reward_program(task: str | None) -> Callable[[str, str], dict] | None:
    """`(prompt, answer) -> {"reward", "sentiment", "topic", "issues"}` for `task`; None when it is not available."""
    if task not in REWARD_METRICS:
        return None
    location = metric_location(REWARD_METRICS[task])
    try:
        import evaluate

        metric = evaluate.load(location, keep_in_memory=True)
    except Exception as err:  # no evaluate, no Hub, no such Space: the page says the reward is not available
        logger.warning("True reward not available: could not load the metric %s (%s)", location, err)
        return None

    def breakdown(prompt: str, answer: str) -> dict:
        return metric.compute(predictions=[answer], prompts=[prompt], breakdown=True)["breakdowns"][0]

    return breakdown


def describe(breakdown: dict | None, task: str | None) -> str:
    """One line for the page: the reward, then what made it."""
    if breakdown is None:
        return f"True reward: not available (the `{task}` task's metric could not be loaded)." if task else ""
    issues = ", ".join(breakdown["issues"]) or "none"
    return (
        f"**True reward ({task} task): {breakdown['reward']:+.3f}** "
        f"(sentiment {breakdown['sentiment']:+.2f}, topic {breakdown['topic']:+.0f}, issues: {issues})"
    )
