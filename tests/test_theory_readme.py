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
