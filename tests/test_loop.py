"""The iteration loop: end to end, killed and resumed, per-method data, and refusal to mix runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk

from spac_hf import SelfPlayConfig, run_self_play, split_into_parts

from helpers import preference_rows


SCRIPT = str(Path(__file__).parent / "run_tiny_loop.py")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, SCRIPT, *args], env=ENV, capture_output=True, text=True, timeout=timeout)


def mtimes(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_split_into_parts_is_disjoint_and_complete():
    dataset = Dataset.from_list([{"i": i} for i in range(10)])
    parts = split_into_parts(dataset, 3, seed=1)
    ids = [row["i"] for part in parts for row in part]
    assert sorted(ids) == list(range(10)) and [len(p) for p in parts] == [4, 3, 3]
    assert [p["i"] for p in split_into_parts(dataset, 3, seed=1)] == [p["i"] for p in parts]  # deterministic
    # Shuffled before cutting: not the rows in their order, and another seed gives other parts.
    assert [p["i"] for p in parts] != [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [p["i"] for p in split_into_parts(dataset, 3, seed=2)] != [p["i"] for p in parts]
    with pytest.raises(ValueError, match="Cannot split the 2 rows of `train_dataset` into `num_iterations`=3 "):
        split_into_parts(dataset.select(range(2)), 3)


@pytest.mark.slow
def test_killed_inside_iteration_two_resumes_without_redoing_iteration_one(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = [
        "--model",
        tiny_model_dir,
        "--output-dir",
        str(out),
        "--iterations",
        "2",
        "--epochs",
        "5",
        "--save-steps",
        "1",
    ]
    process = subprocess.Popen(
        [sys.executable, SCRIPT, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    checkpoint = out / "work" / "iter_2" / "checkpoints" / "checkpoint-3"
    deadline = time.time() + 240
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run did not reach iteration 2 in time"
    assert not (out / "iter_2").exists(), "killed too late: iteration 2 had already finished"

    iteration_one, generated_two = mtimes(out / "iter_1"), mtimes(out / "work" / "iter_2" / "generated")
    cut_off = out / "work" / "iter_2" / "checkpoints" / "checkpoint-99"  # as a kill during a checkpoint write leaves
    cut_off.mkdir()
    (cut_off / "model.safetensors").write_bytes(b"partial")
    rerun = run_script(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Iteration 1/2: already done" in rerun.stderr
    assert mtimes(out / "iter_1") == iteration_one  # iteration 1: neither retrained nor rewritten
    assert mtimes(out / "work" / "iter_2" / "generated") == generated_two  # self-play data not regenerated
    record = json.loads((out / "iter_2" / "iterate.json").read_text())
    resumed = record["resumed_from_checkpoint"]
    # A complete checkpoint from before the kill (which came once checkpoint-3's folder existed, maybe a step or two
    # later), never the planted cut-off checkpoint-99.
    assert resumed is not None and 2 <= int(resumed.split("-")[1]) < 15
    assert record["trained_from"] == str(out / "iter_1")
    steps = [e["step"] for e in record["log_history"] if "loss" in e]
    assert steps == list(range(1, 16))  # 12 rows / batch 4 * 5 epochs, each step once: none was redone
    assert not (out / "work" / "iter_2" / "checkpoints").exists()  # cleaned once the iterate was saved
    summary = json.loads((out / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterates"]] == [1, 2]
    assert "SPAC" in (out / "iter_2" / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spin", "dpo"])
def test_baselines_run_the_same_loop(tiny_model_dir, tmp_path, method):
    out = tmp_path / method
    result = run_script(
        "--model", tiny_model_dir, "--output-dir", str(out), "--method", method, "--rows", "12", "--history", "1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads((out / f"iter_{t}" / "iterate.json").read_text()) for t in (1, 2)]
    recorded = {"spin": "spin", "dpo": "iterative_dpo"}[method]  # DPO for two iterations is iterative DPO
    assert all(r["method"] == recorded for r in records)
    if method == "spin":
        # SPIN trains on the current part plus the previous iteration's generated data.
        assert [r["train_rows"] for r in records] == [6, 12]
        generated = load_from_disk(str(out / "work" / "iter_1" / "generated"))
        assert set(generated.column_names) >= {"prompt", "chosen", "rejected", "generated"}
    else:
        assert [r["train_rows"] for r in records] == [6, 6]  # no generation, no history
        assert not (out / "work" / "iter_1" / "generated").exists()


def test_last_complete_checkpoint_skips_the_ones_cut_off(tmp_path):
    from spac_hf.run.loop import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "missing") is None
    for step, state in ((2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (11, None), (12, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-final").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # numeric order, 11 and 12 incomplete


def test_refuses_to_resume_a_different_run(tiny_model_dir, make_args, tmp_path):
    args = make_args(SelfPlayConfig, num_iterations=2)
    out = Path(args.output_dir)
    out.mkdir(parents=True)
    (out / "self_play_run.json").write_text(json.dumps({"method": "spin", "num_iterations": 2}))
    with pytest.raises(ValueError, match="holds another run.*method: 'spin' -> 'iterative_dpo'"):
        run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(6)), method="dpo")
    assert sorted(p.name for p in out.iterdir()) == ["self_play_run.json"]  # nothing written


def test_loop_argument_errors(tiny_model_dir, make_args, model):
    data = Dataset.from_list(preference_rows(6))
    with pytest.raises(TypeError, match="SPACConfig"):
        run_self_play(tiny_model_dir, make_args(SelfPlayConfig), data, method="spac")
    with pytest.raises(ValueError, match="method"):
        run_self_play(tiny_model_dir, make_args(), data, method="ppo")
    with pytest.raises(TypeError, match="path or Hub id"):
        run_self_play(model, make_args(), data)
    with pytest.raises(ValueError, match="drop that column"):
        run_self_play(tiny_model_dir, make_args(), data.add_column("generated", ["x"] * 6))


def test_push_to_hub_sends_every_iterate_and_the_results(tiny_model_dir, make_args, hub_server):
    from hub_server import USER

    args = make_args(SelfPlayConfig, num_iterations=2, push_to_hub=True, hub_model_id=f"{USER}/tiny-dpo")
    result = run_self_play(
        tiny_model_dir,
        args,
        Dataset.from_list(preference_rows(8)),
        method="dpo",
        evaluate=lambda path, t: {"results": {"toy": {"mean": 0.1 * t, "mean_stderr": 0.01}}},
    )
    for t in (1, 2):
        stored = hub_server.files(f"{USER}/tiny-dpo-iter{t}")
        local = Path(result.iterates[t - 1])
        assert stored["model.safetensors"] == (local / "model.safetensors").read_bytes()
        card = stored["README.md"].decode()
        assert "model-index" in card and f"{0.1 * t:g}" in card  # the evaluation reached the pushed card
    rows = hub_server.files(f"{USER}/tiny-dpo-results", repo_type="dataset")["data/results.jsonl"].decode()
    run = f"{Path(args.output_dir).parent.name}-{Path(args.output_dir).name}"  # labels stay unique across runs
    assert [json.loads(line)["model"] for line in rows.splitlines()] == [f"{run}-base", f"{run}-iter1", f"{run}-iter2"]
    assert hub_server.unhandled == []


def test_a_bad_hub_id_fails_before_any_compute(tiny_model_dir, make_args):
    args = make_args(SelfPlayConfig, push_to_hub=True, hub_model_id="not a valid/repo id")
    with pytest.raises(ValueError, match="repo_id"):
        run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(6)), method="dpo")
    assert not Path(args.output_dir).exists()


def test_average_iterates_is_the_mean_of_the_iterates_weights(tiny_model_dir, make_args):
    import torch
    from transformers import AutoModelForCausalLM

    args = make_args(SelfPlayConfig, num_iterations=2, average_iterates=True, learning_rate=1e-2)
    result = run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(8)), method="dpo")
    states = [AutoModelForCausalLM.from_pretrained(p).state_dict() for p in result.iterates]
    average = AutoModelForCausalLM.from_pretrained(result.summary["average"]).state_dict()
    assert not torch.equal(states[0]["model.embed_tokens.weight"], states[1]["model.embed_tokens.weight"])
    for name, value in average.items():
        torch.testing.assert_close(value, (states[0][name] + states[1][name]) / 2, msg=name)
