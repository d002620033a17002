"""The ground-truth benchmark (benchmarks/ground_truth): its statistics on hand-made numbers, a --quick run through the
real recipes that writes every output, and a rerun that reuses the finished runs."""

from __future__ import annotations

import json
import math
import re

import pytest

from spac_hf.hub import validate_results_rows

from benchmarks.ground_truth import run as benchmark
from benchmarks.ground_truth.methods import METHODS
from benchmarks.ground_truth.runs import RECORD_FILE, recipe_args, run_method
from benchmarks.ground_truth.stats import (
    gains_over_sft,
    mean_ci95,
    method_cells,
    paired_differences,
    sft_by_seed,
)


def fake_run(method: str, seed: int, rewards: list[float], examples_per_iteration: int = 270) -> dict:
    """A run record as runs.py writes it: iteration 0 is the SFT model."""
    return {
        "method": method,
        "seed": seed,
        "iterations": [
            {"iteration": t, "examples_seen": t * examples_per_iteration, "optimizer_steps": t * 17, "true_reward": r}
            for t, r in enumerate(rewards)
        ],
    }


# --------------------------------------------------------------------------------------------------- statistics


def test_t_interval_on_hand_made_numbers():
    stats = mean_ci95([0.1, 0.2, 0.3])
    assert stats["mean"] == pytest.approx(0.2)
    assert stats["std"] == pytest.approx(0.1)
    assert stats["ci95"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # t_{0.975, 2} = 4.303
    two = mean_ci95([1.0, 3.0])
    assert two["ci95"] == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))  # std sqrt(2), t_{0.975, 1} = 12.706
    assert math.isnan(mean_ci95([1.0])["ci95"])  # one seed: no interval


def test_cells_sft_and_paired_differences_on_hand_made_runs():
    runs = [
        fake_run("spac", 0, [0.1, 0.3, 0.4, 0.5]),
        fake_run("spac", 1, [0.2, 0.2, 0.3, 0.6]),
        fake_run("spac", 2, [0.3, 0.4, 0.5, 0.7]),
        fake_run("iterative_dpo", 0, [0.1, 0.2, 0.3, 0.4]),
        fake_run("iterative_dpo", 1, [0.2, 0.2, 0.2, 0.4]),
        fake_run("iterative_dpo", 2, [0.3, 0.3, 0.3, 0.4]),
        fake_run("dpo", 0, [0.1, 0.45], examples_per_iteration=810),  # plain DPO: one iterate after all 810 pairs
        fake_run("dpo", 1, [0.2, 0.55], examples_per_iteration=810),
        fake_run("dpo", 2, [0.3, 0.65], examples_per_iteration=810),
    ]
    sft = sft_by_seed(runs)
    assert sft["values"] == {"0": 0.1, "1": 0.2, "2": 0.3}
    assert sft["max_discrepancy"] == 0.0
    assert sft["mean"] == pytest.approx(0.2) and sft["ci95"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))

    cells = {(c["method"], c["examples_seen"]): c for c in method_cells(runs)}
    assert set(cells) == {("spac", 270), ("spac", 540), ("spac", 810), ("iterative_dpo", 270),
                          ("iterative_dpo", 540), ("iterative_dpo", 810), ("dpo", 810)}  # fmt: skip
    final = cells[("spac", 810)]
    assert final["values"] == {"0": 0.5, "1": 0.6, "2": 0.7} and final["iteration"] == 3
    assert final["mean"] == pytest.approx(0.6) and final["std"] == pytest.approx(0.1)
    assert final["ci_low"] == pytest.approx(0.6 - 4.303 * 0.1 / math.sqrt(3))
    assert cells[("dpo", 810)]["iteration"] == 1  # the loop's iteration is kept; the budget point is what aligns
    zero_spread = cells[("iterative_dpo", 810)]
    assert zero_spread["std"] == pytest.approx(0.0, abs=1e-12) and zero_spread["ci95"] == pytest.approx(0.0, abs=1e-12)

    paired = {
        (p["baseline"], p["examples_seen"]): p
        for p in paired_differences(list(cells.values()), "spac", ["iterative_dpo", "dpo"])
    }
    assert set(paired) == {("iterative_dpo", 270), ("iterative_dpo", 540), ("iterative_dpo", 810), ("dpo", 810)}
    differences = paired[("dpo", 810)]["differences"]  # 0.5 - 0.45, 0.6 - 0.55, 0.7 - 0.65: no spread at all
    assert list(differences) == ["0", "1", "2"] and all(d == pytest.approx(0.05) for d in differences.values())
    assert paired[("dpo", 810)]["ci95"] == pytest.approx(0.0, abs=1e-12)
    assert paired[("iterative_dpo", 810)]["mean"] == pytest.approx(0.2)

    gains = {(g["method"], g["examples_seen"]): g for g in gains_over_sft(list(cells.values()), sft)}
    assert set(gains) == set(cells)
    assert gains[("spac", 810)]["differences"] == pytest.approx({"0": 0.4, "1": 0.4, "2": 0.4})  # 0.5-0.1, ...
    assert gains[("dpo", 810)]["mean"] == pytest.approx(0.35)
    assert gains[("dpo", 810)]["ci95"] == pytest.approx(0.0, abs=1e-12)


