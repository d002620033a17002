"""The coverage benchmark (benchmarks/coverage): the regimes' data, the schedule that spends the budget, the refusals
before any training, and a --quick run end to end (2 arms, a 2-step budget) with its resume."""

from __future__ import annotations

import json
import random

import pytest

from spac_hf.tasks import reviews

from benchmarks.coverage import design, run
from benchmarks.coverage.data import REGIMES, behaviour_policy, prompt_splits, regime_data
from benchmarks.coverage.train import fit_schedule


def test_splits_are_disjoint_and_fixed():
    train, validation, test = prompt_splits()
    assert (len(train), len(validation), len(test)) == (720, 90, 150)
    assert not set(train) & set(validation) and not (set(train) | set(validation)) & set(test)
    assert prompt_splits() == (train, validation, test)


def test_covered_and_uncovered_data():
    covered, again, other = regime_data("covered", 3), regime_data("covered_mu", 3), regime_data("covered", 4)
    assert covered.sha256 == again.sha256 != other.sha256  # the pi_1 = mu variant shares the data; seeds redraw it
    assert len(covered.pairs) == 720 and len(covered.mu_samples) == 4 * 720
    # mu puts half its mass on the best of 16 reviews: it covers a far better policy than a grammar review
    assert covered.stats["best_candidate_true_reward"] > covered.stats["mu_true_reward"] + 0.2
    rng, better_exists = random.Random(0), 0
    for prompt in prompt_splits()[0][:40]:
        responses, probs, best = behaviour_policy(prompt, "median", rng)
        covered_reward = reviews.reward(prompt, responses[0])
        assert all(reviews.reward(prompt, text) < covered_reward for text in responses[1:])  # nothing better shown
        assert probs[0] == 0.5 and len(responses) == 30
        better_exists += best > covered_reward
    assert better_exists >= 30  # ... though a better review exists for most prompts
    on_policy = regime_data("on_policy", 0)
    assert on_policy.sha256 == regime_data("on_policy", 7).sha256 and len(on_policy.pairs) == 720


