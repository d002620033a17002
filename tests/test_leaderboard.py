"""The leaderboard benchmark (benchmarks/leaderboard): the suite definitions against lm-eval's task index, a real
lm-eval run of the v1 suite on fixture data with two tiny models, the comparison, resuming, and bad input."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.leaderboard import run as leaderboard
from benchmarks.leaderboard.models import collect_runs, parse_models
from benchmarks.leaderboard.suites import LM_EVAL_TASKS, TASKS_DIR, V1, V2, task_manager
from hub_server import USER


REPO = Path(__file__).resolve().parents[1]


FIXTURES = REPO / "tests" / "fixtures" / "lm_eval"
FIXTURE_DIR_ARG = "tests/fixtures/lm_eval"  # as in the README: data paths in the fixture YAMLs are relative to REPO
# The Open LLM Leaderboard v1: shots and headline metric of each benchmark.
V1_SHOTS = {"arc_challenge": 25, "hellaswag": 10, "mmlu_v1": 5, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 5}
V1_METRICS = {
    "arc_challenge": "acc_norm,none",
    "hellaswag": "acc_norm,none",
    "mmlu_v1": "acc,none",
    "truthfulqa_mc2": "acc,none",
    "winogrande": "acc,none",
    "gsm8k": "exact_match,strict-match",
}
FIXTURE_ROWS = {"arc_challenge": 4, "hellaswag": 4, "mmlu_elementary_mathematics": 4, "truthfulqa_mc2": 4,
                "winogrande": 4, "gsm8k": 3}  # fmt: skip
DATA_SOURCE_KEYS = {"task", "dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split",
                    "test_split", "fewshot_split", "num_fewshot"}  # fmt: skip


def members(group_yaml: Path) -> dict[str, dict]:
    config = yaml.safe_load(group_yaml.read_text())
    return {m.get("task") or m.get("group"): m for m in config["task"]}


def mmlu_subjects(index) -> set[str]:
    group = index["mmlu_v1"].cfg
    return {task for tag in group["task"] for task in index[tag].tags}


# ------------------------------------------------------------------------------------------------ suite definitions


def test_v1_suite_lists_the_leaderboard_tasks_shots_and_metrics():
    real = members(TASKS_DIR / "open_llm_leaderboard_v1.yaml")
    assert {m: spec["num_fewshot"] for m, spec in real.items()} == V1_SHOTS
    assert {c.task: c.metrics for c in V1.columns} == {task: (metric,) for task, metric in V1_METRICS.items()}
    assert {c.task: c.shots for c in V1.columns} == V1_SHOTS

    index = task_manager(V1).task_index
    assert index["open_llm_leaderboard_v1"].yaml_path == TASKS_DIR / "open_llm_leaderboard_v1.yaml"
    for task, metric in V1_METRICS.items():
        if task == "mmlu_v1":
            continue
        config = index[task].cfg  # the built-in config (includes resolved), which the group only overrides
        assert LM_EVAL_TASKS in index[task].yaml_path.parents
        name, _, filter_name = metric.partition(",")
        assert name in [m["metric"] for m in config["metric_list"]]
        if filter_name != "none":
            assert filter_name in [f["name"] for f in config["filter_list"]]
    # MMLU: the 57 built-in subjects, scored by accuracy and averaged without weights as the leaderboard did.
    subjects = mmlu_subjects(index)
    assert len(subjects) == 57 and all(index[s].cfg["metric_list"][0]["metric"] == "acc" for s in subjects)
    assert index["mmlu_v1"].cfg["aggregate_metric_list"] == [
        {"metric": "acc", "aggregation": "mean", "weight_by_size": False}
    ]


def test_v2_suite_is_lm_evals_leaderboard_group():
    index = task_manager(V2).task_index
    group = index["leaderboard"]
    assert group.yaml_path == LM_EVAL_TASKS / "leaderboard" / "leaderboard.yaml"
    assert sorted(group.cfg["task"]) == sorted(c.task for c in V2.columns)
    for column in V2.columns:
        config = index[column.task].cfg
        # A subgroup's headline is its aggregate; a single task's, one of its metrics.
        listed = config.get("aggregate_metric_list") or config["metric_list"]
        assert {m.partition(",")[0] for m in column.metrics} <= {m["metric"] for m in listed}, column


def test_suite_index_agrees_with_lm_evals_full_index():
    """The suite indexes only the built-in folders it needs (0.1 s instead of 15 s): the full index must resolve
    every name it uses to the same YAML file, i.e. nothing elsewhere in lm-eval shadows or redefines them."""
    from lm_eval.tasks import TaskManager

    small = task_manager(V1).task_index
    full = TaskManager(include_path=str(TASKS_DIR)).task_index
    names = set(V1_METRICS) | mmlu_subjects(small) | {"open_llm_leaderboard_v1"}
    assert {n: full[n].yaml_path for n in names} == {n: small[n].yaml_path for n in names}
    assert "leaderboard" in full and full["leaderboard"].yaml_path.parent == LM_EVAL_TASKS / "leaderboard"


def test_fixture_suite_is_the_real_tasks_on_local_data(monkeypatch):
    fixture = members(FIXTURES / "open_llm_leaderboard_v1.yaml")
    real = members(TASKS_DIR / "open_llm_leaderboard_v1.yaml")
    assert {m: spec["num_fewshot"] for m, spec in fixture.items()} == V1_SHOTS
    for name, spec in fixture.items():
        assert set(spec) - {"group"} <= DATA_SOURCE_KEYS, f"{name} overrides more than its data source"
        assert {k: v for k, v in spec.items() if k in real[name]} == real[name]

    monkeypatch.chdir(REPO)
    manager = task_manager(V1, FIXTURES)
    tasks = manager.load(["open_llm_leaderboard_v1"])["tasks"]
    assert set(tasks) == set(FIXTURE_ROWS)
    for name, task in tasks.items():
        builtin = manager.task_index[name]
        assert task.config.metadata["config_source"] == str(builtin.yaml_path)  # the built-in YAML, not a copy
        assert LM_EVAL_TASKS in builtin.yaml_path.parents
        assert task.config.dataset_path == "json"
        assert len(task.eval_docs) == FIXTURE_ROWS[name]
        assert task.config.num_fewshot == V1_SHOTS.get(name, 5)
        assert len(task.fewshot_docs()) >= task.config.num_fewshot  # enough examples for the shots


# ------------------------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def two_models(tiny_model_dir, tmp_path_factory):
    """The tiny Llama of conftest.py and a second one with other weights (seed 1), as saved folders."""
    from transformers import AutoTokenizer

    from helpers import build_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    other = tmp_path_factory.mktemp("tiny-llama-seed1")
    build_model(tokenizer, seed=1).save_pretrained(other)
    tokenizer.save_pretrained(other)
    return {"base": tiny_model_dir, "spac-iter1": str(other)}


def fixture_argv(out: Path, models: dict[str, str], *extra: str) -> list[str]:
    return ["--suite", "v1", "--tasks-dir", FIXTURE_DIR_ARG, "--out", str(out), "--batch-size", "4",
            "--models", *[f"{label}={path}" for label, path in models.items()], *extra]  # fmt: skip


@pytest.fixture(scope="module")
def fixture_run(two_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("leaderboard") / "fixture-run"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        rows = leaderboard.main(fixture_argv(out, two_models))
    finally:
        os.chdir(cwd)
    return out, rows


def test_fixture_run_writes_every_output(fixture_run, two_models):
    out, _ = fixture_run
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    plots = {f"plots/{c.key}.png" for c in V1.columns} | {"plots/average.png", "plots/tasks.png"}
    assert files == {"base.json", "spac-iter1.json", "comparison.csv", "comparison.md", "environment.json",
                     "tasks.csv", "tasks.md", "dataset/README.md", "dataset/data/results.jsonl"} | plots  # fmt: skip
    # Per task: every task and group of every model, with its standard error and number of examples.
    per_task = list(csv.DictReader((out / "tasks.csv").open()))
    gsm8k = next(r for r in per_task if r["label"] == "base" and r["metric"] == "exact_match,strict-match")
    assert gsm8k["task"] == "gsm8k" and gsm8k["n"] == str(FIXTURE_ROWS["gsm8k"])
    base = json.loads((out / "base.json").read_text())
    assert float(gsm8k["value"]) == pytest.approx(base["results"]["gsm8k"]["exact_match,strict-match"], abs=1e-6)
    for plot in plots:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for label, path in two_models.items():
        output = json.loads((out / f"{label}.json").read_text())
        assert output["n-shot"] == {**V1_SHOTS, "mmlu_elementary_mathematics": 5}
        assert {t: n["effective"] for t, n in output["n-samples"].items()} == FIXTURE_ROWS
        assert output["spac_hf"]["model"] == Path(path).name and output["spac_hf"]["tasks_dir"] == FIXTURE_DIR_ARG
        assert output["config"]["model_args"]["pretrained"] == path
        for task, metric in V1_METRICS.items():
            assert 0.0 <= output["results"][task][metric] <= 1.0

    environment = json.loads((out / "environment.json").read_text())
    assert {"torch", "transformers", "lm-eval"} <= set(environment["environment"]["packages"])
    assert [m["label"] for m in environment["models"]] == ["base", "spac-iter1"]
    assert environment["models"][1] | {"model": None} == {
        "label": "spac-iter1", "model": None, "method": "spac", "iteration": 1, "series": "spac"
    }  # fmt: skip


def test_comparison_matches_the_model_jsons(fixture_run):
    out, rows = fixture_run
    scores = {}
    for label in ("base", "spac-iter1"):
        results = json.loads((out / f"{label}.json").read_text())["results"]
        scores[label] = {c.key: 100 * results[c.task][c.metrics[0]] for c in V1.columns}
        scores[label]["average"] = sum(scores[label].values()) / len(V1.columns)

    with open(out / "comparison.csv", newline="") as f:
        table = {row["label"]: row for row in csv.DictReader(f)}
    assert list(table) == ["base", "spac-iter1"]
    for label, expected in scores.items():
        for key, value in expected.items():
            assert float(table[label][key]) == pytest.approx(value, abs=1e-3)
            change = value - scores["base"][key]
            assert float(table[label][f"{key}_delta"]) == pytest.approx(change, abs=1e-3)
    assert [row["average"] for row in rows] == pytest.approx([scores[label]["average"] for label in table])

    markdown = (out / "comparison.md").read_text()
    assert "Not leaderboard data" in markdown
    new, base = scores["spac-iter1"], scores["base"]
    cells = [f"{new[k]:.2f} ({new[k] - base[k]:+.2f})" for k in base]
    assert "| `spac-iter1` | spac | 1 | " + " | ".join(cells) + " |" in markdown

    dataset = [json.loads(line) for line in (out / "dataset" / "data" / "results.jsonl").read_text().splitlines()]
    assert len(dataset) == 2 * (len(V1.columns) + 1)  # each column and the suite average, per model
    by_key = {(r["model"], r["task"], r["metric"]): r for r in dataset}
    assert by_key[("spac-iter1", "gsm8k", "exact_match,strict-match")]["num_fewshot"] == 5
    assert by_key[("spac-iter1", "open_llm_leaderboard_v1", "average")]["value"] == pytest.approx(
        scores["spac-iter1"]["average"] / 100
    )
    assert by_key[("base", "arc_challenge", "acc_norm")]["value"] * 100 == pytest.approx(scores["base"]["arc"])


def test_resume_skips_existing_results(fixture_run, two_models, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    shutil.copytree(fixture_run[0], out)
    (out / "spac-iter1.json").unlink()
    before = (out / "base.json").read_bytes()
    evaluated = []

    def fake_evaluate(spec, suite, args, manager):  # stands in for lm-eval: returns a copy of the earlier output
        evaluated.append(spec.label)
        output = json.loads((fixture_run[0] / f"{spec.label}.json").read_text())
        output.pop("spac_hf")
        return output

    monkeypatch.setattr(leaderboard, "evaluate", fake_evaluate)
    monkeypatch.chdir(REPO)
    leaderboard.main(fixture_argv(out, two_models))
    assert evaluated == ["spac-iter1"]
    assert (out / "base.json").read_bytes() == before
    assert (out / "comparison.csv").read_text() == (fixture_run[0] / "comparison.csv").read_text()

    # The same folder with other settings would mix incomparable numbers: refused before anything runs.
    with pytest.raises(SystemExit, match=r"base.json was made with other settings \(limit: None -> 2\)"):
        leaderboard.main(fixture_argv(out, two_models, "--limit", "2"))
    assert evaluated == ["spac-iter1"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--suite", "v3", "--models", "base={tiny}"], "invalid choice: 'v3'"),
        (["--models", "base"], "'base' must look like label=path-or-hub-id"),
        (["--models", "=x"], "must look like label=path-or-hub-id"),
        (["--models", "base={tiny}", "spac-iter1={missing}"], "spac-iter1=.*no such folder"),
        (["--models", "base={tmp}"], "has no config.json"),
        (["--models", "base={tiny}", "base={tmp}"], "'base' is given twice"),
        (["--models", "a/b={tiny}"], "use letters, digits"),
        (["--models", "base=not a hub id!"], "no such folder"),
        (["--models", "base=someone/not-in-cache"], "not in the Hub cache"),
        (["--runs", "{tmp}"], "no self_play_run.json"),
        ([], "No models"),
        (["--models", "base={tiny}", "--push-to-hub"], "--push-to-hub needs --hub-dataset-id"),
        (["--models", "base={tiny}", "--tasks-dir", "{missing}"], "--tasks-dir .*: no such folder"),
        (["--models", "base={tiny}", "--lm-model", "hf", "--dtype", "int8"], "--dtype int8 needs --lm-model spac-ct2"),
        (["--models", "base={tiny}", "--lm-model", "spac-ct2", "--dtype", "bfloat16"], "float32 or int8; got --dtype"),
    ],
)
def test_bad_input_fails_before_evaluating(argv, message, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(leaderboard, "evaluate", lambda *a: pytest.fail("evaluated despite bad input"))
    values = {"tiny": tiny_model_dir, "tmp": str(tmp_path), "missing": str(tmp_path / "missing")}
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as error:
        leaderboard.main(["--out", str(out)] + [arg.format(**values) for arg in argv])
    assert error.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_model_labels_and_run_folders(two_models, tmp_path):
    specs = parse_models(["base=x", "spin-iter2=y", "zephyr-spac-iter3=z", "other=w"])
    assert [(s.label, s.method, s.iteration, s.series) for s in specs] == [
        ("base", None, 0, None), ("spin-iter2", "spin", 2, "spin"),
        ("zephyr-spac-iter3", "spac", 3, "zephyr-spac"), ("other", None, None, None),
    ]  # fmt: skip

    # A run_self_play output_dir: the base model once, finished iterates in order, an unfinished one ignored.
    run = tmp_path / "zephyr-spin"
    run.mkdir()
    (run / "self_play_run.json").write_text(json.dumps({"method": "spin", "base_model": two_models["base"]}))
    for t in (2, 1, 3):
        shutil.copytree(two_models["spac-iter1"], run / f"iter_{t}")
        if t != 3:  # iter_3 has no iterate.json: still being written when the run was stopped
            (run / f"iter_{t}" / "iterate.json").write_text(json.dumps({"iteration": t, "method": "spin"}))
    specs = collect_runs([str(run)])
    assert [(s.label, s.model, s.method, s.iteration, s.series) for s in specs] == [
        ("base", two_models["base"], None, 0, None),
        ("zephyr-spin-iter1", str(run / "iter_1"), "spin", 1, "zephyr-spin"),
        ("zephyr-spin-iter2", str(run / "iter_2"), "spin", 2, "zephyr-spin"),
    ]
    # A folder given with --models takes method and iteration from its iterate.json.
    assert parse_models([f"x={run / 'iter_2'}"])[0].method == "spin"
    assert parse_models([f"x={run / 'iter_2'}"])[0].iteration == 2


def test_push_to_hub_uploads_the_results_dataset(hub_server, fixture_run, two_models, tmp_path, monkeypatch):
    def stored_output(spec, suite, args, manager):
        output = json.loads((fixture_run[0] / f"{spec.label}.json").read_text())
        output.pop("spac_hf")
        return output

    monkeypatch.setattr(leaderboard, "evaluate", stored_output)
    monkeypatch.chdir(REPO)
    out, repo_id = tmp_path / "pushed", f"{USER}/spac-leaderboard"
    leaderboard.main(fixture_argv(out, two_models, "--push-to-hub", "--hub-dataset-id", repo_id))
    stored = hub_server.files(repo_id, repo_type="dataset")
    assert stored["data/results.jsonl"] == (out / "dataset" / "data" / "results.jsonl").read_bytes()
    assert f'load_dataset("{repo_id}"' in stored["README.md"].decode()


# ------------------------------------------------------------------------------------------------ two processes


@pytest.mark.slow
def test_two_processes_only_rank_zero_writes(two_models, tmp_path):
    """torchrun with 2 CPU processes (gloo). lm-eval shards only across GPUs, so here each process evaluates all of
    it; what this checks is the launcher path: both processes finish, files are written once, by rank 0."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    out = tmp_path / "ddp"
    command = [torchrun, "--nproc_per_node", "2", "--standalone", "-m", "benchmarks.leaderboard.run",
               *fixture_argv(out, two_models)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("spac-iter1: done") == 1  # progress (and writing) on rank 0 only
    output = json.loads((out / "spac-iter1.json").read_text())
    assert output["spac_hf"]["world_size"] == 2
    assert not list(out.glob(".*.tmp"))  # no leftover of a second, competing atomic write
