"""The fair-comparison protocol (benchmarks/protocol.py): decisions against hand-computed paired t intervals, and
every refusal naming its arm and field."""

import dataclasses
import math

import pytest

from benchmarks.protocol import (
    RECORD_FIELDS,
    Arm,
    Budget,
    Comparison,
    Contrast,
    ProtocolError,
    SearchSpace,
    check_spent,
    decide,
    group_arm,
    quote,
    quoted,
    record,
    select_checkpoint,
    tune,
)


# Student t quantiles from a printed table (not from scipy, which the module uses): t_{0.975, df} and t_{0.80, df}.
T975 = {3: 3.1824, 4: 2.7764}
T80 = {3: 0.9785, 4: 0.9410}


def contrast(**options):
    return Contrast("A minus B", "a", "b", **options)


def test_better_by_hand():
    diffs = [0.02, 0.05, 0.01, 0.04, 0.03]  # mean 0.03, sd sqrt(0.001 / 4)
    se = math.sqrt(0.001 / 4) / math.sqrt(5)
    d = decide(diffs, contrast())
    assert d.mean == pytest.approx(0.03)
    assert d.ci_low == pytest.approx(0.03 - T975[4] * se, abs=1e-5)
    assert d.ci_high == pytest.approx(0.03 + T975[4] * se, abs=1e-5)
    assert d.mdd == pytest.approx((T975[4] + T80[4]) * se, abs=1e-5)
    assert (d.verdict, d.wins, d.n) == ("better", 5, 5)
    assert d.line == "A minus B: +0.030 (95% CI +0.010 to +0.050, 5 seeds, 5 wins): better"
    # The same differences are "worse" when a and b swap, and when lower is better (a loss, a suboptimality).
    assert decide([-x for x in diffs], contrast()).verdict == "worse"
    lower = decide(diffs, contrast(higher_is_better=False))
    assert (lower.verdict, lower.wins) == ("worse", 0)


def test_undecided_by_hand_reports_the_smallest_detectable_difference():
    diffs = [0.1, -0.1, 0.2, -0.2]  # mean 0, sd sqrt(0.1 / 3)
    se = math.sqrt(0.1 / 3) / 2
    d = decide(diffs, contrast())
    assert d.verdict == "undecided" and d.mdd == pytest.approx((T975[3] + T80[3]) * se, abs=1e-4)
    assert d.ci_high == pytest.approx(T975[3] * se, abs=1e-4)
    assert d.line == (
        "A minus B: +0.000 (95% CI -0.291 to +0.291, 4 seeds, 2 wins): undecided, smallest detectable difference 0.380"
    )


def test_noninferiority_needs_the_interval_above_minus_delta():
    diffs = [-0.01, 0.0, 0.01, -0.005, 0.005]  # CI half-width 2.7764 * sqrt(6.25e-5 / 5) = 0.0098
    d = decide(diffs, contrast(kind="noninferiority", delta=0.02))
    assert d.verdict == "no worse than" and d.line.endswith("5 seeds, 2 wins): no worse than -0.020")
    assert decide(diffs, contrast(kind="noninferiority", delta=0.005)).verdict == "undecided"
    # Lower is better: "no worse" means the interval lies below +delta.
    lower = decide([x + 0.005 for x in diffs], contrast(kind="noninferiority", delta=0.02, higher_is_better=False))
    assert lower.verdict == "no worse than" and lower.line.endswith(": no worse than +0.020")
    with pytest.raises(ProtocolError, match="'A minus B': delta must be declared"):
        decide(diffs, contrast(kind="noninferiority"))


def test_zero_spread_and_one_seed_decide_nothing():
    assert decide([0.1, 0.1, 0.1], contrast()).verdict == "undecided"  # an artefact, not precision
    with pytest.raises(ProtocolError, match="at least 2 paired differences, got 1"):
        decide([0.1], contrast())


# ----------------------------------------------------------------------------------------------- validate


