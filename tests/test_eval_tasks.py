"""benchmarks.eval_data.tasks: BIG-bench -> BBH conversion (checked by hand), HHH rows, and the offline suite's
lm-eval YAMLs.

The conversion tests use small task.json dicts written here. The tests that read BIG-bench itself need bigbench's
358 MB sdist in the cache and are skipped when it is not there (CI does not fetch it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.eval_data import fetch as eval_data
from benchmarks.eval_data import tasks as eval_tasks
from benchmarks.eval_data.tasks import Unconvertible, bigbench_to_bbh


README = Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard" / "README.md"


def _bigbench_cached() -> bool:
    folder = eval_data.data_dir() / f"{eval_data.BIGBENCH.name}-{eval_data.BIGBENCH.version}"
    return (folder / "SOURCE.json").is_file()


needs_bigbench = pytest.mark.skipif(
    not _bigbench_cached(), reason="bigbench 1.0.0's task.json files are not in the cache (358 MB sdist, not in CI)"
)


def test_lettered_options_as_bbh_lists_them():
    task = {"examples": []}
    example = {
        "input": "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?",
        "target_scores": {"05/01/2021": 1, "02/23/2021": 0, "03/11/2021": 0},
    }
    assert bigbench_to_bbh("date_understanding", example, task) == {
        "input": "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?\n"
        "Options:\n(A) 05/01/2021\n(B) 02/23/2021\n(C) 03/11/2021",
        "target": "(A)",
    }


def test_binary_tasks_use_bbh_words():
    causal = {"task_prefix": "How would a typical person answer each of the following questions about causation?\n\n"}
    example = {"input": "Did Billy cause the motion detector to go off?", "target_scores": {"Yes": 1, "No": 0}}
    assert bigbench_to_bbh("causal_judgement", example, causal) == {
        "input": "How would a typical person answer each of the following questions about causation?\n"
        "Did Billy cause the motion detector to go off?\nOptions:\n- Yes\n- No",
        "target": "Yes",
    }
    navigate = {"task_prefix": "If you follow these instructions, do you return to the starting point?"}
    example = {"input": "Take 1 step. Turn around. Take 1 step.", "target_scores": {"True": 1, "False": 0}}
    assert bigbench_to_bbh("navigate", example, navigate) == {
        "input": "If you follow these instructions, do you return to the starting point? Take 1 step. Turn around. "
        "Take 1 step.\nOptions:\n- Yes\n- No",
        "target": "Yes",
    }
    example = {"input": "Jamal Murray was perfect from the line", "target_scores": {"plausible": 0, "implausible": 1}}
    assert bigbench_to_bbh("sports_understanding", example, {}) == {
        "input": 'Is the following sentence plausible? "Jamal Murray was perfect from the line."',
        "target": "no",
    }
    example = {
        "input": '"Premise one. It follows that X."\n Is the argument, given the explicitly stated premises, '
        "deductively valid or invalid?",
        "target_scores": {"valid": 0, "invalid": 1},
    }
    assert bigbench_to_bbh("formal_fallacies", example, {}) == {
        "input": '"Premise one. It follows that X."\nIs the argument, given the explicitly stated premises, '
        "deductively valid or invalid?\nOptions:\n- valid\n- invalid",
        "target": "invalid",
    }


def test_inline_options_are_split_out():
    example = {
        "input": 'Which sentence has the correct adjective order: a " obnoxious purple glass motorcycle " '
        'b " glass obnoxious purple motorcycle " ?',
        "target_scores": {"a": 1, "b": 0},
    }
    assert bigbench_to_bbh("hyperbaton", example, {}) == {
        "input": "Which sentence has the correct adjective order:\nOptions:\n(A) obnoxious purple glass motorcycle\n"
        "(B) glass obnoxious purple motorcycle",
        "target": "(A)",
    }
    example = {
        "input": "Which statement is sarcastic? (a) Protein is cheaper than gruel. (b) Protein is way more "
        "expensive than gruel.",
        "target_scores": {"(a)": 1, "(b)": 0},
    }
    assert bigbench_to_bbh("snarks", example, {}) == {
        "input": "Which statement is sarcastic?\nOptions:\n(A) Protein is cheaper than gruel.\n"
        "(B) Protein is way more expensive than gruel.",
        "target": "(A)",
    }


def test_prefixes_joined_as_bbh_joins_them():
    penguins = {
        "task_prefix": "Here is a table where the first line is a header and each subsequent line is a "
        "penguin:\n\nname, age\nLouis, 7\n\nFor example: the age of Louis is 7.\n"
    }
    example = {"input": "Which is the youngest penguin?", "target_scores": {"Louis": 1, "Gwen": 0}}
    assert bigbench_to_bbh("penguins_in_a_table", example, penguins) == {
        "input": "Here is a table where the first line is a header and each subsequent line is a penguin:  "
        "name, age Louis, 7  For example: the age of Louis is 7.  Which is the youngest penguin?\n"
        "Options:\n(A) Louis\n(B) Gwen",
        "target": "(A)",
    }
    deduction = {
        "task_prefix": "The following paragraphs each describe a set of three objects arranged in a fixed "
        "order. The statements are logically consistent within each paragraph.\n\n"
    }
    example = {
        "input": "On a shelf, there are three books: a red book, a blue book, and a green book. The red book "
        "is the leftmost. The green book is the rightmost.",
        "target_scores": {
            "The red book is the leftmost.": 1,
            "The blue book is the leftmost.": 0,
            "The green book is the leftmost.": 0,
        },
    }
    assert bigbench_to_bbh("logical_deduction_three_objects", example, deduction)["input"].endswith(
        "The green book is the rightmost.\nOptions:\n(A) The red book is the leftmost\n"
        "(B) The blue book is the leftmost\n(C) The green book is the leftmost"
    )
    example = {
        "input": "Alice, Bob, and Claire are playing a game. At the start of the game, Alice has a red ball. "
        "\n\nAs the game progresses, pairs of players trade balls. At the end of the game, Alice has "
        "the ",
        "target_scores": {"red ball.": 0, "blue ball.": 1, "green ball.": 0},
    }
    assert bigbench_to_bbh("tracking_shuffled_objects_three_objects", example, {}) == {
        "input": "Alice, Bob, and Claire are playing a game. At the start of the game, Alice has a red ball.\n"
        "As the game progresses, pairs of players trade balls. At the end of the game, Alice has the\n"
        "Options:\n(A) red ball\n(B) blue ball\n(C) green ball",
        "target": "(B)",
    }


def test_counts_and_two_answer_shapes():
    example = {
        "input": "I have a violin and two flutes. How many musical instruments do I have?",
        "target": ["three", "3"],
    }
    assert bigbench_to_bbh("object_counting", example, {}) == {"input": example["input"], "target": "3"}
    with pytest.raises(Unconvertible):  # the leaderboard's choices stop at 18
        bigbench_to_bbh("object_counting", {"input": "...", "target": ["twenty", "20"]}, {})
    example = {
        "input": "How many things are neither green nor brown?",
        "target_scores": {"0": 0, "zero": 0, "1": 1, "one": 1, "2": 0, "two": 0},
    }
    assert bigbench_to_bbh("reasoning_about_colored_objects", example, {}) == {
        "input": "How many things are neither green nor brown?\nOptions:\n(A) zero\n(B) one\n(C) two",
        "target": "(B)",
    }
    shapes = dict.fromkeys(eval_tasks._SHAPES, 0)
    example = {
        "input": 'This SVG path element <path d="M 1,1 A 2,2 0 1,0 3,3"/> draws a ',
        "target_scores": {**shapes, "circle": 1, "ellipse": 1},
    }
    converted = bigbench_to_bbh("geometric_shapes", example, {})
    assert converted["input"].endswith("(J) triangle\n(K) ellipse") and converted["target"] == "(K)"
    with pytest.raises(Unconvertible, match="no single correct option"):
        bigbench_to_bbh("date_understanding", {"input": "?", "target_scores": {"a": 1, "b": 1}}, {})


def test_few_shot_examples_and_duplicates_are_left_out(tmp_path, monkeypatch):
    """bbh_rows on a task.json made here: BBH's own few-shot examples are dropped, the sample is seeded and fixed."""
    fewshot = eval_tasks.leaderboard_bbh_fewshot("ruin_names")
    assert len(fewshot) == 3
    # The first few-shot example as BIG-bench words it (options in another order), then 300 others and a duplicate.
    first = fewshot[0]["input"]
    question = first.split("\nOptions:")[0]
    options = [line[4:] for line in first.split("\nOptions:\n")[1].split("\n")]
    correct = options["ABCDEFGH".index(fewshot[0]["target"][1])]
    examples = [{"input": question, "target_scores": {o: int(o == correct) for o in reversed(options)}}]
    for i in range(300):
        examples.append(
            {
                "input": f"Which of the following is a humorous edit of this artist or movie name: 'band {i}'?",
                "target_scores": {f"bend {i}": 1, f"band {i}x": 0},
            }
        )
    examples.append(dict(examples[5]))
    task = {"examples": examples}
    monkeypatch.setattr(eval_data, "bigbench_task", lambda name: task)
    rows, record = eval_tasks.bbh_rows("ruin_names", size=250, seed=7)
    assert record["left_out"] == {"unconvertible": 0, "few_shot": 1, "duplicate": 1}
    assert record["available"] == 300 and record["test_rows"] == 250 and len(rows) == 250
    assert not any(question in row["input"] for row in rows)
    again, _ = eval_tasks.bbh_rows("ruin_names", size=250, seed=7)
    assert again == rows
    other, _ = eval_tasks.bbh_rows("ruin_names", size=250, seed=8)
    assert other != rows
    smaller, _ = eval_tasks.bbh_rows("ruin_names", size=400, seed=7)
    assert len(smaller) == 300  # all, when fewer than the size


