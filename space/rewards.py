"""The task's true reward of an answer, shown beside it in the side-by-side tab: on the default task the reward is a
program (`spac_hf.tasks.reviews.reward_breakdown`), so the page can say exactly how good each answer is.

The program is spac-hf's own, imported, never copied: in a checkout (or wherever `spac-hf` is installed) every answer
gets its score; a Space without spac-hf says so instead.
"""

from __future__ import annotations

from collections.abc import Callable


REWARD_TASKS = ("reviews",)


def reward_program(task: str | None) -> Callable[[str, str], dict] | None:
    """`(prompt, answer) -> {"reward", "sentiment", "topic", "issues"}` for `task`; None when it is not available."""
    if task not in REWARD_TASKS:
        return None
    try:
        from spac_hf.tasks.reviews import reward_breakdown
    except ImportError:
        return None
    return reward_breakdown


def describe(breakdown: dict | None, task: str | None) -> str:
    """One line for the page: the reward, then what made it."""
    if breakdown is None:
        return f"True reward: not available (`{task}` needs spac-hf installed)." if task else ""
    issues = ", ".join(breakdown["issues"]) or "none"
    return (
        f"**True reward ({task} task): {breakdown['reward']:+.3f}** "
        f"(sentiment {breakdown['sentiment']:+.2f}, topic {breakdown['topic']:+.0f}, issues: {issues})"
    )
