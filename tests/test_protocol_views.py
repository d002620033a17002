"""Every committed comparison records per-arm budgets and tuning trials (issue 22): the runs from before the protocol
carry a protocol.json written by their benchmark's report, which flags the ones that broke the budget."""

import json
from pathlib import Path

import pytest

from benchmarks.ground_truth.protocol_view import PROTOCOL_FILE


ROOT = Path(__file__).resolve().parents[1]
CONFIRMATION = ROOT / "recipes" / "default" / "tuning" / "confirmation"
SEARCH = ROOT / "recipes" / "default" / "tuning" / "search.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _comparison_files() -> list[Path]:
    """Every results.json that compares two or more arms: by its run records (`runs`) or protocol records."""
    found = []
    for path in sorted([*(ROOT / "results").rglob("results.json"), CONFIRMATION / "results.json"]):
        if "dataset" in path.parts:
            continue
        data = _load(path)
        arms = {r.get("method") for r in data.get("runs") or []} | {r.get("arm") for r in data.get("records") or []}
        if len(arms - {None}) > 1:
            found.append(path)
    return found


def test_the_known_comparisons_are_found():
    names = {p.parent.relative_to(ROOT).as_posix() for p in _comparison_files()}
    expected = ["results/theory", "results/ground_truth", "results/ground_truth_coverage_g0.5_k29"]
    expected += ["results/instruction_following", "recipes/default/tuning/confirmation"]
    assert set(expected) <= names


@pytest.mark.parametrize("path", _comparison_files(), ids=lambda p: p.parent.name)
def test_every_comparison_records_per_arm_budgets_and_trials(path):
    data = _load(path)
    if data.get("records"):  # written under the protocol: every row has its spend and its trial
        for row in data["records"]:
            assert isinstance(row["optimizer_steps"], int) and isinstance(row["pairs_seen"], int), row
            assert row["trial"] is not None, row
        assert {t["arm"] for t in data["trials"]} == {r["arm"] for r in data["records"]}
        return
    view = _load(path.parent / PROTOCOL_FILE)
    assert set(view["arms"]) == {r["method"] for r in data["runs"]}
    for arm, entry in view["arms"].items():
        runs = [r for r in data["runs"] if r["method"] == arm]
        # The spend is the runs' own: steps and pairs at the last iterate, the same in every seed here.
        assert entry["spent"]["optimizer_steps"] == runs[0]["iterations"][-1]["optimizer_steps"]
        assert entry["spent"]["pairs_seen"] == runs[0]["iterations"][-1]["examples_seen"]
        assert entry["spent"]["tokens_trained"] == "not recorded"
        assert isinstance(entry["tuning_trials"], int) and entry["tuning"]
    assert view["decisions"] and all(d["line"] for d in view["decisions"])


def _flagged(view: dict) -> set[str]:
    return {line.split(" ")[1] for line in view["spent_flags"]}


def test_the_unfair_runs_are_flagged_and_the_fair_ones_are_not():
    coverage = _load(ROOT / "results/ground_truth_coverage_g0.5_k29" / PROTOCOL_FILE)
    assert coverage["declared_budget"]["optimizer_steps"] == 51
    assert "arm spac_theory (seed 0): optimizer_steps 510 vs budget 51 (+900%)" in coverage["spent_flags"]
    assert _flagged(coverage) == {"spac_theory"}
    assert any("spac_theory" in p and "optimizer_steps 510" in p for p in coverage["validate"])
    # Its claims at unequal compute say which rule they break; the same contrast at 51 steps each is undecided.
    unequal = [d for d in coverage["decisions"] if not d["equal_budget"]]
    assert unequal and all(d["breaks"].startswith("rule 1 (equal compute)") for d in unequal)
    at_51 = [d for d in coverage["decisions"] if d["regime"].endswith("each arm at 51 steps")]
    at_51 = next(d for d in at_51 if d["b_arm"] == "spac")
    assert at_51["verdict"] == "undecided" and at_51["mean"] < 0

    following = _load(ROOT / "results/instruction_following" / PROTOCOL_FILE)
    assert _flagged(following) == {"spac_theory", "dpo"}  # 20 and 5 steps against SPAC's 6
    assert "arm spac_theory (seed 2): optimizer_steps 20 vs budget 6 (+233%)" in following["spent_flags"]

    for folder in (ROOT / "results/ground_truth", CONFIRMATION):
        assert _load(folder / PROTOCOL_FILE)["spent_flags"] == []
    old = _load(ROOT / "results/ground_truth" / PROTOCOL_FILE)
    assert {a["tuning_trials"] for a in old["arms"].values()} == {0}
    assert "trials_per_arm must be >= 1, got 0" in old["validate"]