def test_every_arm_spends_the_default_budget_exactly():
    for arm in design.ARMS.values():
        from spac_hf.variants import get_variant

        settings = design.schedule_settings(arm, design.DEFAULT_BUDGET)
        schedule = fit_schedule({**get_variant(arm.variant).overrides, **settings}, 720, design.DEFAULT_BUDGET)
        assert schedule.num_iterations * schedule.steps_per_iteration == design.DEFAULT_BUDGET
    preset = design.schedule_settings(design.ARMS["spac_theory"], 450)
    assert preset["num_iterations"] == 10  # the full budget runs the preset as it is defined
    with pytest.raises(ValueError, match="--budget 100"):
        fit_schedule({"num_iterations": 1}, 720, 100)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--regimes", "sparse"], "--regimes: unknown regime 'sparse'"),
        (["--arms", "dpo", "ppo"], "--arms: unknown arm 'ppo'"),
        (["--budget", "91"], "--budget 91"),
        (["--budget", "100"], "--budget 100"),  # 5 checkpoints of 20 steps fit, whole epochs of 45 steps do not
    ],
)
def test_bad_input_is_refused_before_training(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        run.main([*argv, "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.slow  # about 30 s of CPU: 6 real trainings and their scoring
def test_quick_run_end_to_end_and_resume(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    run.main(["--quick", "--out", str(out), "--work-dir", str(work)])
    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    assert len(records) == 2 * 2 * 2  # 2 arms x 2 test seeds x the validation and the last checkpoint
    assert {r["arm"] for r in records} == {"spac_theory", "dpo"}
    assert all(r["optimizer_steps"] == 2 and r["pairs_seen"] == 32 for r in records)
    assert results["budget_flags"] == [] and results["partial"] is False
    theory = [r for r in records if r["arm"] == "spac_theory"]
    assert all(r["self_play_samples"] == 32 for r in theory)  # one sample per pair per iteration (T = 1 here)
    for r in records:  # the validation rule's checkpoint is the best on validation
        runs = json.loads((out / "runs" / "covered" / r["arm"] / f"test_seed{r['seed']}.json").read_text())
        assert r["val_score"] == runs["curve"][str(r["checkpoint"])]
        if r["checkpoint_rule"] == "validation":
            assert r["val_score"] == max(runs["curve"].values())
    assert len(results["trials"]) == 2 and results["decisions"]
    assert (out / "reward_covered.png").stat().st_size > 0 and (out / "curves_covered.png").stat().st_size > 0
    assert "best SPAC arm minus best non-SPAC arm" in (out / "table.md").read_text()
    # A rerun reads every run back (nothing trains: the scratch folders stay gone) and gives the same records.
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    run.main(["--quick", "--out", str(out), "--work-dir", str(work)])
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")} == before
    assert json.loads((out / "results.json").read_text())["records"] == records
    # The same folder with other settings is refused, naming the option.
    with pytest.raises(SystemExit, match="--budget 2 \\(now 90\\)"):
        run.main(["--arms", "dpo", "--out", str(out), "--work-dir", str(work)])


def test_regimes_and_design_named_in_readme():
    from pathlib import Path

    readme = (Path(design.__file__).parent / "README.md").read_text()
    for name in [*REGIMES, *design.ARMS]:
        assert f"`{name}`" in readme
    assert f"{design.DEFAULT_BUDGET} optimizer steps" in readme and f"delta = {design.NONINFERIORITY_DELTA}" in readme


def test_readme_pilot_numbers_come_from_the_pilot_file():
    from pathlib import Path

    root = Path(design.__file__).resolve().parents[2]
    readme = (root / "benchmarks" / "coverage" / "README.md").read_text().replace("\n", " ")
    pilot = json.loads((root / "results" / "coverage" / "pilot_timing.json").read_text())["runs"]
    theory, dpo, mu = pilot
    for number in (
        theory["total_wall_s"],
        theory["train_wall_s"],
        theory["train_cpu_s"],
        dpo["total_wall_s"],
        mu["total_wall_s"],
    ):
        assert f"{number} s" in readme
    curve = theory["validation_curve"]
    assert f"step 90 ({curve['90']})" in readme and f"step 450 ({curve['450']})" in readme


def test_readme_results_section_is_the_committed_results():
    from pathlib import Path

    from benchmarks.coverage.report import README_END, README_START, results_block

    root = Path(design.__file__).resolve().parents[2]
    readme = (root / "benchmarks" / "coverage" / "README.md").read_text()
    section = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    path = root / "results" / "coverage" / "results.json"
    if not path.is_file():  # the design is committed before any result
        assert section == "No finished test run yet."
        return
    assert section == results_block(json.loads(path.read_text())).strip()


def test_readme_tuning_note_matches_the_trials():
    from pathlib import Path

    root = Path(design.__file__).resolve().parents[2]
    readme = (root / "benchmarks" / "coverage" / "README.md").read_text()
    assert "the tuning chose the smallest" in readme
    results = json.loads((root / "results" / "coverage" / "results.json").read_text())
    lowest = {arm: min(design.ARMS[arm].search.params["learning_rate"]) for arm in design.ARMS}
    for regime in ("covered_mu", "uncovered"):  # the same edges in both, as the README says
        tuned = {row["arm"]: row["params"] for row in results["table"] if row["regime"] == regime}
        for arm in ("spac_theory", "spac_theory_no_pessimism", "dpo"):
            assert tuned[arm]["learning_rate"] == lowest[arm]
        assert tuned["rpo"]["rpo_alpha"] == min(design.ARMS["rpo"].search.params["rpo_alpha"])
    on_policy = {row["arm"]: row["params"] for row in results["table"] if row["regime"] == "on_policy"}
    assert on_policy["rpo"]["rpo_alpha"] == min(design.ARMS["rpo"].search.params["rpo_alpha"])
    assert on_policy["spac_theory_no_pessimism"]["learning_rate"] == lowest["spac_theory_no_pessimism"]
    uncovered_mu = {row["arm"]: row["params"] for row in results["table"] if row["regime"] == "uncovered_mu"}
    for arm in ("spac_theory_no_pessimism", "dpo"):
        assert uncovered_mu[arm]["learning_rate"] == lowest[arm]
    assert uncovered_mu["spac_theory"]["learning_rate"] == 1e-3 and uncovered_mu["rpo"]["rpo_alpha"] == 1.0
    assert "the preset (learning rate 1e-3) and RPO (alpha 1) chose interior values" in " ".join(readme.split())


def test_the_recorded_command_resumes_every_regime_the_folder_holds(tmp_path):
    """A process started on some regimes records the command that resumes all of the folder's runs."""
    out = tmp_path / "out"
    (out / "runs" / "covered" / "dpo").mkdir(parents=True)
    (out / "runs" / "covered" / "spin").mkdir(parents=True)
    args = run.parse_args(["--regimes", "on_policy", "--out", str(out), "--commit"])
    args.out = args.out.resolve()
    command = run._command(args)
    arms = " ".join(a for a in design.ARMS if a in (*design.DEFAULT_ARMS, "spin"))
    assert command.startswith(f"python -m benchmarks.coverage.run --regimes covered on_policy --arms {arms} --out ")
    assert command.endswith(" --commit")
    args = run.parse_args(["--out", str(tmp_path / "empty")])
    assert run._command(args).split(" --out ")[0] == "python -m benchmarks.coverage.run"
