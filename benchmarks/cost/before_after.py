"""Before/after for a change to `src/spac_hf/trainer.py`: the committed SPACTrainer against the working tree's.

    python -m benchmarks.cost.before_after                 # HEAD against the working tree, sizes 0.1M and 10M
    python -m benchmarks.cost.before_after --ref HEAD~1 --sizes 0.1M --steps 40

The committed file (`git show <ref>:src/spac_hf/trainer.py`) is loaded as a second module of the installed package,
so both classes run in the same process on the same weights and batch, interleaved:

1. the parts of the step the changes touched, alone, many times: the collator on one batch of examples, and
   `_log_metrics` on one fixed forward's outputs; their outputs are compared too (they must agree);
2. whole training steps through `train()` with the step clock (phases and totals), as in the benchmark.

Writes `before_after.json` and `before_after.md` into `--out`.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from spac_hf.utils import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
)

from benchmarks.cost.clock import PHASES, StepClock
from benchmarks.cost.models import SIZES, build_model, build_tokenizer, count_parameters, preference_rows
from benchmarks.cost.timing import run_interleaved, summarize
from benchmarks.cost.variants import StepSettings, trainer_args


REPO = Path(__file__).resolve().parents[2]
TRAINER = "src/spac_hf/trainer.py"


def load_committed_trainer(ref: str):
    """The `SPACTrainer` class of `trainer.py` at git revision `ref`, as module `spac_hf._trainer_at_ref`."""
    source = subprocess.run(
        ["git", "show", f"{ref}:{TRAINER}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    name = "spac_hf._trainer_at_ref"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "spac_hf"  # its relative imports (.config, .data, ...) resolve to the installed package
    sys.modules[name] = module
    exec(compile(source, f"{ref}:{TRAINER}", "exec"), module.__dict__)
    return module.SPACTrainer


def build(trainer_class, model, tokenizer, rows, settings, output_dir):
    import copy

    from datasets import Dataset
    from transformers import PrinterCallback

    from spac_hf import SPACConfig

    trainer = trainer_class(
        copy.deepcopy(model),
        args=SPACConfig(**trainer_args(settings, output_dir)),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def _interleaved(calls: dict, repeats: int, inner: int) -> dict:
    """Median seconds of one call of each entry of `calls`, the entries taking turns."""
    samples = {name: [] for name in calls}
    for r in range(repeats):
        for name in calls if r % 2 == 0 else list(calls)[::-1]:
            start = time.perf_counter()
            for _ in range(inner):
                calls[name]()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(s) for name, s in samples.items()}


def time_collator(trainers: dict, repeats: int, inner: int) -> dict:
    """Median seconds of one collator call per version on the same examples; and whether the batches are equal."""
    before = trainers["before"]
    examples = [before.train_dataset[i] for i in range(before.args.per_device_train_batch_size)]
    batches = {name: t.data_collator(examples) for name, t in trainers.items()}
    equal = batches["before"].keys() == batches["after"].keys() and all(
        torch.equal(batches["before"][k], batches["after"][k]) for k in batches["before"]
    )
    calls = {name: (lambda t=t: t.data_collator(examples)) for name, t in trainers.items()}
    return {"seconds": _interleaved(calls, repeats, inner), "equal_batches": equal}


def time_log_metrics(trainers: dict, repeats: int, inner: int) -> dict:
    """Median seconds of one `_log_metrics` call per version, interleaved; and the metrics each logged."""
    from spac_hf.losses import spac_loss

    state = {}
    for name, trainer in trainers.items():
        size = trainer.args.per_device_train_batch_size
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(size)])
        trainer.model.train()
        with torch.no_grad():
            logps, outputs = trainer._sequence_logps(trainer.model, batch)
        policy = dict(zip(trainer.responses, logps.chunk(len(trainer.responses))))
        ref = {r: batch[f"ref_{r}_logps"] for r in trainer.responses}
        args = trainer.args
        _, pessimism, preference = spac_loss(
            policy["chosen"],
            policy["rejected"],
            policy["generated"],
            ref["chosen"],
            ref["rejected"],
            ref["generated"],
            beta=trainer.beta,
            lam=args.lam,
            real=args.real_response,
            smoothing=args.smoothing,
        )
        state[name] = (batch, outputs, policy, ref, pessimism, preference)
    calls = {name: (lambda t=t, a=state[name]: t._log_metrics("eval", *a)) for name, t in trainers.items()}
    seconds = _interleaved(calls, repeats, inner)
    logged = {}
    for name, trainer in trainers.items():
        trainer._metrics["eval"].clear()
        trainer._log_metrics("eval", *state[name])
        logged[name] = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    return {"seconds": seconds, "logged": logged}


def compare_size(size_name: str, before_class, settings: StepSettings, steps: int, repeats: int) -> dict:
    from spac_hf import SPACTrainer

    size = SIZES[size_name]
    tokenizer = build_tokenizer(size.vocab_size)
    model = build_model(size, tokenizer, seed=settings.seed)
    rows = preference_rows(settings.rows, size.vocab_size, settings.prompt_tokens, settings.response_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            "before": build(before_class, model, tokenizer, rows, settings, f"{tmp}/before"),
            "after": build(SPACTrainer, model, tokenizer, rows, settings, f"{tmp}/after"),
        }
        collator = time_collator(trainers, repeats=repeats, inner=20)
        metrics = time_log_metrics(trainers, repeats=repeats, inner=20)
        clocks = {name: StepClock(settings.device).attach(t) for name, t in trainers.items()}
        rounds = run_interleaved(trainers, clocks, warmup_steps=1, steps=steps, steps_per_round=max(1, steps // 5))
    before, after = metrics["logged"]["before"], metrics["logged"]["after"]
    differences = {k: abs(before[k] - after[k]) for k in before}
    return {
        "parameters": count_parameters(model),
        "collator_seconds": collator["seconds"],
        "collator_equal_batches": collator["equal_batches"],
        "log_metrics_seconds": metrics["seconds"],
        "logged_metrics_max_abs_difference": max(differences.values()),
        "same_metric_names_in_order": list(before) == list(after),
        "steps": summarize(rounds, baseline="before"),
    }


def markdown(results: dict) -> str:
    lines = [
        f"# SPACTrainer before ({results['ref']}) and after (working tree)",
        "",
        "| params | collator before ms | after ms | after/before | `_log_metrics` before ms | after ms | after/before "
        "| step before ms | step after ms | after/before (paired) | (cpu) | loss_metrics phase before ms | after ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, r in results["sizes"].items():
        co, lm, st = r["collator_seconds"], r["log_metrics_seconds"], r["steps"]
        lines.append(
            f"| {size} | {1e3 * co['before']:.3f} | {1e3 * co['after']:.3f} | {co['after'] / co['before']:.2f} "
            f"| {1e3 * lm['before']:.3f} | {1e3 * lm['after']:.3f} | {lm['after'] / lm['before']:.2f} "
            f"| {1e3 * st['before']['step_seconds']:.1f} | {1e3 * st['after']['step_seconds']:.1f} "
            f"| {st['after']['ratio_to_before']:.3f} | {st['after']['ratio_to_before_cpu']:.3f} "
            f"| {1e3 * st['before']['phases_seconds']['loss_metrics']:.3f} "
            f"| {1e3 * st['after']['phases_seconds']['loss_metrics']:.3f} |"
        )
    lines += [
        "",
        "Phases (median ms per step):",
        "",
        "| params | version | " + " | ".join(PHASES) + " |",
        "|" + "---|" * (len(PHASES) + 2),
    ]
    for size, r in results["sizes"].items():
        for version in ("before", "after"):
            phases = r["steps"][version]["phases_seconds"]
            lines.append(f"| {size} | {version} | " + " | ".join(f"{1e3 * phases[p]:.2f}" for p in PHASES) + " |")
    lines += [
        "",
        "Largest difference between the metrics the two versions log: "
        + ", ".join(f"{size} {r['logged_metrics_max_abs_difference']:.2e}" for size, r in results["sizes"].items())
        + "; identical collated batches: "
        + ", ".join(f"{size} {r['collator_equal_batches']}" for size, r in results["sizes"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="HEAD", help="git revision of the 'before' trainer.py")
    parser.add_argument("--sizes", nargs="+", default=["0.1M", "10M"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=20, help="measured training steps per version and size")
    parser.add_argument("--repeats", type=int, default=200, help="interleaved repeats of the `_log_metrics` timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/cost"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before_class = load_committed_trainer(args.ref)
    settings = StepSettings()
    results = {"ref": args.ref, "settings": settings.as_dict(), "threads": args.threads, "sizes": {}}
    for size_name in args.sizes:
        results["sizes"][size_name] = compare_size(size_name, before_class, settings, args.steps, args.repeats)
        print(f"{size_name}: done", flush=True)
    results["environment"] = environment_info()
    atomic_write_json(args.out / "before_after.json", results)
    atomic_write_text(args.out / "before_after.md", markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