def comparison(**changes) -> Comparison:
    arms = (Arm("dpo", SearchSpace({"beta": [0.1, 0.5, 1.0]})), Arm("spac_theory", SearchSpace({"lam": [0.1, 1, 3]})))
    base = Comparison(
        benchmark="toy",
        arms=arms,
        budget=Budget(optimizer_steps=300, pairs_seen=3000, checkpoints=(100, 200, 300)),
        trials_per_arm=3,
        tuning_seeds=(100, 101),
        test_seeds=(0, 1, 2),
        contrasts=(Contrast("SPAC minus DPO", "spac_theory", "dpo"),),
    )
    return dataclasses.replace(base, **changes)


def test_a_valid_comparison_passes_and_serialises():
    comparison().validate()
    as_dict = comparison().to_dict()
    assert as_dict["arms"][0]["search"] == {"beta": [0.1, 0.5, 1.0]} and as_dict["budget"]["optimizer_steps"] == 300


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trials_per_arm": 4}, "arm 'dpo': search has 3 points, fewer than trials_per_arm 4"),
        ({"budget": Budget(300, 3000, (100, 250, 300))}, r"budget.checkpoints \(100, 250, 300\) do not divide"),
        ({"budget": Budget(300, 3000, (120, 240))}, "do not divide optimizer_steps 300 evenly"),
        ({"contrasts": ()}, r"no primary contrast declared \(the decision rule is missing\)"),
        ({"test_seeds": (0, 1, 100)}, r"tuning_seeds and test_seeds overlap: \[100\]"),
        ({"tuning_seeds": ()}, "tuning_seeds: none declared"),
        ({"contrasts": (Contrast("x", "spac_theory", "dpo", kind="noninferiority"),)}, "'x': delta must be declared"),
        ({"contrasts": (Contrast("x", ("spac", "spac_theory"), "dpo"),)}, "'x': a names arm 'spac', not an arm"),
    ],
)
def test_validate_refuses_naming_the_field(changes, message):
    with pytest.raises(ProtocolError, match=message):
        comparison(**changes).validate()


def test_validate_refuses_arms_with_unequal_trials_or_budgets():
    space = SearchSpace({"beta": [0.1, 0.5, 1.0]})
    unequal_trials = (Arm("dpo", space), Arm("spac_theory", space, trials=2))
    with pytest.raises(ProtocolError, match="arm 'spac_theory': trials 2 differs from trials_per_arm 3"):
        comparison(arms=unequal_trials).validate()
    longer = Arm("spac_theory", space, budget=Budget(3000, 30000, (1000, 2000, 3000)))
    with pytest.raises(
        ProtocolError,
        match="arm 'spac_theory': budget.optimizer_steps 3000 differs from the "
        "comparison's 300; arm 'spac_theory': budget.pairs_seen",
    ):
        comparison(arms=(Arm("dpo", space), longer)).validate()
    with pytest.raises(ProtocolError, match="arm 'nope': variant 'nope' is not in"):
        comparison(arms=(Arm("dpo", space), Arm("nope", space))).validate()
    with pytest.raises(ProtocolError, match="arm 'dpo': declared 2 times"):
        comparison(arms=(Arm("dpo", space), Arm("dpo", space))).validate()
    two_ways = (Arm("dpo", space), Arm("dpo", space, name="dpo_sampled"), Arm("spac_theory", space))
    comparison(arms=two_ways).validate()  # one variant as two arms with distinct names: fine


def test_check_trials_counts_per_arm_and_regime():
    trials = [{"arm": "dpo", "regime": "r"}] * 3 + [{"arm": "spac_theory", "regime": "r"}] * 2
    with pytest.raises(ProtocolError, match=r"arm 'spac_theory' \(r\): 2 trials recorded, trials_per_arm is 3"):
        comparison().check_trials(trials)
    comparison().check_trials(trials + [{"arm": "spac_theory", "regime": "r"}])


