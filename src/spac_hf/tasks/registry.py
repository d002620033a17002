"""`TASKS`: one `Task` record per task with a programmatic reward, the one place a task is declared.

A record says where its reward is, which `evaluate` metric (a folder of `spac_hf/metrics/`) scores it, which evaluator
the recipes run for it (`spac_hf.tasks.evaluators`), and how tables and cards name it. The recipes' choices
(`--true_reward_task`), the metric lookup of every evaluation and of the model cards, and the benchmarks read it from
here. Adding a task: its module (reward), its metric folder, its evaluator, and one record below with its test.
The records are plain data that import nothing (the instruction-following module needs lm-eval): `evaluators.reward_of`
and `evaluators.evaluator_of` turn a record into its functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str  # the `--true_reward_task` choice; a run's evaluations are keyed `true_reward_<name>`
    label: str  # how tables and cards name it
    module: str  # the module (of `spac_hf.tasks`) whose `reward(...)` is the task's true reward r(x, y)
    metric: str  # the `evaluate` metric module (a folder of spac_hf/metrics/) every evaluation scores through
    evaluator: str  # the function of `spac_hf.tasks.evaluators` the recipes evaluate with
    data: str  # where its data and model come from

    @property
    def key(self) -> str:
        """The evaluation's key in `eval.json`, results rows and cards."""
        return f"true_reward_{self.name}"


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="reviews",
            label="short product reviews (grammar-based true reward)",
            module="reviews",
            metric="review_reward",
            evaluator="review_evaluator",
            data="the embedded default: spac_hf/default/ (model and data), rebuilt by recipes/default/build_assets.py",
        ),
        Task(
            name="instruction_following",
            label="verifiable instruction following (IFEval's checkers on real prompts)",
            module="instruction_following",
            metric="instruction_following_reward",
            evaluator="instruction_following_evaluator",
            data="python -m benchmarks.instruction_following.data (SmolLM2-135M-Instruct: recipes/smollm2/)",
        ),
    )
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]


def task_of_key(key: str) -> Task | None:
    """The task an evaluation key (`true_reward_<name>`) belongs to, or None (an lm-eval task, say)."""
    return TASKS.get(key.removeprefix("true_reward_")) if key.startswith("true_reward_") else None
