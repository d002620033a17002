"""IFEval (the 541 real prompts) on one model: greedy responses with the model's chat template, scored by lm-eval's own
`process_results` of its `ifeval` task (prompt- and instruction-level, strict and loose): the leaderboard's metrics.

Generation is the only cost: it is done in chunks of prompts, each appended to `<record>.partial.jsonl` as it finishes,
so an interrupted pass resumes where it stopped. The finished record (`ifeval.json`) holds the four metrics, their
standard errors over prompts, the mean response length, the share of degenerate responses, throughput and time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

from spac_hf.utils import atomic_write_json, read_json, recorded_path

from benchmarks.instruction_following.methods import REPO_ROOT


METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")
# The cap the committed CPU results were made with (transformers `generate`, before the CTranslate2 backend): at 128
# tokens, constraints a response cannot meet (e.g. "at least 300 words") fail for every model alike.
CPU_MAX_GEN_TOKS = 128
# The leaderboard's own cap; the CPU configuration uses it since generation runs on the CTranslate2 engine.
LEADERBOARD_MAX_GEN_TOKS = 1280
# IFEval's generation backend: CTranslate2 in float32 (the greedy texts of transformers' `generate`, several times
# faster on CPU: benchmarks/cost/README.md); "hf" is transformers' `generate` itself.
DEFAULT_BACKEND = "ctranslate2"


def _stderr(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def score_responses(docs: Sequence[dict], responses: Sequence[str]) -> dict:
    """lm-eval's IFEval metrics of `responses` to `docs` (IFEval rows), aggregated as lm-eval aggregates them."""
    from benchmarks.instruction_following.data import registry_modules as ifeval_modules

    _, utils = ifeval_modules()
    per_doc = [utils.process_results(doc, [response]) for doc, response in zip(docs, responses)]
    out = {}
    for metric in METRICS:
        if metric.startswith("prompt"):
            values = [float(d[metric]) for d in per_doc]
        else:  # instruction level: every instruction of every prompt counts once (lm-eval's agg_inst_level_acc)
            values = [float(v) for d in per_doc for v in d[metric]]
        out[metric] = sum(values) / len(values)
        out[f"{metric}_stderr"] = _stderr(values)
    out["per_prompt_strict"] = [bool(d["prompt_level_strict_acc"]) for d in per_doc]
    return out


def run_ifeval(
    model_path: str | Path,
    record: str | Path,
    *,
    max_gen_toks: int = LEADERBOARD_MAX_GEN_TOKS,
    batch_size: int = 64,
    chunk_prompts: int = 64,
    docs: Sequence[dict] | None = None,
    backend: str = DEFAULT_BACKEND,
) -> dict:
    """Score `model_path` on IFEval (all 541 prompts unless `docs` is given, which only the tests do) and write
    `record`; a finished record with the same settings is read back, an unfinished pass resumes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spac_hf.generation import generate_responses
    from spac_hf.tasks.instruction_following import is_degenerate

    from benchmarks.eval_data.fetch import ifeval_rows

    record = Path(record)
    docs = list(ifeval_rows() if docs is None else docs)
    settings = {"model": recorded_path(model_path, REPO_ROOT), "max_gen_toks": max_gen_toks, "n_prompts": len(docs),
                "decoding": "greedy", "chat_template": True}  # fmt: skip
    if backend != "hf":  # records made before the engine existed have no key: they were made with `generate`
        settings["backend"] = backend
    done = read_json(record)
    if done is not None and done.get("settings") == settings:
        return done
    partial = record.with_name(record.stem + ".partial.jsonl")
    responses: dict[str, str] = {}
    seconds, tokens = 0.0, 0
    if partial.exists():
        for line in partial.read_text().splitlines():
            try:
                chunk = json.loads(line)
            except json.JSONDecodeError:  # cut off by a crash: that chunk is generated again
                continue
            if chunk.get("settings") != settings:
                continue
            responses.update(chunk["responses"])
            seconds += chunk["seconds"]
            tokens += chunk["tokens"]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    todo = [d for d in docs if str(d["key"]) not in responses]
    if todo:
        # The engine converts the model once, into a folder beside the record, and loads it from there.
        model = (
            str(model_path)
            if backend != "hf"
            else AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        )
        record.parent.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(todo), chunk_prompts):
            chunk = todo[start : start + chunk_prompts]
            t0 = time.perf_counter()
            texts = generate_responses(
                model,
                tokenizer,
                [[{"role": "user", "content": d["prompt"]}] for d in chunk],
                max_new_tokens=max_gen_toks,
                temperature=0.0,
                batch_size=batch_size,
                distributed=False,
                desc="IFEval",
                backend=backend,
                **(
                    {"engine_cache_dir": str(record.with_name(record.stem + ".ctranslate2"))}
                    if backend != "hf"
                    else {}
                ),
            )
            n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
            elapsed = time.perf_counter() - t0
            line = {"settings": settings, "responses": {str(d["key"]): t for d, t in zip(chunk, texts)},
                    "seconds": elapsed, "tokens": n_tokens}  # fmt: skip
            with partial.open("a") as f:
                f.write(json.dumps(line) + "\n")
                f.flush()
            responses.update(line["responses"])
            seconds += elapsed
            tokens += n_tokens
            print(
                f"IFEval {Path(model_path).name}: {len(responses)}/{len(docs)} prompts, "
                f"{n_tokens / elapsed:.1f} generated tokens/s",
                flush=True,
            )
    ordered = [responses[str(d["key"])] for d in docs]
    scores = score_responses(docs, ordered)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ordered]
    result = {
        "settings": settings,
        **{k: v for k, v in scores.items() if k != "per_prompt_strict"},
        "mean_length_tokens": sum(lengths) / len(lengths),
        "truncated_fraction": sum(n >= max_gen_toks for n in lengths) / len(lengths),
        "degenerate_fraction": sum(map(is_degenerate, ordered)) / len(ordered),
        "generation_seconds": round(seconds, 1),
        "generated_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "examples": [{"key": d["key"], "prompt": d["prompt"], "response": r} for d, r in zip(docs[:3], ordered[:3])],
    }
    atomic_write_json(record, result)
    partial.unlink(missing_ok=True)
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m benchmarks.instruction_following.ifeval <model folder>`: IFEval for one model (e.g. a recipe's
    starting model and its iterates: the recipes' "before and after"), written to <model folder>/ifeval.json."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument(
        "--max-gen-toks",
        type=int,
        default=LEADERBOARD_MAX_GEN_TOKS,
        help=f"new-token limit (default: the leaderboard's, {LEADERBOARD_MAX_GEN_TOKS})",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--backend", choices=["ctranslate2", "hf"], default=DEFAULT_BACKEND, help="generation backend (float32)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: <model>/ifeval.json")
    args = parser.parse_args(argv)
    result = run_ifeval(
        args.model,
        args.out or args.model / "ifeval.json",
        max_gen_toks=args.max_gen_toks,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    print(json.dumps({k: result[k] for k in (*METRICS, "mean_length_tokens", "tokens_per_second")}, indent=1))
    return result


if __name__ == "__main__":
    main()
