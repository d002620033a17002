"""The true reward of the theory's output policy, the uniform mixture of the iterates, for finished benchmark runs.

    python -m benchmarks.ground_truth.mixture_eval results/ground_truth_coverage_g0.5_k29 --methods spac_theory

For each run of the given methods in `<results>/results.json`, the held-out prompts are answered by the run's
iterates through `spac_hf.mixture.IterateMixture` (one iterate drawn uniformly per prompt and sample, seeded by the
run's seed), with the evaluation's settings (prompts, samples, new tokens, temperature 1), and scored by the task's
true reward. Writes `<results>/mixture.json`: per run, the mixture's and the last iterate's mean true reward, and per
method the paired difference mixture - last iterate across seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")

from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.tasks.true_reward import DEFAULT_MAX_NEW_TOKENS  # as the recipes' evaluation samples
from spac_hf.utils import atomic_write_json, read_json

from benchmarks.ground_truth.runs import run_folder_of
from benchmarks.ground_truth.stats import mean_ci95


def mixture_true_reward(run_dir: Path, seed: int, prompts: list[str], num_samples: int, max_new_tokens: int) -> float:
    """Mean over prompts of the mean true reward of `num_samples` responses of the iterates' uniform mixture."""
    from transformers import AutoTokenizer

    from spac_hf.mixture import IterateMixture
    from spac_hf.tasks.metrics import task_rewards
    from spac_hf.tasks.registry import TASKS

    mixture = IterateMixture.from_run(run_dir, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(mixture.iterates[0])
    flat = [p for p in prompts for _ in range(num_samples)]
    texts = mixture.generate(tokenizer, flat, max_new_tokens=max_new_tokens, temperature=1.0, batch_size=64)
    rewards = task_rewards(TASKS["reviews"].key, flat, texts)["rewards"]  # the metric, as every evaluation
    per_prompt = [sum(rewards[i * num_samples : (i + 1) * num_samples]) / num_samples for i in range(len(prompts))]
    return sum(per_prompt) / len(per_prompt)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a ground-truth results folder (holds results.json)")
    parser.add_argument("--methods", nargs="+", default=["spac_theory"])
    args = parser.parse_args(argv)
    results = read_json(args.results / "results.json")
    settings = results["settings"]
    data = next(iter(settings["per_method"].values()))["recipe_args"]
    test_file = EMBEDDED_DEFAULT / "data" / "test.jsonl"  # the coverage data keep the shipped test
    unique = dict.fromkeys(json.loads(line)["prompt"] for line in test_file.read_text().splitlines())
    prompts = list(unique)[: settings["true_reward_prompts"]]  # the recipes' evaluation prompts
    rows, per_method = [], {}
    for run in results["runs"]:
        if run["method"] not in args.methods:
            continue
        value = mixture_true_reward(
            run_folder_of(run), run["seed"], prompts, settings["true_reward_samples"], DEFAULT_MAX_NEW_TOKENS
        )
        last = run["iterations"][-1]["true_reward"]
        rows.append({"method": run["method"], "seed": run["seed"], "mixture": value, "last_iterate": last})
        per_method.setdefault(run["method"], []).append(value - last)
        print(f"{run['method']} seed {run['seed']}: mixture {value:.3f}, last iterate {last:.3f}", flush=True)
    out = {
        "command": " ".join(["python", "-m", "benchmarks.ground_truth.mixture_eval", *(argv or sys.argv[1:])]),
        "recipe_args_of_first_method": data,
        "runs": rows,
        "mixture_minus_last": {m: mean_ci95(v) if len(v) > 1 else {"mean": v[0]} for m, v in per_method.items()},
    }
    atomic_write_json(args.results / "mixture.json", out)
    return out


if __name__ == "__main__":
    main()
