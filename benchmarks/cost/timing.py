"""Interleaved step timing: every variant trains a few steps in turn, round after round, in one process.

A loaded machine slows down and speeds up over seconds; running the variants in turn (in a rotating order) exposes
them to the same load, and the SPAC/DPO ratio is taken per round (paired) before the median over rounds. Each round is
one real `trainer.train()` call per variant, for `steps_per_round` optimizer steps; the optimizer and its state persist
between calls (the Trainer creates them only once), so after the warm-up call every step is a steady-state step.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable

from .clock import PHASES, StepClock


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_interleaved(
    trainers: dict[str, object],
    clocks: dict[str, StepClock],
    *,
    warmup_steps: int,
    steps: int,
    steps_per_round: int,
    on_call: Callable[[str], None] | None = None,
) -> dict[str, list[list[dict]]]:
    """Return, per variant, the phase records of each round (warm-up excluded)."""
    names = list(trainers)
    rounds: dict[str, list[list[dict]]] = {name: [] for name in names}

    def train(name: str, max_steps: int) -> list[dict]:
        trainer, clock = trainers[name], clocks[name]
        gc.collect()  # outside the timed window: no collector pause inside a step
        first = len(clock.steps)
        trainer.args.max_steps = max_steps
        trainer.train()
        if on_call is not None:
            on_call(name)
        return clock.steps[first:]

    for name in names:
        if warmup_steps > 0:
            train(name, warmup_steps)
    for r in range(math.ceil(steps / steps_per_round)):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            rounds[name].append(train(name, steps_per_round))
    return rounds


def summarize(rounds: dict[str, list[list[dict]]], baseline: str = "dpo") -> dict:
    """Median phase times per variant, and the per-round (paired) ratio of each variant's step time to `baseline`'s."""
    summary = {}
    for name, per_round in rounds.items():
        steps = [step for records in per_round for step in records]
        summary[name] = {
            "steps": len(steps),
            "step_seconds": median([s["total"] for s in steps]),
            "step_seconds_all": [round(s["total"], 6) for s in steps],
            "step_cpu_seconds": median([s["cpu_total"] for s in steps]),
            "page_faults_per_step": median([s["page_faults"] for s in steps]),
            "phases_seconds": {phase: median([s[phase] for s in steps]) for phase in PHASES},
        }
    for name, per_round in rounds.items():
        for key, suffix in (("total", ""), ("cpu_total", "_cpu")):
            paired = [
                median([s[key] for s in mine]) / median([s[key] for s in base])
                for mine, base in zip(per_round, rounds[baseline])
            ]
            summary[name][f"ratio_to_{baseline}{suffix}"] = median(paired)
            summary[name][f"ratio_per_round{suffix}"] = [round(x, 4) for x in paired]
    return summary
