"""The declared design: arms, search spaces, budget, seeds, regimes and the primary contrasts with their decision rule.

Declared before any run (benchmarks/coverage/README.md "Design" says the same in words, and a test checks that the
two agree). `comparison(budget, arms)` builds the protocol's `Comparison` for the arms a run selects;
`Comparison.validate()` refuses a broken one before any training.
"""

from __future__ import annotations

from .train import BATCH_SIZE
from benchmarks.protocol import Arm, Budget, Comparison, Contrast, SearchSpace


BENCHMARK = "coverage"
TRAIN_PAIRS = 720  # one pair per training prompt outside the validation split (data.py)
STEPS_PER_EPOCH = TRAIN_PAIRS // BATCH_SIZE  # 45
DEFAULT_BUDGET = 2 * STEPS_PER_EPOCH  # 90 optimizer steps of 16 pairs (README "Budget": why not 450)
CHECKPOINTS_PER_RUN = 5
TUNING_SEEDS = (100, 101)
TEST_SEEDS = tuple(range(10))
TRIALS_PER_ARM = 3
NONINFERIORITY_DELTA = 0.02  # true-reward units: a loss smaller than this counts as "no worse"

_LR = {"learning_rate": [3e-4, 1e-3, 3e-3]}
# Every arm gets TRIALS_PER_ARM points of its own space. The learning rate is tuned everywhere (checkpoint selection
# already tunes the number of steps); RPO's space is its weight on the chosen NLL at the middle learning rate, the
# one knob that makes it RPO. Presets keep their own beta and lambda (that is what a preset is).
ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("spac_theory", SearchSpace(_LR)),
        Arm("spac_theory_no_pessimism", SearchSpace(_LR)),
        Arm("dpo", SearchSpace(_LR)),
        Arm("rpo", SearchSpace({"learning_rate": [1e-3], "rpo_alpha": [0.1, 1.0, 10.0]})),
        Arm("sft_chosen", SearchSpace(_LR)),
        Arm("spac", SearchSpace(_LR)),
        Arm("ipo", SearchSpace(_LR)),
        # iterative DPO on the preset's schedule (the arm); the variant's own default is T = 3 on thirds.
        Arm("iterative_dpo", SearchSpace(_LR), settings={"num_iterations": 10, "iteration_data": "full"}),
        Arm("spin", SearchSpace(_LR)),
    )
}
# What runs by default, in priority order (README "What was cut").
DEFAULT_ARMS = ("spac_theory", "spac_theory_no_pessimism", "dpo", "rpo", "sft_chosen")
DEFAULT_REGIMES = ("covered_mu", "covered")
SPAC_ARMS = ("spac_theory", "spac")
NON_SPAC_ARMS = ("dpo", "rpo", "sft_chosen", "ipo", "iterative_dpo", "spin", "spac_theory_no_pessimism")


def budget(steps: int) -> Budget:
    every = steps // CHECKPOINTS_PER_RUN
    return Budget(
        optimizer_steps=steps,
        pairs_seen=steps * BATCH_SIZE,
        checkpoints=tuple(range(every, steps + 1, every)) if every else (),
    )


def schedule_settings(arm: Arm, steps: int) -> dict:
    """The arm's fixed schedule at this budget. The theory preset (and its ablation, and iterative DPO on its
    schedule) is T iterations of one epoch each over all the pairs; its T = 10 needs 450 steps, so at a smaller
    budget T = steps / 45 (README "Budget")."""
    from spac_hf.variants import get_variant

    settings = dict(arm.settings)
    overrides = {**get_variant(arm.variant).overrides, **settings}
    if overrides.get("iteration_data") == "full" and int(overrides.get("num_iterations", 1)) > 1:
        settings["num_iterations"] = min(int(overrides["num_iterations"]), max(1, steps // STEPS_PER_EPOCH))
    return settings


def contrasts(arms: tuple[str, ...]) -> tuple[Contrast, ...]:
    """The primary contrasts among `arms` (per regime): best SPAC vs best non-SPAC arm (superiority and
    non-inferiority), the preset vs its ablation, vs RPO, vs SFT on chosen."""
    spac = tuple(a for a in SPAC_ARMS if a in arms)
    other = tuple(a for a in NON_SPAC_ARMS if a in arms)
    out = []
    if spac and other:
        out.append(Contrast("best SPAC arm minus best non-SPAC arm", spac, other))
        out.append(
            Contrast(
                "best SPAC arm vs best non-SPAC arm (non-inferiority)",
                spac,
                other,
                kind="noninferiority",
                delta=NONINFERIORITY_DELTA,
            )
        )
    for b, name in (("spac_theory_no_pessimism", "pessimism off"), ("rpo", "RPO"), ("sft_chosen", "SFT on chosen")):
        if "spac_theory" in arms and b in arms:
            out.append(Contrast(f"theory preset minus {name}", "spac_theory", b))
    return tuple(out)


def comparison(steps: int, arms: tuple[str, ...]) -> Comparison:
    return Comparison(
        benchmark=BENCHMARK,
        arms=tuple(ARMS[a] for a in arms),
        budget=budget(steps),
        trials_per_arm=TRIALS_PER_ARM,
        tuning_seeds=TUNING_SEEDS,
        test_seeds=TEST_SEEDS,
        contrasts=contrasts(arms),
    )
