"""mu's sampling settings for the `single_constraint` data, chosen by a probe before any data are drawn (issue 25).

At temperature 1 (top-p 1), 58 of the first estimation chunk's 128 samples from SmolLM2-135M-Instruct reached the
512-token cap without ending, and the ones read were word salad: the tail of a small model's distribution, sampled
freely, does not end. The data design refuses a cap that cuts 10% or more (`MAX_CUT_SHARE`), and a higher cap cannot
help. This probe draws the same chunk (the estimation pass's first 32 prompts, every constraint kind, 4 samples each,
cap 512, the engine, 2 threads) under each setting of `LADDER` in turn and stops at the first whose cut share is at
most `PROBE_CUT_SHARE`; that setting becomes mu's (`single_constraint.DEFAULTS`).

The rule, declared before the probe ran (README, "mu's sampling"): nucleus sampling at top-p 0.9 (drops the tail
that produces the word salad, keeps the head of mu's distribution), the temperature lowered only as far as needed,
1.0, 0.8, 0.7, 0.6, 0.5; the first setting cutting at most 5% of the probe's samples (half the data's limit: 128
samples are a noisy estimate, and the full estimation pass still enforces 10%). Lower temperatures make mu's samples
of a prompt more alike, so fewer prompts give a pair: the probe reports, per setting, the share of prompts whose
uncut samples disagree on the reward (would give a pair), and the data builder's pair checks still apply. If no
setting passes, the probe says so and the benchmark stops there.

    python -m benchmarks.instruction_following.probe --commit     # resumable: every setting drawn is kept

Writes `results/instruction_following/pilot/sampling_probe.json` (per setting: samples, cut share, mean tokens,
degenerate share, prompts that would give a pair, mean reward, tokens/s) and `sampling_probe.jsonl` (the samples).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: the 2 cores are shared
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from spac_hf.utils import atomic_write_json, recorded_path

from benchmarks.instruction_following.methods import REPO_ROOT
from benchmarks.partial import commit


OUT = Path("results/instruction_following/pilot")
# (temperature, top_p), in the order tried: the first is the setting the first data chunk was drawn with.
LADDER = [(1.0, 1.0), (1.0, 0.9), (0.8, 0.9), (0.7, 0.9), (0.6, 0.9), (0.5, 0.9)]
PROBE_CUT_SHARE = 0.05


def setting_summary(items: list[dict], tokens: int, seconds: float) -> dict:
    """What one setting's samples show: how many the cap cut, how long and how degenerate they are, and how many
    prompts would give a pair (at least two uncut samples with different rewards)."""
    from spac_hf.tasks.instruction_following import is_degenerate

    texts = [text for item in items for text in item["responses"]]
    cut = sum(c for item in items for c in item["cut"])
    uncut = [[r for r, c in zip(item["rewards"], item["cut"]) if not c] for item in items]
    return {
        "prompts": len(items),
        "samples": len(texts),
        "cut": cut,
        "cut_share": cut / len(texts),
        "mean_tokens": tokens / len(texts),
        "degenerate_share": sum(map(is_degenerate, texts)) / len(texts),
        "prompts_with_pair": sum(len(set(rewards)) > 1 for rewards in uncut),
        "mean_reward_uncut": _mean([r for rewards in uncut for r in rewards]),
        "tokens_per_second": tokens / seconds if seconds > 0 else None,  # recorded seconds are rounded to 0.1
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def chosen(results: list[dict]) -> dict | None:
    """The declared rule: the first setting of the ladder (in order) whose cut share is at most `PROBE_CUT_SHARE`."""
    return next((r for r in results if r["cut_share"] <= PROBE_CUT_SHARE), None)


def main(argv: list[str] | None = None) -> dict:
    from transformers import AutoTokenizer

    from benchmarks.instruction_following import single_constraint as design

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/smollm2/model", help="mu (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the probe's files go (default: %(default)s)")
    parser.add_argument("--prompts", type=int, default=32, help="the estimation pass's first N prompts (default: 32)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="the cap (default: the design's)")
    parser.add_argument("--commit", action="store_true", help="git-commit the probe's files after every setting")
    args = parser.parse_args(argv)
    command = " ".join(["python -m benchmarks.instruction_following.probe", *(sys.argv[1:] if argv is None else argv)])
    settings = {
        "model": recorded_path(args.model, REPO_ROOT),
        "kinds": design.candidate_kinds(),
        **design.DEFAULTS,
        "chunk_prompts": args.prompts,
        **({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}),
    }
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # The pass takes prompts in order, the kinds in turn: its first N rows are the same whatever its full length.
    kinds = len(settings["kinds"])
    rows = design.estimation_prompts({**settings, "prompts_per_kind": -(-args.prompts // kinds)}, tokenizer)[0]
    rows = rows[: args.prompts]
    progress = args.out / "sampling_probe.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    for step, (temperature, top_p) in enumerate(LADDER, 1):
        sampling = {k: settings[k] for k in design.SAMPLING_KEYS} | {"temperature": temperature, "top_p": top_p}
        started = time.perf_counter()
        done = design.sample(args.model, tokenizer, rows, progress, sampling, desc=f"T={temperature} top-p={top_p}")
        stats = design.chunk_stats(progress, sampling)
        summary = {"temperature": temperature, "top_p": top_p}
        summary |= setting_summary([done[r["id"]] for r in rows], stats["tokens"], stats["seconds"])
        results.append(summary)
        print(
            f"T={temperature} top-p={top_p}: {summary['cut']}/{summary['samples']} cut ({summary['cut_share']:.1%}), "
            f"{summary['mean_tokens']:.0f} tokens a sample, {summary['degenerate_share']:.1%} degenerate, "
            f"{summary['prompts_with_pair']}/{summary['prompts']} prompts would give a pair "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        pick = chosen(results)
        done = pick is not None or step == len(LADDER)
        record = {
            "benchmark": "instruction_following/probe",
            "status": "finished" if done else "partial",
            "command": command,
            "rule": f"the first of {LADDER} (temperature, top_p) cutting at most {PROBE_CUT_SHARE:.0%} of the samples",
            "settings": {k: v for k, v in settings.items() if k not in ("temperature", "top_p", "kinds")},
            "prompt_ids": [r["id"] for r in rows],
            "results": results,
            "chosen": pick and {"temperature": pick["temperature"], "top_p": pick["top_p"]},
            "decision": (
                f"mu samples at temperature {pick['temperature']}, top-p {pick['top_p']}"
                if pick
                else ("no setting of the ladder passes: the benchmark stops at the data stage" if done else None)
            ),
        }
        atomic_write_json(args.out / "sampling_probe.json", record)
        if args.commit:
            message = f"Sampling probe: T={temperature} top-p={top_p} cuts {summary['cut_share']:.1%}"
            commit([progress, args.out / "sampling_probe.json"], message + ("" if done else f" (PARTIAL; {command})"))
        if pick:
            print(f"Chosen: temperature {pick['temperature']}, top-p {pick['top_p']}")
            return record
    print(f"No setting of the ladder cuts at most {PROBE_CUT_SHARE:.0%}: the benchmark stops here (README).")
    return record


if __name__ == "__main__":
    main()
