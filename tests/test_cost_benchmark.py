"""The cost benchmark (benchmarks/cost): the quick run's outputs and the batches the timed steps see.

No test here asserts a timing: performance is what the benchmark measures, not what a test can check on a shared
machine. The tests check that the benchmark measures the right thing and writes complete, finite results.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds `benchmarks/`

from benchmarks.cost import run as cost_run  # noqa: E402
from benchmarks.cost.models import SIZES, build_tokenizer, preference_rows  # noqa: E402
from benchmarks.cost.variants import SEQUENCES_PER_EXAMPLE, VARIANTS  # noqa: E402

OUTPUTS = ("results.json", "table.md", "table.csv", "ratios.png", "iteration_share.png")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `--quick` run (about 15 s), shared by the tests of this module."""
    out = tmp_path_factory.mktemp("cost")
    previous = torch.get_num_threads()
    try:
        results = cost_run.main(["--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(previous)
    return out, results


def _numbers(value, path=""):
    """Every number in a JSON-like tree, with its path."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}[{i}]")


def test_quick_run_writes_every_file_atomically(quick):
    out, _ = quick
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for name in ("ratios.png", "iteration_share.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["benchmark"] == "cost" and on_disk["environment"]["packages"]["trl"]


def test_every_number_is_finite_and_the_structure_complete(quick):
    _, results = quick
    bad = [(path, x) for path, x in _numbers(results) if not math.isfinite(x)]
    assert not bad, bad
    assert [entry["size"] for entry in results["sizes"]] == ["0.1M"]
    for entry in results["sizes"]:
        assert entry["parameters"] > 0
        for variant in VARIANTS:
            timing = entry["time"][variant]
            assert timing["steps"] == results["settings"]["steps"]["0.1M"]
            assert timing["step_seconds"] > 0 and timing["ratio_to_dpo"] > 0 and timing["ratio_to_dpo_cpu"] > 0
            assert set(timing["phases_seconds"]) >= {"data", "forward", "backward", "optimizer"}
            memory = entry["memory"][variant]
            assert memory["peak_bytes"] >= memory["before_bytes"] > 0 and memory["saved_bytes"] > 0
            assert set(entry["memory"]["ratios"][variant]) == {"peak", "step", "saved"}
        # Each ratio to DPO is the median of the per-round (paired) ratios it reports, one per interleaved round.
        for variant in VARIANTS:
            timing = entry["time"][variant]
            assert len(timing["ratio_per_round"]) >= 1
            assert timing["ratio_to_dpo"] == pytest.approx(statistics.median(timing["ratio_per_round"]), abs=1e-4)
        assert entry["generation"]["tokens_per_second"] > 0 and sum(entry["generation"]["tokens_per_call"]) > 0
    (share,) = results["iteration_share"]
    assert share["optimizer_steps"] > 0 and share["generated_tokens"] > 0
    assert sum(share["share"].values()) == pytest.approx(1.0)
    assert all(seconds >= 0 for seconds in share["seconds"].values())


def test_spac_and_dpo_steps_see_the_same_batch_with_three_halves_the_rows(quick):
    _, results = quick
    step = results["settings"]["step"]
    length = step["prompt_tokens"] + step["response_tokens"]
    for entry in results["sizes"]:
        shapes = entry["batch_shapes"]
        for variant in VARIANTS:  # every timed batch of a trainer has one shape: the lengths are fixed
            assert shapes[variant] == [[SEQUENCES_PER_EXAMPLE[variant] * step["batch_size"], length]]
        (dpo_rows, dpo_length), = shapes["dpo"]
        (spac_rows, spac_length), = shapes["spac"]
        assert spac_length == dpo_length and 2 * spac_rows == 3 * dpo_rows
        # The activations autograd keeps for backward grow with the sequences: a structural check, not a timing.
        assert entry["memory"]["ratios"]["spac"]["saved"] == pytest.approx(1.5, abs=0.15)


def test_tables_list_every_size(quick):
    out, results = quick
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [row["size"] for row in rows] == [entry["size"] for entry in results["sizes"]]
    assert all(math.isfinite(float(row["time_ratio_spac_dpo"])) for row in rows)
    table = (out / "table.md").read_text()
    assert "SPAC/DPO time" in table and "One SPAC iteration" in table


def test_the_word_level_data_has_exact_token_counts():
    size = SIZES["0.1M"]
    tokenizer = build_tokenizer(size.vocab_size)
    (row,) = preference_rows(1, size.vocab_size, prompt_tokens=7, response_tokens=5)
    assert len(tokenizer(row["prompt"])["input_ids"]) == 7
    for response in ("chosen", "rejected", "generated"):
        ids = tokenizer(row["prompt"] + row[response] + tokenizer.eos_token)["input_ids"]
        assert len(ids) == 12 and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer(row["chosen"])["input_ids"]) == row["chosen"].strip()
