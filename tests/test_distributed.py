"""Two CPU processes (torchrun, gloo): one iteration, with sampled generation sharded across ranks, gathered in
order."""

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

from helpers import preference_rows


SCRIPT = str(Path(__file__).parent / "run_tiny_loop.py")


@pytest.mark.slow
def test_two_processes_shard_generation_and_train_one_iteration(tiny_model_dir, tmp_path, model, tokenizer):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    out = tmp_path / "ddp"
    command = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--standalone",
        SCRIPT,
        "--model",
        tiny_model_dir,
        "--output-dir",
        str(out),
        "--iterations",
        "1",
        "--rows",
        "12",
        "--batch-size",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["world_size"] == 2

    # Sampled (temperature 1): rank k draws its share of the prompts with seed + k. So the gathered generations must
    # equal, row by row, what one process draws for each rank's share with that rank's seed: nothing lost,
    # duplicated or shuffled by the sharding, and the two ranks not drawing from one random stream.
    generated = load_from_disk(str(out / "work" / "iter_1" / "generated"))
    prompts = [row["prompt"] for row in preference_rows(12)]
    assert generated["prompt"] == prompts
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

    record = json.loads((out / "iter_1" / "iterate.json").read_text())
    steps = [e["step"] for e in record["log_history"] if "loss" in e]
    assert steps == [1, 2, 3]  # 12 rows / (2 processes x batch 2): data parallel, not each rank on everything
    assert (out / "iter_1" / "model.safetensors").exists()