def test_check_spent_flags_more_than_five_percent():
    rows = [
        {"arm": "spac_theory", "seed": 0, "optimizer_steps": 3000, "pairs_seen": 3000},
        {"arm": "dpo", "seed": 0, "optimizer_steps": 312, "pairs_seen": 3000},  # +4%: within the tolerance
        {"arm": "dpo", "seed": 1, "optimizer_steps": 300, "pairs_seen": 3180},  # +6%
    ]
    assert check_spent(comparison(), rows) == [
        "arm spac_theory (seed 0): optimizer_steps 3000 vs budget 300 (+900%)",
        "arm dpo (seed 1): pairs_seen 3180 vs budget 3000 (+6%)",
    ]
    short = [{"arm": "spac", "optimizer_steps": 51, "pairs_seen": 3000}]
    assert check_spent(comparison(budget=Budget(510, 3000, (510,))), short) == [
        "arm spac: optimizer_steps 51 vs budget 510 (-90%)"
    ]


# ----------------------------------------------------------------------------------------------- tuning, records


def test_select_checkpoint_and_tune_break_ties_towards_the_earlier():
    assert select_checkpoint({300: 0.5, 100: 0.7, 200: 0.7}) == 100
    assert select_checkpoint({100: 0.3, 200: 0.1, 300: 0.1}, higher_is_better=False) == 200
    arm = Arm("dpo", SearchSpace({"beta": [0.1, 1.0]}))
    trials = [
        {"arm": "dpo", "trial": 0, "val": 0.2},
        {"arm": "dpo", "trial": 1, "val": 0.4},
        {"arm": "dpo", "trial": 2, "val": 0.4},
    ]
    assert tune(arm, trials, "val")["trial"] == 1
    assert tune(arm, trials, lambda t: t["val"], higher_is_better=False)["trial"] == 0
    with pytest.raises(ProtocolError, match=r"trials of other arms passed to tune: \['spin'\]"):
        tune(arm, trials + [{"arm": "spin", "val": 9}], "val")
    assert (
        group_arm(("spac", "spac_theory"), {"spac": 0.2, "spac_theory": 0.1}, higher_is_better=False) == "spac_theory"
    )


def test_search_space_gives_the_grid_or_a_seeded_subset():
    space = SearchSpace({"beta": [0.1, 1.0], "steps": [1, 2, 3]})
    assert space.size == 6 and space.trials(6)[1] == {"beta": 0.1, "steps": 2}
    subset = space.trials(4, seed=3)
    assert len(subset) == 4 and subset == space.trials(4, seed=3) and all(p in space.grid() for p in subset)
    with pytest.raises(ProtocolError, match="has 6 points, fewer than 7 trials"):
        space.trials(7)


def full_record(**changes):
    fields = {name: 0 for name in RECORD_FIELDS}
    fields.update({"variant": "dpo", "checkpoint_rule": "last", "params": {}, **changes})
    return fields


def test_record_refuses_missing_and_unknown_fields():
    row = record(**full_record(arm="dpo"))
    assert tuple(row) == RECORD_FIELDS and row["arm"] == "dpo"
    incomplete = full_record()
    del incomplete["data_sha256"]
    with pytest.raises(ProtocolError, match=r"missing fields \['data_sha256'\], unknown fields \['steps'\]"):
        record(**incomplete, steps=3)
    with pytest.raises(ProtocolError, match="checkpoint_rule must be one of"):
        record(**full_record(checkpoint_rule="best"))
    with pytest.raises(ProtocolError, match="variant 'dpo2' is not in"):
        record(**full_record(variant="dpo2"))


def test_quotes_are_found_across_line_breaks():
    d = decide([0.02, 0.05, 0.01, 0.04, 0.03], contrast())
    row = {"regime": "toy n=30 steps=300", "checkpoint_rule": "validation", "line": d.line}
    text = "As measured, " + quote(row).replace(" (95% CI", "\n  (95% CI") + ", and so on."
    assert quoted(text) == [("toy n=30 steps=300", "validation", d.line)]
    assert quoted("[toy, validation rule] A minus B: +0.030 (95% CI +0.010 to +0.050, 5 seeds, 5 wins): best") == []
