"""Every number in benchmarks/theory/README.md's result tables comes from the committed run (results/theory)."""

import json
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "benchmarks" / "theory" / "README.md"
RESULTS = ROOT / "results" / "theory"


def table_rows(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def test_readme_tables_are_rows_of_the_committed_tables():
    committed = set(table_rows((RESULTS / "table.md").read_text()))
    readme = README.read_text()
    results_part = readme[readme.index("## Results") : readme.index("## Code")]
    rows = [r for r in table_rows(results_part) if re.search(r"\d\.\d{3} ± \d\.\d{3}", r)]
    assert len(rows) >= 20  # the README shows the committed tables, not prose alone
    missing = [r for r in rows if r not in committed]
    assert not missing, missing


def test_readme_headline_matches_the_results():
    """The headline sentence's numbers: SPAC (theory preset) - DPO on sparse-30, paired, at n = 3000."""
    results = json.loads((RESULTS / "results.json").read_text())
    sparse = next(e for e in results["environments"] if e["name"] == "sparse-30")
    row = next(r for r in sparse["paired_differences"] if r["comparison"] == "spac_theory - dpo" and r["n"] == 3000)
    assert row["mean"] + row["ci95"] < 0  # the interval excludes zero, in SPAC's favour
    assert f"{row['mean']:.3f} ± {row['ci95']:.3f}" in README.read_text()


def test_ground_truth_coverage_numbers_are_the_committed_ones():
    results_dir = ROOT / "results" / "ground_truth_coverage_g0.5_k29"
    committed = set(table_rows((results_dir / "table.md").read_text()))
    readme = (ROOT / "benchmarks" / "ground_truth" / "README.md").read_text()
    part = readme[readme.index("## Coverage: the theory's regime") : readme.index("## Files")]
    rows = [r for r in table_rows(part) if re.search(r"\d\.\d{3}", r)]
    assert len(rows) >= 8 and not [r for r in rows if r not in committed]
    mixture = json.loads((results_dir / "mixture.json").read_text())
    for run in mixture["runs"]:
        assert f"{run['mixture']:.3f}" in part and f"{run['last_iterate']:.3f}" in part
    runs = json.loads((results_dir / "results.json").read_text())["runs"]
    theory = {r["seed"]: [i["true_reward"] for i in r["iterations"]] for r in runs if r["method"] == "spac_theory"}
    best = {seed: max(range(1, len(v)), key=lambda t: v[t]) for seed, v in theory.items()}
    for seed, t in best.items():
        assert f"iteration {t} in seed {seed} ({theory[seed][t]:.3f})" in part.replace("\n", " ")
