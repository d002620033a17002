"""Where a training step's time goes: torch.profiler (operators) and cProfile (Python) of the DPO and SPAC steps.

    python -m benchmarks.cost.profile_step                        # sizes 0.1M and 10M, into results/cost/profile/
    python -m benchmarks.cost.profile_step --sizes 0.1M --steps 5

Both trainers are built as in the benchmark (same weights, batch and lengths, precomputed reference log-probs), warmed
up, then profiled over the same number of real `train()` steps, one trainer after the other. Writes per size:
`<size>_ops.md` (phase medians, then the operators with the most self time, SPAC against DPO: per-step medians over
the rounds), `<size>_python.txt` (cProfile of both trainers' steps, by cumulative time) and `summary.json`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
from pathlib import Path

import torch
from transformers import TrainerCallback

from spac_hf.utils import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
)

from benchmarks.cost.clock import PHASES, StepClock
from benchmarks.cost.models import SIZES, build_model, build_tokenizer, count_parameters, preference_rows
from benchmarks.cost.variants import StepSettings, build_trainer


PROFILED = ("dpo", "spac")


def _train(trainer, steps: int) -> None:
    trainer.args.max_steps = steps
    trainer.train()


class StepWindow(TrainerCallback):
    """Runs a profiler from `on_step_begin` to `on_step_end` only: the `train()` call's own setup (its `gc.collect`,
    the data loader) stays out of the tables. The batch fetch happens before `on_step_begin` and is left out too."""

    def __init__(self):
        self.profiler = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.profiler is not None:
            self.profiler.enable() if isinstance(self.profiler, cProfile.Profile) else self.profiler.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is not None:
            self.profiler.disable() if isinstance(self.profiler, cProfile.Profile) else self.profiler.stop()
            self.profiler = None


def _profiled_step(trainer, window: StepWindow, profiler) -> None:
    window.profiler = profiler
    _train(trainer, 1)


def profile_size(size_name: str, settings: StepSettings, steps: int, top: int, out: Path) -> dict:
    size = SIZES[size_name]
    tokenizer = build_tokenizer(size.vocab_size)
    model = build_model(size, tokenizer, seed=settings.seed)
    rows = preference_rows(settings.rows, size.vocab_size, settings.prompt_tokens, settings.response_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {v: build_trainer(v, model, tokenizer, rows, settings, f"{tmp}/{v}") for v in PROFILED}
        clocks = {v: StepClock(settings.device).attach(t) for v, t in trainers.items()}
        for trainer in trainers.values():
            _train(trainer, 1)  # warm-up: optimizer state, first-call allocations
        for clock in clocks.values():
            clock.steps.clear()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if settings.device.startswith("cuda"):
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        # Interleaved, one step per profiler session: the machine's load hits both trainers alike; per-operator
        # medians over the rounds then drop the rounds a neighbour's burst slowed down.
        per_round = {v: [] for v in PROFILED}
        python = {v: cProfile.Profile() for v in PROFILED}
        windows = {v: StepWindow() for v in PROFILED}
        for variant, trainer in trainers.items():
            trainer.add_callback(windows[variant])
        for r in range(steps):
            for variant in PROFILED if r % 2 == 0 else PROFILED[::-1]:
                prof = torch.profiler.profile(activities=activities)
                _profiled_step(trainers[variant], windows[variant], prof)
                per_round[variant].append(
                    {e.key: (e.self_cpu_time_total, e.count, e.cpu_time_total) for e in prof.key_averages()}
                )
                # cProfile in a step of its own: two profilers at once would distort each other
                _profiled_step(trainers[variant], windows[variant], python[variant])
        # Unprofiled steps for the phase breakdown, interleaved.
        for clock in clocks.values():
            clock.steps.clear()
        for r in range(steps):
            for variant in PROFILED if r % 2 == 0 else PROFILED[::-1]:
                _train(trainers[variant], 1)
    op_tables = {}
    for variant, rounds in per_round.items():
        keys = set().union(*rounds)
        op_tables[variant] = {
            k: {
                "self_us": statistics.median(r.get(k, (0.0, 0, 0.0))[0] for r in rounds),
                "calls": statistics.median(r.get(k, (0.0, 0, 0.0))[1] for r in rounds),
                "total_us": statistics.median(r.get(k, (0.0, 0, 0.0))[2] for r in rounds),
            }
            for k in keys
        }
    phases = {
        v: {p: statistics.median(s[p] for s in clocks[v].steps) for p in (*PHASES, "total", "cpu_total")}
        for v in PROFILED
    }
    text = []
    for variant in PROFILED:
        stream = io.StringIO()
        stream.write(f"==== {variant}: cProfile of {steps} steps (on_step_begin to on_step_end), by cumulative time\n")
        pstats.Stats(python[variant], stream=stream).sort_stats("cumulative").print_stats(70)
        text.append(stream.getvalue())
    atomic_write_text(out / f"{size_name}_python.txt", "\n".join(text))
    atomic_write_text(out / f"{size_name}_ops.md", ops_markdown(size_name, op_tables, phases, top))
    return {
        "parameters": count_parameters(model),
        "phases_seconds": phases,
        "groups_ms_per_step": {v: group_times(t) for v, t in op_tables.items()},
        "op_self_us_per_step": {v: {k: round(x["self_us"], 1) for k, x in t.items()} for v, t in op_tables.items()},
        "op_calls_per_step": {v: {k: x["calls"] for k, x in t.items()} for v, t in op_tables.items()},
    }


# Groups of the step's time, from the profiler: an autograd Function's (or the optimizer's) inclusive time holds
# everything it runs; the attention kernels and the matrix products elsewhere are counted by their self time.
GROUPS = {
    "LM head, forward (TRL's chunked log-softmax, entropy, ...)": ("total", ["ChunkedLogProbFunction"]),
    "LM head, backward": ("total", ["ChunkedLogProbFunctionBackward"]),
    "optimizer step (fused AdamW)": ("total", ["Optimizer.step#AdamW.step"]),
    "attention (SDPA, forward + backward)": (
        "self",
        [
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
            "aten::_scaled_dot_product_efficient_attention",
            "aten::_scaled_dot_product_flash_attention",
        ],
    ),
}


def group_times(table: dict) -> dict:
    """Milliseconds per step of each group, then the rest (the layers: projections, MLP, norms, recomputation)."""
    total = sum(x["self_us"] for x in table.values()) / 1e3
    groups = {
        name: sum(table.get(k, {}).get(f"{kind}_us", 0.0) for k in keys) / 1e3 for name, (kind, keys) in GROUPS.items()
    }
    groups["rest: the layers' projections and MLPs, norms, gradient-checkpoint recomputation, Python"] = total - sum(
        groups.values()
    )
    groups["whole step (sum of self times)"] = total
    return groups


def ops_markdown(size_name: str, tables: dict, phases: dict, top: int) -> str:
    dpo, spac = tables["dpo"], tables["spac"]
    total = {v: sum(x["self_us"] for x in t.values()) for v, t in tables.items()}
    keys = sorted(set(dpo) | set(spac), key=lambda k: -spac.get(k, {}).get("self_us", 0.0))[:top]
    lines = [
        f"# Profile of one training step, size {size_name}",
        "",
        "Phase medians from the step clock (seconds, unprofiled steps):",
        "",
        "| phase | DPO | SPAC | SPAC/DPO |",
        "|---|---|---|---|",
    ]
    for phase in (*PHASES, "total", "cpu_total"):
        a, b = phases["dpo"][phase], phases["spac"][phase]
        lines.append(f"| {phase} | {a:.4f} | {b:.4f} | " + (f"{b / a:.2f} |" if a > 0 else "- |"))
    groups = {v: group_times(t) for v, t in tables.items()}
    lines += [
        "",
        "Where the profiled step's time goes (ms per step, median over rounds):",
        "",
        "| group | DPO ms | DPO % | SPAC ms | SPAC % | SPAC/DPO |",
        "|---|---|---|---|---|---|",
    ]
    whole = {v: g["whole step (sum of self times)"] for v, g in groups.items()}
    for name in groups["dpo"]:
        a, b = groups["dpo"][name], groups["spac"][name]
        ratio = f"{b / a:.2f}" if a > 0 else "-"
        share_a, share_b = 100 * a / whole["dpo"], 100 * b / whole["spac"]
        lines.append(f"| {name} | {a:.1f} | {share_a:.0f}% | {b:.1f} | {share_b:.0f}% | {ratio} |")
    lines += [
        "",
        "Operators by SPAC self CPU time per step (torch.profiler, median over rounds; total "
        f"DPO {total['dpo'] / 1e3:.1f} ms, SPAC {total['spac'] / 1e3:.1f} ms):",
        "",
        "| operator | DPO ms | SPAC ms | SPAC/DPO | DPO calls | SPAC calls |",
        "|---|---|---|---|---|---|",
    ]
    for key in keys:
        a, b = dpo.get(key, {"self_us": 0.0, "calls": 0}), spac.get(key, {"self_us": 0.0, "calls": 0})
        ratio = f"{b['self_us'] / a['self_us']:.2f}" if a["self_us"] > 0 else "-"
        lines.append(
            f"| `{key}` | {a['self_us'] / 1e3:.3f} | {b['self_us'] / 1e3:.3f} | {ratio} "
            f"| {a['calls']:g} | {b['calls']:g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["0.1M", "10M"], choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=3, help="profiled steps per trainer")
    parser.add_argument("--top", type=int, default=30, help="operators listed per size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/cost/profile"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = StepSettings(device=args.device)
    results = {"settings": settings.as_dict(), "threads": args.threads, "sizes": {}}
    for size_name in args.sizes:
        results["sizes"][size_name] = profile_size(size_name, settings, args.steps, args.top, args.out)
        print(f"profiled {size_name}: {args.out}/{size_name}_ops.md, {size_name}_python.txt")
    results["environment"] = environment_info()
    atomic_write_json(args.out / "summary.json", results)
    return results


if __name__ == "__main__":
    main()
