"""The protocol's view (benchmarks/protocol.py) of a comparison made by the recipe runner (`runs.run_method`): the
ground-truth benchmark, its coverage run, the tuned default's confirmation and the instruction-following benchmark.

Those runs predate the protocol: they declared no budget, no search and no decision rule. This module reads what
their results.json records (each run's optimizer steps and pairs seen per iterate, its settings, its config hash)
and writes `protocol.json` beside it: each arm's `Spent` budget (a field the file does not record says "not
recorded"), its tuning trials (0 where untuned), `check_spent`'s flags against the budget the comparison should have
declared (the reference arm's: SPAC at the paper's settings, the schedule every baseline shares), what
`Comparison.validate` refuses in it, and `decide`'s line for each contrast, at each arm's last iterate and, where an
arm trained longer, at its iterate that matches the budget. Each benchmark's report writes it, so a rerun writes it
too; results.json itself is left as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spac_hf.methods import METHODS as LIBRARY_METHODS
from spac_hf.utils import atomic_write_json
from spac_hf.variants import VARIANTS

from benchmarks.protocol import (
    Arm,
    Budget,
    Comparison,
    Contrast,
    ProtocolError,
    SearchSpace,
    Spent,
    check_spent,
    decide,
)


NOT_RECORDED = "not recorded"
PROTOCOL_FILE = "protocol.json"
REFERENCE_ARM = "spac"  # SPAC at the paper's settings: the schedule (T parts, one pass) every baseline was given
SCHEDULE_KEYS = (
    "num_iterations",
    "iteration_data",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "beta",
)  # what each arm's run parsed, recorded
UNTUNED = {"trials": 0, "how": "untuned: each arm ran its recipe YAML as shipped; no search was run"}


@dataclass(frozen=True)
class Pair:
    """A contrast of two arms of a recorded run: `a` minus `b` on the benchmark's score, higher is better."""

    a: str
    b: str


def run_spent(run: Mapping) -> dict:
    """A run's `Spent` at its last iterate, from its record; what the record does not hold says so."""
    last, settings = run["iterations"][-1], run["settings"]
    epochs = settings.get("num_train_epochs") or 1
    generates = LIBRARY_METHODS[VARIANTS[run["method"]].method].generates and settings.get("use_pessimism", True)
    values = {
        "optimizer_steps": last["optimizer_steps"],
        "pairs_seen": last["examples_seen"],
        # One sample per training prompt and iteration (the loop samples once, then trains `epochs` passes on it).
        "self_play_samples": int(last["examples_seen"] / epochs) if generates else 0,
        "tokens_trained": NOT_RECORDED,
        "wall_s": run.get("wall_seconds", NOT_RECORDED),  # includes generation and the true-reward scoring
        "cpu_s": NOT_RECORDED,
    }
    assert list(values) == [f.name for f in dataclasses.fields(Spent)]  # the view keeps Spent's fields
    return values


def _one(values: list):
    """One value when every seed agrees, else the list (so a disagreement shows)."""
    distinct = sorted({repr(v) for v in values})
    return values[0] if len(distinct) == 1 else values


def _score_at(run: Mapping, score: str, steps: int | None) -> float | None:
    """`score` at the last iterate, or at the iterate that trained exactly `steps` optimizer steps (None if none)."""
    if steps is None:
        return run["iterations"][-1].get(score)
    return next((it.get(score) for it in run["iterations"] if it["optimizer_steps"] == steps), None)