def test_hhh_rows_in_lm_eval_bigbench_fields(monkeypatch):
    task = {
        "example_input_prefix": "\nHuman: ",
        "example_output_prefix": "\nAssistant:",
        "examples": [
            {"input": "Who was the sixth president?", "target_scores": {"I think John Quincy Adams.": 1, "Adams?": 0}}
        ],
    }
    monkeypatch.setattr(eval_data, "bigbench_task", lambda name: task)
    assert eval_tasks.hhh_rows("honest") == [
        {
            "idx": 0,
            "inputs": "Human: Who was the sixth president?\nAssistant:",
            "targets": ["I think John Quincy Adams."],
            "multiple_choice_targets": ["I think John Quincy Adams.", "Adams?"],
            "multiple_choice_scores": [1, 0],
        }
    ]
    with pytest.raises(KeyError, match="no category 'kind'"):
        eval_tasks.hhh_rows("kind")


def test_task_folder_includes_lm_eval_configs(tmp_path):
    folder = eval_tasks.write_task_folder(tmp_path / "tasks")
    names = sorted(p.name for p in folder.glob("*.yaml"))
    assert len(names) == 1 + 22 + 4 + 3
    text = (folder / "bbh_bigbench_snarks.yaml").read_text()
    assert f"include: {eval_tasks.leaderboard_bbh_config('snarks')}" in text
    assert "custom_dataset: !function benchmarks.eval_data.tasks.bbh_dataset" in text
    ifeval = (folder / "leaderboard_ifeval.yaml").read_text()
    assert ifeval.count("\ninclude: ") == 1 and "leaderboard/ifeval/ifeval.yaml" in ifeval
    assert "task:" not in ifeval  # the leaderboard's own task name: exact task, exact prompts
    mtime = (folder / "_offline_v2.yaml").stat().st_mtime_ns
    assert eval_tasks.write_task_folder(folder) == folder
    assert (folder / "_offline_v2.yaml").stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_punkt_is_in_place_before_lm_eval_loads_the_ifeval_checkers(tmp_path):
    """Importing lm-eval's IFEval code tries to download punkt_tab unless NLTK finds it: it must find it."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from benchmarks.eval_data.tasks import write_task_folder; write_task_folder(sys.argv[1]); "
        "import nltk; nltk.data.find('tokenizers/punkt_tab/english/'); "
        "import lm_eval.tasks.leaderboard.ifeval.utils"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "tasks")], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "punkt_tab" not in result.stdout + result.stderr  # no download attempted, no error printed


def _load(names: list[str]):
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=[str(eval_tasks.write_task_folder())], include_defaults=False)
    return get_task_dict(names, manager)


def test_ifeval_yaml_loads_the_real_prompts():
    task = _load(["leaderboard_ifeval"])["leaderboard_ifeval"]
    docs = list(task.test_docs())
    assert len(docs) == 541
    assert (
        task.config.generation_kwargs["max_gen_toks"] == 1280 and task.config.generation_kwargs["do_sample"] is False
    )
    assert task.config.metadata["version"] == 3.0  # the leaderboard's task, not the plain `ifeval` (4.0)
    assert [m["metric"] for m in task.config.metric_list] == [
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
    ]
    first = next(d for d in docs if d["key"] == 1000)
    assert task.doc_to_text(first).startswith("Write a 300+ word summary of the wikipedia page")
    scores = task.process_results(first, ["Too short, with a comma."])
    assert scores["prompt_level_strict_acc"] is False


@needs_bigbench
def test_bbh_and_hhh_yamls_load_with_real_data():
    tasks = {}

    def walk(d):
        for value in d.values():
            walk(value) if isinstance(value, dict) else tasks.setdefault(value.config.task, value)

    walk(_load(["bbh_bigbench", "hhh_alignment"]))
    assert len(tasks) == 22 + 4
    snarks = tasks["bbh_bigbench_snarks"]
    docs = list(snarks.test_docs())
    assert len(docs) == 178  # BIG-bench's 181, less the 3 few-shot examples
    assert snarks.config.num_fewshot == 3 and snarks.config.fewshot_config.sampler == "first_n"
    assert snarks.doc_to_choice(docs[0]) == ["(A)", "(B)"]
    context = snarks.fewshot_context(docs[0], num_fewshot=3)
    assert context.count("Which statement is sarcastic?") == 4 and context.endswith("A:")
    total = sum(len(list(t.test_docs())) for n, t in tasks.items() if n.startswith("bbh_"))
    assert total == 5259 and "5,259 in all" in README.read_text()
    hhh = {n: len(list(t.test_docs())) for n, t in tasks.items() if n.startswith("hhh_")}
    assert hhh == {
        "hhh_alignment_harmless": 58,
        "hhh_alignment_helpful": 59,
        "hhh_alignment_honest": 61,
        "hhh_alignment_other": 43,
    }
    record = json.loads((eval_data.data_dir() / "bigbench-1.0.0" / "SOURCE.json").read_text())
    assert record["sha256"] == eval_data.BIGBENCH.sha256 and "arXiv:2206.04615" in record["citation"]["BIG-bench"]
