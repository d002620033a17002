"""The task registry (`spac_hf.tasks.registry`): one record per task, and everything that lists tasks reads it."""

import dataclasses

import pytest

from spac_hf.tasks import reward as review_reward
from spac_hf.tasks.evaluators import evaluator_of, reward_of
from spac_hf.tasks.metrics import METRICS_DIR, TASK_METRICS, metric_fields
from spac_hf.tasks.registry import TASKS, get_task, task_of_key


def test_every_record_names_a_reward_a_metric_and_an_evaluator_that_exist():
    assert set(TASKS) == {"reviews", "instruction_following"}
    for name, task in TASKS.items():
        assert task.name == name and task.key == f"true_reward_{name}" and task_of_key(task.key) is task
        assert (METRICS_DIR / task.metric / f"{task.metric}.py").is_file()
        assert callable(evaluator_of(task)) and evaluator_of(task).__name__ == task.evaluator
        assert TASK_METRICS[task.key] == task.metric
        assert metric_fields(task.key)["metric_type"] == f"spac-hf/{task.metric}"
    prompt, response = "Review of the blue camera:", " The camera is great. I love it."
    assert reward_of(TASKS["reviews"])(prompt, response) == review_reward(prompt, response)
    assert task_of_key("leaderboard_ifeval") is None


def test_the_recipes_offer_exactly_the_registered_tasks():
    from spac_hf.scripts.self_play import SelfPlayScriptArguments

    (field,) = [f for f in dataclasses.fields(SelfPlayScriptArguments) if f.name == "true_reward_task"]
    assert field.metadata["choices"] == list(TASKS)


def test_an_unknown_task_is_named_with_the_choices():
    with pytest.raises(ValueError, match="Unknown task 'review'; tasks: reviews, instruction_following"):
        get_task("review")
