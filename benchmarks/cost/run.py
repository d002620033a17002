"""The cost benchmark: SPACTrainer's training step against TRL's DPOTrainer's, time and memory, from ~0.1M to ~100M
parameters; self-play generation throughput; the share of a SPAC iteration spent generating.

    python -m benchmarks.cost.run                          # the committed run: 4 sizes, CPU (about 10 minutes)
    python -m benchmarks.cost.run --quick                  # seconds: the smoke run the tests use
    python -m benchmarks.cost.run --device cuda --bf16 --threads 4     # on a GPU machine
    python -m benchmarks.cost.run --sizes 10M 50M --steps 10 --out results/cost

For each size, in one process: the three trainers (`variants.py`) are built on the same weights and data, warmed up,
then trained in interleaved rounds (`timing.py`) with a step clock on the real `train()` loop (`clock.py`); the
generation throughput is measured on the same model. Peak memory and the iteration share run in fresh processes
(`memory.py`, `iteration_share.py`). Writes results.json (every number, the settings and the machine), table.md,
table.csv, ratios.png and iteration_share.png, each atomically.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path


# Set before the libraries load: no per-row progress bars from `datasets`, no telemetry, no Hub.
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from tqdm.auto import tqdm

from spac_hf.utils import (
    atomic_write_json,
    environment_info,
    torch_threads,
)

from benchmarks.cost import iteration_share, memory
from benchmarks.cost.clock import StepClock
from benchmarks.cost.fresh_process import FreshProcesses
from benchmarks.cost.generation_speed import measure_generation
from benchmarks.cost.models import SIZES, build_model, build_tokenizer, count_parameters, preference_rows
from benchmarks.cost.timing import run_interleaved, summarize
from benchmarks.cost.variants import VARIANTS, StepSettings, build_trainer


DEFAULT_SIZES = ["0.1M", "10M", "50M", "100M"]
# Measured steps per variant: more where a step is short and noisy, fewer where one step takes seconds.
DEFAULT_STEPS = {"0.1M": 20, "10M": 6, "50M": 3, "100M": 2}
QUICK = dict(
    sizes=["0.1M"],
    steps=2,
    batch_size=2,
    prompt_tokens=16,
    response_tokens=16,
    rows=4,
    generation_prompts=4,
    generation_repeats=1,
    share_sizes=["0.1M"],
    share_prompts=8,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/cost"), help="output folder")
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, choices=list(SIZES))
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"measured steps per trainer and size (default per size: {DEFAULT_STEPS})",
    )
    parser.add_argument("--warmup-steps", type=int, default=1, help="unmeasured steps per trainer first")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--response-tokens", type=int, default=64, help="per response, EOS included")
    parser.add_argument("--rows", type=int, default=8, help="rows in each trainer's data set")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda[:i])")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument(
        "--no-gradient-checkpointing",
        action="store_true",
        help="turn off gradient checkpointing (TRL's DPOConfig turns it on by default)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 on a shared machine: a second thread waiting for a busy core makes "
        "every op slower; use the core count on a quiet machine)",
    )
    parser.add_argument("--generation-prompts", type=int, default=16)
    parser.add_argument("--generation-batch-size", type=int, default=16)
    parser.add_argument("--generation-repeats", type=int, default=2)
    parser.add_argument(
        "--share-sizes",
        nargs="*",
        default=["0.1M", "10M"],
        choices=list(SIZES),
        help="sizes at which one SPAC iteration is timed end to end",
    )
    parser.add_argument("--share-prompts", type=int, default=32, help="prompts in the iteration's part of the data")
    parser.add_argument("--share-epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"tiny run for tests: {QUICK}")
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="write results.json only, no tables or plots (matplotlib is not on the GPU machine); "
        "render them later with `python -m benchmarks.cost.report DIR`",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    return args


def steps_for(args: argparse.Namespace, size: str) -> int:
    return args.steps if args.steps is not None else DEFAULT_STEPS.get(size, 3)


def time_size(size_name: str, settings: StepSettings, args: argparse.Namespace, bar) -> dict:
    """Interleaved step timing of the three trainers, then the generation throughput, on one model size."""
    size = SIZES[size_name]
    tokenizer = build_tokenizer(size.vocab_size)
    model = build_model(size, tokenizer, seed=settings.seed)
    rows = preference_rows(
        settings.rows, size.vocab_size, settings.prompt_tokens, settings.response_tokens, seed=settings.seed
    )
    steps = steps_for(args, size_name)
    steps_per_round = max(1, steps // 5)  # short steps: a few per `train()` call, whose own setup is not timed
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {v: build_trainer(v, model, tokenizer, rows, settings, f"{tmp}/{v}") for v in VARIANTS}
        clocks = {v: StepClock(settings.device).attach(trainer) for v, trainer in trainers.items()}
        bar.set_postfix_str(f"{size_name}: timing")
        rounds = run_interleaved(
            trainers,
            clocks,
            warmup_steps=args.warmup_steps,
            steps=steps,
            steps_per_round=steps_per_round,
            on_call=lambda name: bar.set_postfix_str(f"{size_name}: timing, {name} done"),
        )
        shapes = {v: sorted(set(clock.shapes)) for v, clock in clocks.items()}
        del trainers, clocks
        gc.collect()
    bar.update()
    bar.set_postfix_str(f"{size_name}: generation")
    prompt_ids = [
        tokenizer(row["prompt"])["input_ids"]
        for row in preference_rows(
            args.generation_prompts,
            size.vocab_size,
            settings.prompt_tokens,
            1,
            seed=settings.seed + 1,
            with_generated=False,
        )
    ]
    generation = measure_generation(
        model,
        tokenizer,
        prompt_ids,
        max_new_tokens=settings.response_tokens,
        batch_size=args.generation_batch_size,
        repeats=args.generation_repeats,
        device=settings.device,
        seed=settings.seed,
    )
    bar.update()
    return {
        "size": size_name,
        "parameters": count_parameters(model),
        "shape": size.as_dict(),
        "batch_shapes": {v: [list(s) for s in shape] for v, shape in shapes.items()},
        "steps_per_round": steps_per_round,
        "time": summarize(rounds, baseline="dpo"),
        "generation": generation,
    }


def memory_ratios(measured: dict) -> dict:
    base = measured["dpo"]
    return {
        variant: {
            "peak": m["peak_bytes"] / base["peak_bytes"],
            "step": m["step_bytes"] / base["step_bytes"],
            "saved": m["saved_bytes"] / base["saved_bytes"],
        }
        for variant, m in measured.items()
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    settings = StepSettings(
        batch_size=args.batch_size, prompt_tokens=args.prompt_tokens, response_tokens=args.response_tokens,
        rows=args.rows, device=args.device, bf16=args.bf16, seed=args.seed,
        gradient_checkpointing=not args.no_gradient_checkpointing,
    )  # fmt: skip
    start = time.perf_counter()
    memory_results: dict[str, dict] = {}
    shares = []
    tasks = len(args.sizes) * (2 + len(VARIANTS)) + len(args.share_sizes)
    with tqdm(total=tasks, desc="cost", unit="task") as bar:
        # Fresh processes first, while the main process holds no model: they run on an otherwise idle benchmark.
        with FreshProcesses() as fresh:
            for size_name in args.sizes:
                memory_results[size_name] = {}
                for variant in VARIANTS:
                    bar.set_postfix_str(f"{size_name}: memory, {variant}")
                    memory_results[size_name][variant] = fresh.run(
                        memory.probe, size_name, variant, settings.as_dict(), args.threads
                    )
                    bar.update()
            for size_name in args.share_sizes:
                bar.set_postfix_str(f"{size_name}: one SPAC iteration")
                shares.append(fresh.run(
                    iteration_share.measure, size_name, args.share_prompts, args.share_epochs, settings.as_dict(),
                    args.threads,
                ))  # fmt: skip
                bar.update()
        sizes = []
        for size_name in args.sizes:
            entry = time_size(size_name, settings, args, bar)
            entry["memory"] = {**memory_results[size_name], "ratios": memory_ratios(memory_results[size_name])}
            sizes.append(entry)
    results = {
        "benchmark": "cost",
        "command": " ".join(["python", "-m", "benchmarks.cost.run", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "step": settings.as_dict(),
            "threads": args.threads,
            "warmup_steps": args.warmup_steps,
            "steps": {size: steps_for(args, size) for size in args.sizes},
            "generation": {
                "prompts": args.generation_prompts,
                "batch_size": args.generation_batch_size,
                "repeats": args.generation_repeats,
                "max_new_tokens": settings.response_tokens,
            },
            "iteration_share": {"sizes": args.share_sizes, "prompts": args.share_prompts, "epochs": args.share_epochs},
            "variants": list(VARIANTS),
            "baseline": "dpo",
        },
        "sizes": sizes,
        "iteration_share": shares,
        "runtime_seconds": round(time.perf_counter() - start, 1),
        "environment": environment_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    if args.no_report:
        print(f"wrote {args.out}/results.json in {results['runtime_seconds']} s")
        return results
    from benchmarks.cost.report import write_report  # matplotlib: only where the report is drawn

    write_report(results, args.out)
    print(
        f"wrote {args.out}/results.json, table.md, table.csv, ratios.png, iteration_share.png "
        f"in {results['runtime_seconds']} s"
    )
    return results


if __name__ == "__main__":
    main()
