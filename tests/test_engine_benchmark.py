"""benchmarks/cost/engines.py: a quick run on the embedded default's model writes complete results, the report
re-renders from them, and the README quotes the committed numbers. No timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest


pytest.importorskip("ctranslate2")

from benchmarks.cost import engines  # noqa: E402
from benchmarks.cost.engines_report import grid_cells, ifeval_ratios, ifeval_runs, matmul_limit, report  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "cost" / "generation"
README = " ".join((ROOT / "benchmarks" / "cost" / "README.md").read_text().split())  # line breaks as spaces
SUMMARY = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())


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
        runs = list(ifeval_runs(section["rows"]).values())
        for rows in runs:  # every ratio is taken within its own run
            ratios, best = ifeval_ratios(rows), ifeval_ratios(rows, "best hf")
            float32, int8 = ratios["ctranslate2-float32"], ratios["ctranslate2-int8"]
            assert f"{key}: CTranslate2 float32 {float32:.1f}x and int8 {int8:.1f}x" in README
            if any(row["backend"].startswith("hf-p") for row in rows):  # the strongest transformers baseline
                best32, best8 = best["ctranslate2-float32"], best["ctranslate2-int8"]
                assert f"**float32 {best32:.1f}x and int8 {best8:.1f}x**" in README
                if rows is runs[-1]:  # the summary quotes the latest run
                    assert f"**float32 {best32:.1f}x and int8 {best8:.1f}x**" in SUMMARY
                    assert f"float32 {float32:.1f}x and int8 {int8:.1f}x one `generate` process" in SUMMARY
            for row in rows:
                if row["backend"].startswith("hf"):  # the baselines' own rates
                    assert key != "32x512_batch16" or f"{row['backend']}: {row['tokens_per_s']} tokens/s" in README
                elif row["backend"].endswith("-w1"):  # the layout before workers
                    label = row["backend"].removeprefix("ctranslate2-")
                    assert f"{label} {ratios[row['backend']]:.1f}x" in README
    for row in results["sections"]["kl"]["rows"]:
        assert f"{row['model']}: mean KL {row['mean_kl']:.2e}" in README


def test_ratios_are_taken_within_each_run():
    rows = [
        {"backend": "hf", "tokens_per_s": 10.0},  # an earlier run, without a run stamp
        {"backend": "ctranslate2-int8", "tokens_per_s": 50.0},
        {"run": "b", "backend": "hf", "tokens_per_s": 20.0},
        {"run": "b", "backend": "hf-p2", "tokens_per_s": 40.0},
        {"run": "b", "backend": "ctranslate2-int8", "tokens_per_s": 80.0},
    ]
    assert list(ifeval_runs(rows)) == ["earlier", "b"]
    assert ifeval_ratios(rows) == {"hf": 1.0, "hf-p2": 2.0, "ctranslate2-int8": 4.0}  # the latest run
    assert ifeval_ratios(rows, "best hf") == {"hf": 0.5, "hf-p2": 1.0, "ctranslate2-int8": 2.0}
    assert ifeval_ratios(rows[:2]) == {"hf": 1.0, "ctranslate2-int8": 5.0}


def test_readme_quotes_the_profile_and_the_shares():
    import re

    from benchmarks.cost.engines_report import best_share

    profile = (COMMITTED / "profile_hf_decode_b16_l400.txt").read_text()
    assert f"{re.search(r'([0-9.]+) ms per step', profile)[1]} ms per step" in README
    for op in ("aten::mm", "aten::cat"):
        share = re.search(re.escape(op) + r"\s+([0-9.]+)%", profile)[1]
        assert f"`{op}` " in README and f"{share}%" in README
    results = json.loads((COMMITTED / "engines.json").read_text())
    for model in ("smollm2", "default"):
        shares = [best_share(results, model, k) for k in engines.BACKENDS]
        assert (
            f"{model}: transformers {shares[0]:.0%}, CTranslate2 float32 {shares[1]:.0%}, int8 {shares[2]:.0%}"
            in README
        )
    for seconds in results["sections"]["grid"]["conversion_s"].values():
        assert f"{seconds} s for" in README


def test_readme_quotes_the_grid_ratios():
    results = json.loads((COMMITTED / "engines.json").read_text())
    cells = grid_cells(results)
    for backend, label in (("ctranslate2-float32", "float32"), ("ctranslate2-int8", "int8")):
        ratios = [
            row["tokens_per_s"] / cells[("smollm2", batch, "hf")]["tokens_per_s"]
            for (model, batch, kind), row in cells.items()
            if model == "smollm2" and kind == backend
        ]
        assert f"{label} {min(ratios):.1f}x to {max(ratios):.1f}x" in README
    best = max(r["tokens_per_s"] for (m, _, _), r in cells.items() if m == "smollm2")
    assert f"best measured here is {best} tokens/s" in README


def test_hf_processes_take_the_engines_batches_and_return_generates_texts(sharp_dir, tokenizer):
    """`hf-p<k>`, the fair transformers baseline, generates what one `generate` process does: each of its one-thread
    processes takes the next batch when free, as the engine's workers do, and every prompt comes back in its place."""
    import random

    from transformers import AutoModelForCausalLM

    from spac_hf.data import tokenize_prompt
    from spac_hf.generation import generate_responses

    from helpers import sentence

    rng = random.Random(0)
    prompts = [tokenize_prompt(tokenizer, {"prompt": sentence(rng, 1, 12) + ":"}) for _ in range(7)]
    model = AutoModelForCausalLM.from_pretrained(sharp_dir)
    expected = [
        generate_responses(model, tokenizer, [p], max_new_tokens=6, temperature=0.0, distributed=False)[0]
        for p in prompts
    ]
    texts, seconds = engines._hf_processes(sharp_dir, prompts, processes=2, max_new_tokens=6, batch_size=3)
    assert texts == expected and len(set(texts)) > 2 and seconds > 0
