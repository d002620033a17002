"""benchmarks/cost/engines.py: a quick run on the embedded default's model writes complete results, the report
re-renders from them, and the README quotes the committed numbers. No timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest


pytest.importorskip("ctranslate2")

from benchmarks.cost import engines  # noqa: E402
from benchmarks.cost.engines_report import grid_cells, ifeval_ratios, matmul_limit, report  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "cost" / "generation"
README = (ROOT / "benchmarks" / "cost" / "README.md").read_text()


def test_quick_run_writes_every_cell_and_the_kl(tmp_path):
    out = tmp_path / "out"
    argv = ["--models", "src/spac_hf/default/model", "--out", str(out), "--work", str(tmp_path / "work")]
    engines.main(["--section", "grid", "--batch-sizes", "1", "3", "--grid-new-tokens", "5", *argv])
    engines.main(["--section", "kl", "--kl-prompts", "4", "--report", *argv])
    results = json.loads((out / "engines.json").read_text())
    cells = grid_cells(results)
    assert set(cells) == {("default", b, k) for b in (1, 3) for k in engines.BACKENDS}
    for (_, batch, _), row in cells.items():
        assert row["tokens"] == batch * 5  # the stop token is suppressed: every backend does the same work
        assert row["tokens_per_s"] > 0
    (kl,) = results["sections"]["kl"]["rows"]
    assert kl["positions"] > 0 and math.isfinite(kl["mean_kl"]) and kl["mean_kl"] >= 0
    assert (out / "engines.md").read_text() == report(results) + "\n"
    assert (out / "engines.png").stat().st_size > 0


def test_committed_report_renders_from_the_committed_results():
    results = json.loads((COMMITTED / "engines.json").read_text())
    assert (COMMITTED / "engines.md").read_text() == report(results) + "\n"


def test_readme_quotes_the_committed_numbers():
    results = json.loads((COMMITTED / "engines.json").read_text())
    assert f"**{matmul_limit(results)} GFLOP/s**" in README
    for key, section in results["sections"]["ifeval"].items():
        ratios = ifeval_ratios(section["rows"])
        if "ctranslate2-float32" in ratios:
            assert f"{key}: CTranslate2 float32 {ratios['ctranslate2-float32']:.1f}x" in README
    for row in results["sections"]["kl"]["rows"]:
        assert f"{row['model']}: mean KL {row['mean_kl']:.2e}" in README
