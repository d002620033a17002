"""Every decision line a README quotes comes from a committed result file: the theory benchmark's from
results/theory/results.json, the review task's recomputed with `benchmarks.protocol.decide` from its files."""

import csv
import json
import re
from pathlib import Path

import pytest

from benchmarks.coverage.data import REGIMES as COVERAGE_REGIMES
from benchmarks.protocol import Contrast, decide, quoted


ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "results" / "theory"
# Where a claim from the theory benchmark may be made, and the part of the file that holds it.
CLAIMS = {
    "benchmarks/theory/README.md": ("## Results", "## Code"),
    "README.md": ("## Is SPAC worth using", "\n## Quick start"),
    "benchmarks/README.md": ("## What they found", None),
    "docs/algorithm.md": ("## Which settings", None),
}


def table_rows(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def part(path: str) -> str:
    text = (ROOT / path).read_text()
    start, end = CLAIMS[path]
    text = text[text.index(start) :]
    return text[: text.index(end)] if end else text


def theory_decisions() -> dict[tuple[str, str], set[str]]:
    results = json.loads((THEORY / "results.json").read_text())
    out: dict[tuple[str, str], set[str]] = {}
    for d in results["decisions"]:
        out.setdefault((d["regime"], d["checkpoint_rule"]), set()).add(d["line"])
    return out


@pytest.mark.parametrize("path", list(CLAIMS))
def test_quoted_theory_decisions_are_in_the_committed_results(path):
    decisions = theory_decisions()
    quotes = quoted(part(path))
    assert quotes, f"{path} quotes no decision line"
    # The coverage benchmark's quotes name its regimes; tests/test_coverage_readme.py ties them to results/coverage.
    missing = [q for q in quotes if q[0] not in COVERAGE_REGIMES and q[2] not in decisions.get((q[0], q[1]), set())]
    assert not missing, missing


def test_the_theory_readme_shows_the_committed_tables_and_says_whether_they_are_complete():
    results = json.loads((THEORY / "results.json").read_text())
    readme = part("benchmarks/theory/README.md")
    committed = set(table_rows((THEORY / "table.md").read_text()))
    rows = [r for r in table_rows(readme) if re.search(r"\d\.\d{3} ± \d\.\d{3}", r)]
    assert len(rows) >= 9 and not [r for r in rows if r not in committed]
    assert ("PARTIAL" in (ROOT / "benchmarks/theory/README.md").read_text()) == results["partial"]
    assert len(quoted(readme)) >= 10
    # The summary's count of the primary contrast's verdicts (300 steps, validation rule) is the file's.
    budget = results["design"]["primary_budget"]
    primary = [
        d["verdict"]
        for d in results["decisions"]
        if d["contrast"] == "best SPAC arm minus best baseline"
        and d["budget"] == budget
        and d["checkpoint_rule"] == "validation"
    ]
    counts = {v: primary.count(v) for v in ("worse", "no worse than", "undecided", "better")}
    text = " ".join(readme.split())
    assert f'"worse" at {counts["worse"]} of the {len(primary)}' in text and counts["better"] == 0
    assert f'"no worse than +0.050" (within the declared margin) at {counts["no worse than"]}' in text
    assert f'"undecided" at {counts["undecided"]}' in text
    assert f"{results['compute_seconds']:.0f} s of one loaded core" in text


def paired_line(name: str, a: list[float], b: list[float]) -> str:
    return decide([x - y for x, y in zip(a, b, strict=True)], Contrast(name, "a", "b")).line


def review_task_lines() -> list[str]:
    """The review task's decision lines that READMEs quote, recomputed from the committed files."""
    lines = []
    confirmation = {
        (r["method"], r["iteration"]): r
        for r in csv.DictReader((ROOT / "recipes/default/tuning/confirmation/table.csv").open())
    }
    seeds = [f"seed_{i}" for i in range(int(confirmation[("spac", "3")]["count"]))]
    spac, dpo = ([float(confirmation[(m, "3")][s]) for s in seeds] for m in ("spac", "iterative_dpo"))
    lines.append(paired_line("SPAC minus iterative DPO", spac, dpo))
    ground_truth = json.loads((ROOT / "results/ground_truth/results.json").read_text())["summary"]["paired"]
    for baseline, name in (("dpo", "SPAC minus DPO"), ("iterative_dpo", "SPAC minus iterative DPO")):
        row = next(
            p for p in ground_truth if (p["subject"], p["baseline"], p["examples_seen"]) == ("spac", baseline, 810)
        )
        differences = list(row["differences"].values())
        lines.append(decide(differences, Contrast(name, "a", "b")).line)
    return lines


def test_the_review_task_decision_lines_are_the_committed_ones():
    confirmation, gt_dpo, gt_iterative = review_task_lines()
    assert confirmation.endswith(": worse")  # the tuned default: SPAC loses to iterative DPO
    for path in ("benchmarks/ground_truth/README.md", "benchmarks/README.md", "README.md"):
        text = " ".join((ROOT / path).read_text().split())
        assert confirmation in text, path
    ground_truth = " ".join((ROOT / "benchmarks/ground_truth/README.md").read_text().split())
    assert gt_dpo in ground_truth and gt_iterative in ground_truth
    assert "indistinguishable" not in (ROOT / "benchmarks/README.md").read_text()


def test_ground_truth_coverage_numbers_are_the_committed_ones():
    results_dir = ROOT / "results" / "ground_truth_coverage_g0.5_k29"
    committed = set(table_rows((results_dir / "table.md").read_text()))
    readme = (ROOT / "benchmarks" / "ground_truth" / "README.md").read_text()
    section = readme[readme.index("## Coverage: the theory's regime") : readme.index("## Files")]
    assert "breaks the fair-comparison protocol" in section  # rule 1: 510 optimizer steps against 51
    rows = [r for r in table_rows(section) if re.search(r"\d\.\d{3}", r)]
    assert len(rows) >= 8 and not [r for r in rows if r not in committed]
    mixture = json.loads((results_dir / "mixture.json").read_text())
    for run in mixture["runs"]:
        assert f"{run['mixture']:.3f}" in section and f"{run['last_iterate']:.3f}" in section
    runs = json.loads((results_dir / "results.json").read_text())["runs"]
    theory = {r["seed"]: [i["true_reward"] for i in r["iterations"]] for r in runs if r["method"] == "spac_theory"}
    best = {seed: max(range(1, len(v)), key=lambda t: v[t]) for seed, v in theory.items()}
    for seed, t in best.items():
        assert f"iteration {t} in seed {seed} ({theory[seed][t]:.3f})" in section.replace("\n", " ")
