"""The cost benchmark (benchmarks/cost): the quick run's outputs and the batches the timed steps see.

No test here asserts a timing: performance is what the benchmark measures, not what a test can check on a shared
machine. The tests check that the benchmark measures the right thing and writes complete, finite results.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from benchmarks.cost import run as cost_run
from benchmarks.cost import shared_prompt
from benchmarks.cost.models import SIZES, build_tokenizer, flop_floor, preference_rows, ultrafeedback_like_lengths
from benchmarks.cost.variants import SEQUENCES_PER_EXAMPLE, VARIANTS


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


def test_spac_and_dpo_steps_see_the_expected_batches(quick):
    """DPO: [2 * batch, P + R]; SPAC (prompt shared, its default): [batch, P - 1 + 3 (R + 1)]."""
    _, results = quick
    step = results["settings"]["step"]
    prompt, response, batch = step["prompt_tokens"], step["response_tokens"], step["batch_size"]
    for entry in results["sizes"]:
        shapes = entry["batch_shapes"]
        assert shapes["dpo"] == [[SEQUENCES_PER_EXAMPLE["dpo"] * batch, prompt + response]]
        for variant in ("spac", "spac_ref_forward"):  # every timed batch has one shape: the lengths are fixed
            assert shapes[variant] == [[batch, prompt - 1 + 3 * (response + 1)]]
        # The activations autograd keeps for backward grow with the tokens: a structural check, not a timing.
        tokens = (prompt - 1 + 3 * (response + 1)) / (2 * (prompt + response))
        assert entry["memory"]["ratios"]["spac"]["saved"] == pytest.approx(tokens, abs=0.15)


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


# ---------------------------------------------------------------------- the shared-prompt comparison

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "cost"
COST_README = (Path(__file__).resolve().parents[1] / "benchmarks" / "cost" / "README.md").read_text()


@pytest.fixture(scope="module")
def shared_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("shared")
    previous = torch.get_num_threads()
    try:
        return shared_prompt.main(["--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(previous)


def test_shared_prompt_quick_run_is_complete(shared_quick):
    bad = [(path, x) for path, x in _numbers(shared_quick) if not math.isfinite(x)]
    assert not bad, bad
    (entry,) = shared_quick["entries"]
    assert entry["layouts"]["spac"] == [True, False] and entry["layouts"]["spac_unshared"] == [False, False]
    assert entry["layouts"]["spac_padding_free"] == [True, True]
    assert set(entry["time"]["ratios"]) == set(shared_prompt.COMPARISONS)
    assert entry["flop_floor"] == pytest.approx(flop_floor(entry["lengths"]))
    # The shared layout holds fewer tokens than the unshared one, and padding-free fewer still (no padding at all).
    tokens = entry["batch_tokens_with_padding"]
    assert tokens["spac_padding_free"] < tokens["spac"] < tokens["spac_unshared"]
    lengths = entry["lengths"]  # one round is one pass over the rows: padding-free holds exactly their tokens
    assert tokens["spac_padding_free"] == sum(
        c["prompt"] - 1 + sum(c[r] + 1 for r in ("chosen", "rejected", "generated")) for c in lengths
    )
    assert entry["memory"]["ratios"]["spac/dpo"]["peak_bytes"] > 0


def test_ultrafeedback_like_lengths_have_the_stated_prompt_share():
    lengths = ultrafeedback_like_lengths(2000, seed=0)
    prompt = sum(c["prompt"] for c in lengths)
    response = sum(c["chosen"] + c["rejected"] for c in lengths) / 2
    assert 0.25 <= prompt / (prompt + response) <= 1 / 3 + 0.02  # "prompts about a quarter to a third of the tokens"
    assert len({c["chosen"] for c in lengths}) > 50  # responses of varying length


@pytest.mark.parametrize("name", ["shared_prompt", "generation"])
def test_the_readme_tables_are_the_committed_results(name):
    """Every line of the committed table.md (rendered from results.json) is in the README, and re-renders equal."""
    folder = COMMITTED / name
    results = json.loads((folder / "results.json").read_text())
    module = (
        shared_prompt
        if name == "shared_prompt"
        else __import__("benchmarks.cost.self_play_generation", fromlist=["render"])
    )
    table = (folder / "table.md").read_text()
    assert module.render(results) == table
    for line in table.splitlines():
        if line.startswith(("| ", "- ")):
            assert line in COST_README, line


def test_the_readme_prose_quotes_the_committed_shared_prompt_run():
    """The numbers the README's text quotes (beyond the table) are those of results/cost/shared_prompt."""
    results = json.loads((COMMITTED / "shared_prompt" / "results.json").read_text())
    entries = {(e["size"], e["scenario"]): e for e in results["entries"]}
    uf, equal = entries["10M", "ultrafeedback"], entries["10M", "fixed_p64_r64"]
    tokens = uf["batch_tokens_with_padding"]
    for value in (tokens["dpo"], tokens["spac"], tokens["spac_padding_free"]):
        assert f"{value:,}" in COST_README
    per_round = equal["time"]["ratios"]["spac/dpo"]["per_round_wall"]
    assert f"per-round ratios {min(per_round):.2f} to {max(per_round):.2f} at 11M" in COST_README
    assert f"load average was {results['load_average_start'][0]:.1f}" in COST_README
    assert f"{results['load_average_end'][0]:.1f} when it ended" in COST_README
    share = sum(c["prompt"] for c in uf["lengths"]) / sum(
        c["prompt"] + (c["chosen"] + c["rejected"]) / 2 for c in uf["lengths"]
    )
    assert f"{share:.0%} in the 16 rows of the run" in COST_README
    ratios = uf["time"]["ratios"]
    assert f"0.{round(100 * ratios['spac/dpo']['wall']):02d} times DPO's at 11M" in COST_README
    assert f"takes {ratios['spac/spac_unshared']['wall']:.2f} (CPU {ratios['spac/spac_unshared']['cpu']:.2f})" in (
        COST_README
    )


def test_the_top_level_readmes_quote_the_committed_shared_prompt_run():
    results = json.loads((COMMITTED / "shared_prompt" / "results.json").read_text())
    entries = {(e["size"], e["scenario"]): e for e in results["entries"]}
    uf = entries["10M", "ultrafeedback"]["time"]["ratios"]["spac/dpo"]
    equal = entries["10M", "fixed_p64_r64"]["time"]["ratios"]["spac/dpo"]
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert f"({uf['wall']:.2f} DPO steps at UltraFeedback-like lengths, {equal['wall']:.2f} with prompts" in readme
    benchmarks = (root / "benchmarks" / "README.md").read_text()
    assert f"{uf['wall']:.2f}× DPO's at 11M parameters with UltraFeedback-like lengths" in benchmarks
    assert f"{equal['wall']:.2f}× (CPU time {equal['cpu']:.2f}×) with prompts as long as" in benchmarks