def protocol_view(
    results: Mapping,
    *,
    regime: str,
    pairs: Sequence[Pair],
    score: str = "true_reward",
    score_of: Mapping[tuple[str, int], float] | None = None,
    score_name: str = "",
    tuning: Mapping[str, Mapping] | None = None,
    config_hashes_now: Mapping[str, str] | None = None,
    written_by: str = "",
) -> dict:
    """The protocol's record of a recorded comparison (see the module docstring).

    `score` is a key of each iterate; `score_of` (arm, seed) -> value replaces it where the score is not per iterate
    (IFEval of the last iterate), and then only the last-iterate contrasts exist; `score_name` says what it is.
    `tuning` is arm -> {"trials", "how"} (default: untuned). `config_hashes_now` is arm -> the hash its YAML file has
    today, recorded beside the run's."""
    runs = results["runs"]
    arms = [m for m in results["settings"]["methods"] if any(r["method"] == m for r in runs)]
    tuning = tuning or {}
    by_arm = {arm: sorted((r for r in runs if r["method"] == arm), key=lambda r: r["seed"]) for arm in arms}
    spent = {arm: [run_spent(r) for r in by_arm[arm]] for arm in arms}

    reference = REFERENCE_ARM if REFERENCE_ARM in arms else arms[0]
    steps = _one([s["optimizer_steps"] for s in spent[reference]])
    pairs_seen = _one([s["pairs_seen"] for s in spent[reference]])
    budget = Budget(optimizer_steps=steps, pairs_seen=pairs_seen, checkpoints=(steps,))

    arm_records = {}
    for arm in arms:
        settings = by_arm[arm][0]["settings"]
        trials = dict(tuning.get(arm, UNTUNED))
        hashes = sorted({r["config_sha256"] for r in by_arm[arm]})
        arm_records[arm] = {
            "variant": arm,
            "label": VARIANTS[arm].label,
            "spent": {key: _one([s[key] for s in spent[arm]]) for key in spent[arm][0]},
            "tuning_trials": trials["trials"],
            "tuning": trials["how"],
            "seeds": [r["seed"] for r in by_arm[arm]],
            "schedule": {key: settings.get(key, NOT_RECORDED) for key in SCHEDULE_KEYS},
            "config_sha256": _one(hashes),
            # The same file today hashes to this (the YAMLs have moved and been edited since; the settings above are
            # what the run parsed).
            "config_sha256_today": (config_hashes_now or {}).get(arm, NOT_RECORDED),
        }

    def own(arm: str) -> Budget:  # what the arm's first seed spent, as a budget: validate names the arm that differs
        first = spent[arm][0]
        return Budget(first["optimizer_steps"], first["pairs_seen"], (first["optimizer_steps"],))

    def recorded(arm: str) -> SearchSpace:  # the recorded trials as a search of that size (the grid: in the search)
        return SearchSpace({"recorded trial": tuple(range(max(1, arm_records[arm]["tuning_trials"])))})

    comparison = Comparison(
        benchmark=results["benchmark"],
        arms=tuple(Arm(a, recorded(a), trials=arm_records[a]["tuning_trials"], budget=own(a)) for a in arms),
        budget=budget,
        trials_per_arm=arm_records[reference]["tuning_trials"],
        # A tuning search here scored a validation split of the training prompts (not seeds): name it as such, so that
        # only an untuned comparison is told it declared no tuning data.
        tuning_seeds=("validation split",) if any(tuning.get(arm, UNTUNED)["trials"] for arm in arms) else (),
        test_seeds=tuple(r["seed"] for r in by_arm[reference]),
        contrasts=tuple(Contrast(f"{VARIANTS[p.a].label} minus {VARIANTS[p.b].label}", p.a, p.b) for p in pairs),
    )
    try:
        comparison.validate()
        problems = []
    except ProtocolError as error:
        problems = str(error).split(": ", 1)[1].split("; ")

    records = [{"arm": arm, "seed": r["seed"], **s} for arm in arms for r, s in zip(by_arm[arm], spent[arm])]
    flags = check_spent(comparison, records)
    over = {row["arm"] for row in records if any(line.startswith(f"arm {row['arm']} ") for line in flags)}

    decisions = []
    for pair in pairs:
        if pair.a not in by_arm or pair.b not in by_arm:
            continue
        contrast = Contrast(f"{VARIANTS[pair.a].label} minus {VARIANTS[pair.b].label}", pair.a, pair.b)
        # Each arm's last iterate; then, where an arm broke the budget, its iterate at the budget (if it has one).
        points = [None] + ([budget.optimizer_steps] if {pair.a, pair.b} & over and score_of is None else [])
        for at in points:
            values = {}
            for arm in (pair.a, pair.b):
                for run in by_arm[arm]:
                    if score_of is not None:
                        value = score_of.get((arm, run["seed"]))
                    else:
                        value = _score_at(run, score, None if at is None else (at if arm in over else None))
                    if value is not None:
                        values[(arm, run["seed"])] = value
            seeds = sorted({s for (_, s) in values if (pair.a, s) in values and (pair.b, s) in values})
            where = regime if at is None else f"{regime}, each arm at {at} steps"
            unequal = [a for a in (pair.a, pair.b) if a in over and at is None]
            entry = {"regime": where, "checkpoint_rule": "last", "a_arm": pair.a, "b_arm": pair.b}
            entry.update(seeds=seeds, equal_budget=not unequal)
            if len(seeds) < 2:
                entry.update(line=f"{contrast.name}: no decision ({len(seeds)} paired seed(s); decide needs 2)")
            else:
                decision = decide([values[(pair.a, s)] - values[(pair.b, s)] for s in seeds], contrast)
                entry.update({k: v for k, v in dataclasses.asdict(decision).items() if k != "contrast"})
                entry["contrast"] = contrast.name
            if unequal:
                entry["breaks"] = f"rule 1 (equal compute): {', '.join(unequal)} spent more than 5% off the budget"
            decisions.append(entry)

    return {
        "benchmark": results["benchmark"],
        "source": "results.json (this folder)",
        "written_by": written_by,
        "regime": regime,
        "score": score_name or score,
        "declared_budget": {
            **dataclasses.asdict(budget),
            "from": f"what arm {reference!r} spent: the budget this comparison should have declared",
        },
        "checkpoint_rule": "last: each arm's last iterate (no validation split was recorded, so no validation rule)",
        "arms": arm_records,
        "spent_flags": flags,
        "validate": problems,
        "decisions": decisions,
    }


def write_protocol_view(view: dict, folder: Path) -> Path:
    path = Path(folder) / PROTOCOL_FILE
    atomic_write_json(path, view)
    return path
