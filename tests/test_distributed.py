"""Two CPU processes (gloo) doing everything a real run does, through both launchers, and the rank rule's guard.

- The tiny loop (tests/run_tiny_loop.py) under `accelerate launch` with recipes/accelerate_configs/cpu_2proc.yaml:
  sampled generation sharded across ranks and gathered in order, training, an evaluation of every model, model cards
  with the evaluation and samples, the results dataset. Then the same run under torchrun, one process killed in the
  middle of iteration 2's training and the run resumed on two processes: the same weights, byte for byte, as the
  uninterrupted run (so both launchers also give the same run).
- The real command under torchrun (`spac_hf.cli train --method spac`, the embedded default cut small): the recipe's
  true-reward evaluator, the cards, the results dataset and the report printed once.
- The guard that makes the rank rule hold by construction: anything that waits for every process raises at once
  inside a main-only function, so such a mistake fails here on one process instead of hanging two.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from spac_hf.data import tokenize_prompt
from spac_hf.generation import _shard, generate_responses
from spac_hf.run.folder import RankRuleError, RunFolder, barrier, main_only

from helpers import preference_rows


def _venv_command(name: str) -> str:
    return shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(__file__).parent / "run_tiny_loop.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
# 24 rows in 2 parts of 12; 2 processes x batch 2: 3 optimizer steps per iteration, a checkpoint after each.
TINY_RUN = ["--iterations", "2", "--rows", "24", "--batch-size", "2", "--save-steps", "1", "--evaluate"]


TORCHRUN = [_venv_command("torchrun"), "--nproc_per_node", "2", "--standalone"]
ACCELERATE = [
    _venv_command("accelerate"),
    "launch",
    "--config_file",
    str(ROOT / "recipes/accelerate_configs/cpu_2proc.yaml"),
]


def tiny_loop(launcher: list[str], model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [*launcher, SCRIPT, "--model", model, "--output-dir", str(out), *TINY_RUN, *extra]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def _failure(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + result.stderr[-3000:]


def _results_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results" / "data" / "results.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, bytes]:
    return {f"iter_{t}": (out / f"iter_{t}" / "model.safetensors").read_bytes() for t in (1, 2)}


@pytest.fixture(scope="module")
def two_process_run(tiny_model_dir, tmp_path_factory):
    """The tiny loop on two processes through `accelerate launch`, uninterrupted: the reference of the kill test."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    result = tiny_loop(ACCELERATE, tiny_model_dir, out)
    assert result.returncode == 0, _failure(result)
    return out, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_generate_train_evaluate_and_publish(two_process_run, model, tokenizer):
    out, report = two_process_run
    assert report["world_size"] == 2
    # Sampled (temperature 1): rank k draws its share of the prompts with seed + k. So the gathered generations must
    # equal, row by row, what one process draws for each rank's share with that rank's seed: nothing lost,
    # duplicated or shuffled by the sharding, and the two ranks not drawing from one random stream.
    generated = load_from_disk(str(out / "work" / "iter_1" / "generated"))
    prompts = generated["prompt"]
    assert len(prompts) == 12 and set(prompts) <= {row["prompt"] for row in preference_rows(24)}
    prompt_ids = [tokenize_prompt(tokenizer, {"prompt": p}) for p in prompts]
    seed = 42  # `SelfPlayConfig.seed`'s default, which run_tiny_loop.py leaves as it is
    expected = [None] * len(prompts)
    for rank in (0, 1):
        share = _shard(prompt_ids, rank, 2)
        texts = generate_responses(
            model, tokenizer, [prompts[i] for i in share], max_new_tokens=8, seed=seed + rank, distributed=False
        )
        for i, text in zip(share, texts):
            expected[i] = text
    assert generated["generated"] == expected
    same_seed = generate_responses(model, tokenizer, [prompts[i] for i in _shard(prompt_ids, 1, 2)],
                                   max_new_tokens=8, seed=seed, distributed=False)  # fmt: skip
    assert same_seed != [expected[i] for i in _shard(prompt_ids, 1, 2)]  # the check above can tell the seeds apart

    for t in (1, 2):
        record = json.loads((out / f"iter_{t}" / "iterate.json").read_text())
        steps = [e["step"] for e in record["log_history"] if "loss" in e]
        assert steps == [1, 2, 3]  # 12 rows / (2 processes x batch 2): data parallel, not each rank on everything
    # Every model evaluated once, by the main process, and the value every process read is what the card shows.
    evaluations = {
        t: json.loads((out / ("base_eval.json" if t == 0 else f"iter_{t}/eval.json")).read_text()) for t in (0, 1, 2)
    }
    sums = [evaluations[t]["results"]["weights"]["sum"] for t in (0, 1, 2)]
    assert len(set(sums)) == 3  # training moved the weights
    card = (out / "iter_2" / "README.md").read_text()
    assert f"{sums[2]:.6f}" in card and f"{sums[0]:.6f}" in card  # the sample beside the starting model's
    rows = _results_rows(out)
    assert sorted((row["iteration"], row["value"]) for row in rows) == list(enumerate(sums))
    summary = json.loads((out / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterates"]] == [1, 2]


@pytest.mark.slow
def test_a_process_killed_mid_run_resumes_on_two_processes_to_the_same_weights(
    two_process_run, tiny_model_dir, tmp_path
):
    reference, _ = two_process_run
    out = tmp_path / "run"
    killed = tiny_loop(TORCHRUN, tiny_model_dir, out, "--kill-at-step", "5", "--kill-rank", "1")  # iteration 2, step 2
    assert killed.returncode != 0, "the run was not killed"
    assert (out / "iter_1" / "iterate.json").exists() and not (out / "iter_2").exists()
    assert any((out / "work" / "iter_2" / "checkpoints").glob("checkpoint-*"))  # it resumes from one
    resumed = tiny_loop(TORCHRUN, tiny_model_dir, out)
    assert resumed.returncode == 0, _failure(resumed)
    assert "resuming training from" in resumed.stderr
    assert _weights(out) == _weights(reference)
    assert (out / "iter_2" / "eval.json").read_text() == (reference / "iter_2" / "eval.json").read_text()
    assert not list(out.glob("work/iter_*/checkpoints"))


@pytest.mark.slow
def test_the_command_runs_the_default_recipe_on_two_processes_with_its_evaluation(tmp_path):
    out = tmp_path / "spac"
    command = [
        *TORCHRUN,
        "-m",
        "spac_hf.cli",
        "train",
        "--method",
        "spac",
        "--output_dir",
        str(out),
        "--num_iterations",
        "2",
        "--max_train_samples",
        "64",
        "--num_train_epochs",
        "1",
        "--true_reward_prompts",
        "8",
        "--true_reward_samples",
        "1",
        "--max_new_tokens",
        "8",
        "--logging_steps",
        "1",
    ]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, _failure(result)
    assert json.loads((out / "self_play_run.json").read_text())["world_size"] == 2
    for t in (1, 2):
        record = json.loads((out / f"iter_{t}" / "iterate.json").read_text())
        assert record["train_rows"] == 32
        assert [e["step"] for e in record["log_history"] if "loss" in e] == [1]  # 32 rows / (2 x batch 16)
        assert "true_reward_reviews" in (out / f"iter_{t}" / "README.md").read_text()
    rows = _results_rows(out)
    assert sorted({row["iteration"] for row in rows}) == [0, 1, 2]
    assert (out / "summary.md").read_text().count("| iter_") == 2
    assert result.stdout.count("# SPAC: 2 iterations") == 1  # the report, printed once: by the main process


def test_anything_that_waits_for_every_process_raises_inside_a_main_only_step(tmp_path):
    folder = RunFolder(tmp_path)
    with pytest.raises(RankRuleError, match=r"RunFolder.exists.*inside the main-only function"):
        main_only(folder.is_done)(1)
    with pytest.raises(RankRuleError, match=r"main_only\(print\)"):
        main_only(lambda: main_only(print)("never printed"))()
    with pytest.raises(RankRuleError, match="a collective"):
        main_only(barrier)("a collective")
    # Outside a main-only step the same calls run (one process: no one to wait for), and the guard is reset.
    assert main_only(lambda: 1)() == 1
    assert folder.is_done(1) is False