def test_the_confirmation_decision_is_the_readme_quote():
    view = _load(CONFIRMATION / PROTOCOL_FILE)
    line = next(d["line"] for d in view["decisions"] if d["b_arm"] == "iterative_dpo")
    assert line.startswith("SPAC (paper settings) minus iterative DPO: ")
    assert line.endswith(": -0.071 (95% CI -0.092 to -0.050, 5 seeds, 0 wins): worse")
    assert "SPAC minus iterative DPO: -0.071 (95% CI -0.092 to -0.050, 5 seeds, 0 wins): worse" in (
        " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    )
    assert {a["tuning_trials"] for a in view["arms"].values()} == {6} and view["validate"] == []


def test_the_one_seed_comparison_says_what_it_does_not_record():
    view = _load(ROOT / "results/default" / PROTOCOL_FILE)
    compared = _load(ROOT / "results/default/comparison.json")
    assert set(view["arms"]) == {m["method"] for m in compared["methods"].values()}
    for entry in view["arms"].values():
        assert entry["spent"]["optimizer_steps"] == "not recorded" and entry["tuning_trials"] == "not recorded"
    assert all("no decision (1 paired seed" in d["line"] for d in view["decisions"])


@pytest.mark.parametrize(
    "folder",
    [
        "results/ground_truth",
        "results/ground_truth_coverage_g0.5_k29",
        "recipes/default/tuning/confirmation",
        "results/instruction_following",
    ],
)
def test_protocol_json_is_what_the_report_writes(folder, tmp_path):
    """The committed file is the report code's output on the committed results.json, not an edit by hand."""
    from benchmarks.ground_truth import report as ground_truth
    from benchmarks.instruction_following import report as instruction_following

    results = _load(ROOT / folder / "results.json")
    committed = _load(ROOT / folder / PROTOCOL_FILE)
    if results["benchmark"] == "instruction_following":
        instruction_following.write_protocol(results, tmp_path)
    else:
        tuning = ground_truth.search_tuning(SEARCH.relative_to(ROOT)) if folder.startswith("recipes") else None
        ground_truth.write_protocol(results, tmp_path, tuning, committed["written_by"])
    rebuilt = _load(tmp_path / PROTOCOL_FILE)
    rebuilt["written_by"] = committed["written_by"]
    assert rebuilt == committed


def test_default_protocol_is_what_the_code_writes(tmp_path, monkeypatch):
    from benchmarks.default_tuning import run

    committed = _load(ROOT / "results/default" / PROTOCOL_FILE)
    monkeypatch.setattr(run, "COMPARISON", tmp_path / "comparison.json")
    (tmp_path / "comparison.json").write_text((ROOT / "results/default/comparison.json").read_text())
    assert run.comparison_protocol() == committed


def test_readme_decision_lines_come_from_the_protocol_files():
    """The review-task lines the READMEs quote are decide()'s lines in the protocol.json of the run they cite."""
    lines = {
        "results/ground_truth": (
            "SPAC (paper settings) minus SPIN: +0.082 (95% CI +0.050 to +0.115, 5 seeds, 5 wins): better"
        ),
        "recipes/default/tuning/confirmation": (
            "SPAC (paper settings) minus SPIN: +0.095 (95% CI +0.038 to +0.152, 5 seeds, 5 wins): better"
        ),
    }
    for folder, line in lines.items():
        assert line in [d["line"] for d in _load(ROOT / folder / PROTOCOL_FILE)["decisions"]], folder
        for readme in ("benchmarks/README.md", "benchmarks/ground_truth/README.md"):
            assert line in " ".join((ROOT / readme).read_text(encoding="utf-8").split()), (folder, readme)


def test_instruction_following_readme_spend_is_the_protocol_files():
    view = _load(ROOT / "results/instruction_following" / PROTOCOL_FILE)
    spent = {arm: (v["spent"]["optimizer_steps"], v["spent"]["pairs_seen"]) for arm, v in view["arms"].items()}
    theory, spac, dpo = spent["spac_theory"], spent["spac"], spent["dpo"]
    text = " ".join((ROOT / "benchmarks/instruction_following/README.md").read_text(encoding="utf-8").split())
    assert f"the preset's {theory[0]} steps and {theory[1]} pairs against SPAC's {spac[0]} and {spac[1]}" in text
    assert f"one-pass DPO's {dpo[0]} steps" in text and f"one-pass DPO ({dpo[0]} steps)" in text
    assert all(d["verdict"] == "undecided" for d in view["decisions"]) and "(all undecided)" in text


def test_the_coverage_readme_quotes_the_equal_steps_decision():
    view = _load(ROOT / "results/ground_truth_coverage_g0.5_k29" / PROTOCOL_FILE)
    (line,) = [
        d["line"]
        for d in view["decisions"]
        if d["regime"].endswith("each arm at 51 steps") and (d["a_arm"], d["b_arm"]) == ("spac_theory", "spac")
    ]
    assert line in " ".join((ROOT / "benchmarks/ground_truth/README.md").read_text(encoding="utf-8").split())