def test_sft_discrepancy_is_reported():
    runs = [fake_run("spac", 0, [0.1, 0.2]), fake_run("spin", 0, [0.125, 0.2])]
    assert sft_by_seed(runs)["max_discrepancy"] == pytest.approx(0.025)


def test_recipe_args_put_the_method_flags_last():
    """Plain DPO's `--num_iterations 1` must win over a shared override such as `--num_iterations 2`."""
    args = recipe_args(METHODS["dpo"], 7, ["--num_iterations", "2"])
    assert args[:2] == ["--config", "src/spac_hf/default/dpo.yaml"]
    assert args[-4:] == ["--num_iterations", "1", "--iteration_data", "full"]
    assert args[args.index("--seed") + 1] == "7"


# --------------------------------------------------------------------------------------------------- quick run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("ground_truth")
    argv = ["--quick", "--work-dir", str(root / "work"), "--out", str(root / "out")]
    results = benchmark.main(argv)
    return root, argv, results


def _finite_numbers(value, path="results"):
    """Every number in a nested structure, with where it is, so a failure names the NaN."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _finite_numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _finite_numbers(v, f"{path}[{i}]")


def test_quick_run_writes_every_output(quick):
    root, _, results = quick
    out = root / "out"
    for name in ("results.json", "table.md", "table.csv", "true_reward.png", "dataset/README.md",
                 "dataset/data/results.jsonl"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "true_reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == results["summary"]
    assert saved["environment"]["packages"]["torch"]
    numbers = dict(_finite_numbers(saved["summary"]))
    assert numbers and all(math.isfinite(v) for v in numbers.values()), numbers

    summary = saved["summary"]
    assert summary["seeds"] == [0, 1]
    assert summary["sft"]["max_discrepancy"] == 0.0  # same model, same seed: the same evaluation in every run
    cells = {(c["method"], c["examples_seen"]): c for c in summary["cells"]}
    assert set(cells) == {("dpo", 64), ("spac", 32), ("spac", 64)}  # 64 pairs: 2 x 32 for SPAC, once for DPO
    assert all(set(c["values"]) == {"0", "1"} for c in cells.values())
    assert [(p["baseline"], p["examples_seen"]) for p in summary["paired"]] == [("dpo", 64)]
    assert {(g["method"], g["examples_seen"]) for g in summary["gains_over_sft"]} == set(cells)
    assert saved["settings"]["budget_check"]["all_equal"]
    assert len(saved["runs"]) == 4 and saved["runs_reused"] == 0
    for run in saved["runs"]:
        assert run["status"] == "done" and run["settings"]["true_reward_prompts"] == 10
        assert [r["iteration"] for r in run["iterations"]] == ([0, 1] if run["method"] == "dpo" else [0, 1, 2])

    csv_lines = (out / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("method,label,iteration,examples_seen") and csv_lines[0].endswith("seed_0,seed_1")
    assert len(csv_lines) == 1 + 1 + len(cells)  # header, SFT, one row per cell
    table = (out / "table.md").read_text()
    assert "| SFT (starting model) |" in table and "| SPAC |" in table and "±" in table
    assert "## Gain over the SFT model" in table

    rows = [json.loads(line) for line in (out / "dataset/data/results.jsonl").read_text().splitlines()]
    validate_results_rows(rows)
    means = {r["model"]: r["value"] for r in rows if r["metric"] == "mean_over_seeds"}
    assert set(means) == {"sft", "dpo-iter1", "spac-iter1", "spac-iter2"}
    assert means["spac-iter2"] == pytest.approx(cells[("spac", 64)]["mean"])
    variants = {(r["model"], r["method"], r["variant"]) for r in rows if r["metric"] == "num_seeds"}
    assert {("dpo-iter1", "dpo", "dpo"), ("spac-iter2", "spac", "spac")} <= variants

    # The protocol's view of the run: equal planned and spent budgets (4 steps, 64 pairs), one decision line.
    view = json.loads((out / "protocol.json").read_text())
    spent = {a: (v["spent"]["optimizer_steps"], v["spent"]["pairs_seen"]) for a, v in view["arms"].items()}
    assert spent == {"dpo": (4, 64), "spac": (4, 64)}
    assert view["spent_flags"] == [] and [d["a_arm"] + "-" + d["b_arm"] for d in view["decisions"]] == ["spac-dpo"]


def test_rerun_reuses_finished_runs(quick):
    root, argv, _ = quick
    records = sorted((root / "work").glob(f"*/seed_*/{RECORD_FILE}"))
    iterates = sorted((root / "work").glob("*/seed_*/iter_*/model.safetensors"))
    assert len(records) == 4 and iterates
    before = {p: p.stat().st_mtime_ns for p in records + iterates}
    again = benchmark.main(argv)
    assert again["runs_reused"] == 4
    assert {p: p.stat().st_mtime_ns for p in records + iterates} == before
    assert again["summary"] == json.loads((root / "out" / "results.json").read_text())["summary"]


def test_a_run_folder_with_other_arguments_is_refused(quick):
    root, _, _ = quick
    with pytest.raises(ValueError, match="other arguments"):
        run_method(METHODS["spac"], 0, root / "work", ["--true_reward_prompts", "11"])


def test_push_to_hub_uploads_the_results_dataset(quick, hub_server):
    from hub_server import USER

    root, argv, _ = quick
    benchmark.main([*argv, "--push-to-hub", f"{USER}/spac-ground-truth"])  # reuses the finished runs
    stored = hub_server.files(f"{USER}/spac-ground-truth", repo_type="dataset")
    assert stored["data/results.jsonl"] == (root / "out" / "dataset" / "data" / "results.jsonl").read_bytes()
    assert "configs:" in stored["README.md"].decode()


@pytest.mark.parametrize(
    "methods, overrides, refusal",
    [
        # 48 pairs, batch 16: one pass of DPO is 3 steps, SPAC's 2 parts of 24 pairs 2 x 2 = 4.
        (
            ["dpo", "spac"],
            ["--max_train_samples", "48"],
            "arm 'dpo': budget.optimizer_steps 3 differs from the comparison's 4",
        ),
        # The theory preset trains every iteration on all the pairs: twice SPAC's steps and pairs here.
        (["spac", "spac_theory"], [], "arm 'spac_theory': budget.pairs_seen 128 differs from the comparison's 64"),
        (["dpo", "iterative_dpo"], [], "no primary contrast declared"),
    ],
)
def test_an_unfair_comparison_is_refused_before_any_run(tmp_path, methods, overrides, refusal):
    from benchmarks.protocol import ProtocolError

    argv = ["--quick", "--methods", *methods, "--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    with pytest.raises(ProtocolError, match=re.escape(refusal)):
        benchmark.main([*argv, "--", *overrides])
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()


def test_a_bad_dataset_id_fails_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="repo_id"):
        benchmark.main(["--quick", "--work-dir", str(tmp_path / "w"), "--push-to-hub", "bad id/x"])
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------------------------------- coverage knob


def test_coverage_data_has_the_behaviour_policy_it_was_asked_for(tmp_path):
    from spac_hf.tasks import reviews

    from benchmarks.ground_truth.coverage import SHIPPED_DATA, build_coverage_data

    stats = build_coverage_data(tmp_path / "sparse", good_mass=0.5, rare=29, seed=3)
    rows = [json.loads(line) for line in (tmp_path / "sparse" / "train.jsonl").read_text().splitlines()]
    shipped = [json.loads(line) for line in (SHIPPED_DATA / "train.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in shipped] and stats["pairs"] == len(rows)
    # Two draws from mu: the good response is in a pair with probability 1 - (1 - 0.5)^2 = 0.75.
    share = stats["pairs_with_the_good_response"] / len(rows)
    assert abs(share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(rows)), share
    assert stats["mean_reward_good"] > stats["mean_reward_rare"] + 0.3  # the covered response is the good one
    # Labels follow the true reward (Bradley-Terry): the chosen response is better in most pairs that differ.
    gaps = [reviews.reward(r["prompt"], r["chosen"]) - reviews.reward(r["prompt"], r["rejected"]) for r in rows]
    differing = [gap for gap in gaps if gap != 0]
    agree = sum(gap > 0 for gap in differing)
    assert agree / len(differing) > 0.7
    assert (tmp_path / "sparse" / "test.jsonl").read_bytes() == (SHIPPED_DATA / "test.jsonl").read_bytes()
    # Seeded: the same arguments give the same file; more mass on the good response, more pairs with it.
    dense = build_coverage_data(tmp_path / "dense", good_mass=0.9, rare=2, seed=3)
    build_coverage_data(tmp_path / "again", good_mass=0.9, rare=2, seed=3)
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (tmp_path / "dense" / "train.jsonl").read_bytes()
    assert dense["pairs_with_the_good_response"] > stats["pairs_with_the_good_response"]


@pytest.mark.parametrize("good_mass, rare, message", [(0.0, 5, "`good_mass`"), (1.5, 5, "`good_mass`"),
                                                      (0.5, 0, "`rare`")])  # fmt: skip
def test_coverage_options_are_checked(tmp_path, good_mass, rare, message):
    from benchmarks.ground_truth.coverage import build_coverage_data

    with pytest.raises(ValueError, match=message):
        build_coverage_data(tmp_path / "x", good_mass=good_mass, rare=rare)
    assert not (tmp_path / "x").exists()


def test_final_paired_differences_compare_last_iterates():
    from benchmarks.ground_truth.stats import final_paired_differences

    runs = [fake_run("spac_theory", 0, [0.1, 0.2, 0.5], 810), fake_run("spac_theory", 1, [0.1, 0.3, 0.4], 810),
            fake_run("dpo", 0, [0.1, 0.3], 810), fake_run("dpo", 1, [0.1, 0.25], 810)]  # fmt: skip
    (row,) = final_paired_differences(runs, "spac_theory", ["dpo", "spin"])
    assert row["differences"] == {"0": pytest.approx(0.2), "1": pytest.approx(0.15)}
    assert row["mean"] == pytest.approx(0.175) and row["baseline"] == "dpo"


def test_theory_preset_method_reads_its_own_yaml():
    assert METHODS["spac_theory"].config_path.name == "spac_theory.yaml"
    assert METHODS["spac"].config_path.name == "spac.yaml"
