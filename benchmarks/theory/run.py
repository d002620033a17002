"""The theory benchmark under the fair-comparison protocol: DPO, SPIN, SPAC and Algorithm 1 on contextual bandits with
exact expectations, each arm tuned with the same number of trials on held-out seeds, scored on test seeds.

    python -m benchmarks.theory.run                     # the committed run (resumable: finished work is reused)
    python -m benchmarks.theory.run --quick --out /tmp/theory     # seconds: the smoke run the tests use

Every comparison (one per data size n and step budget) is declared and validated before any compute: a comparison
whose arms' budgets or trial counts differ, or whose decision rule is missing, is refused with the arm and the field.
After every finished regime (instance, n, budget) results.json, table.md, table.csv and the plots are rewritten (marked
partial until the last) and, with --commit, committed; a rerun resumes from results.json and the --cells folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from spac_hf.utils import atomic_write_text, environment_info, read_json, torch_threads

from benchmarks.partial import commit
from benchmarks.protocol import ProtocolError
from benchmarks.theory import experiment as design
from benchmarks.theory.experiment import ENVIRONMENTS, Split, comparison, run_regime
from benchmarks.theory.report import write_report


QUICK = {
    "instances": ["sparse-30"],
    "ns": [30],
    "budgets": [30],
    "sweep": [60],
    "tuning_seeds": [100, 101],
    "test_seeds": [0, 1, 2],
}
COMMAND = "python -m benchmarks.theory.run"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/theory"), help="output folder")
    parser.add_argument("--cells", type=Path, default=Path("outputs/theory/cells"), help="finished runs, reused")
    parser.add_argument("--instances", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    parser.add_argument("--ns", type=int, nargs="+", default=list(design.NS), help="data sizes (pairs)")
    parser.add_argument("--budget", type=int, default=design.PRIMARY_BUDGET, help="optimizer steps, every instance")
    sweep = [b for b in design.BUDGETS if b != design.PRIMARY_BUDGET]
    parser.add_argument("--sweep", type=int, nargs="*", default=sweep, help="more budgets, sweep instance")
    parser.add_argument("--commit", action="store_true", help="git-commit --out after every finished regime")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help=f"tiny run for tests: {QUICK}")
    args = parser.parse_args(argv)
    args.tuning_seeds, args.test_seeds = design.TUNING_SEEDS, design.TEST_SEEDS
    if args.quick:
        args.instances, args.ns, args.sweep = QUICK["instances"], QUICK["ns"], QUICK["sweep"]
        args.budget = QUICK["budgets"][0]
        args.tuning_seeds, args.test_seeds = tuple(QUICK["tuning_seeds"]), tuple(QUICK["test_seeds"])
    return args


def regimes(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(instance, n, budget) in run order: the primary budget on every instance first, then the budget sweep."""
    order = [(instance, n, args.budget) for instance in args.instances for n in args.ns]
    if design.SWEEP_INSTANCE in args.instances:
        order += [(design.SWEEP_INSTANCE, n, steps) for steps in args.sweep for n in args.ns]
    return order


def declare(args: argparse.Namespace) -> dict[tuple[int, int], object]:
    """One comparison per (n, budget), validated before anything runs."""
    declared = {}
    for _, n, steps in regimes(args):
        if (n, steps) not in declared:
            plan = comparison(n, steps, tuning_seeds=args.tuning_seeds, test_seeds=args.test_seeds)
            plan.validate()
            declared[(n, steps)] = plan
    return declared


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        declared = declare(args)
    except ProtocolError as error:
        raise SystemExit(f"refused before running: {error}") from None
    with torch_threads(args.threads):
        return run(args, argv, declared)


def run(args: argparse.Namespace, argv: list[str] | None, declared: dict) -> dict:
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    plan = regimes(args)
    design_record = {
        "instances": {name: asdict(ENVIRONMENTS[name]) for name in args.instances},
        "descriptions": {name: design.ENVIRONMENT_DESCRIPTIONS[name] for name in args.instances},
        "ns": args.ns,
        "primary_budget": args.budget,
        "sweep": {"instance": design.SWEEP_INSTANCE, "budgets": sorted({args.budget, *args.sweep})},
        "regimes": [list(r) for r in plan],
        "checkpoints_per_run": design.CHECKPOINTS_PER_RUN,
        "delta": design.DELTA,
        "arm_labels": design.ARM_LABELS,
        "score": "suboptimality = J(best covered policy) - J(output), exact; lower is better",
        "pi_1": "the behaviour policy mu (the SFT model)",
        "checkpoint_rules": {
            "validation": "the (trial, checkpoint) with the best mean tuning-seed score",
            "last": "the trial with the best tuning-seed score at the last checkpoint",
        },
        "pairs_seen": "n, the preference pairs every arm trains on (tokens_trained: pair-gradient evaluations)",
    }
    comparisons = [{"n": n, "budget": steps, **c.to_dict()} for (n, steps), c in declared.items()]
    previous = read_json(args.out / "results.json")
    reusable = previous is not None and previous.get("design") == design_record
    done = {r["regime"]: restore(previous, r) for r in previous["regimes"]} if reusable else {}
    results = {
        "benchmark": "theory",
        "partial": True,
        "command": command,
        "resume": command,
        "design": design_record,
        "comparisons": comparisons,
    }
    finished = [done[f"{i} n={n} steps={s}"] for i, n, s in plan if f"{i} n={n} steps={s}" in done]
    splits: dict[str, dict] = {}
    start = time.perf_counter()
    todo = [r for r in plan if f"{r[0]} n={r[1]} steps={r[2]}" not in done]
    runs_per_regime = sum(declared[(plan[0][1], plan[0][2])].trials_per_arm + 1 for _ in design.ARMS)
    print(f"theory: {len(plan)} regimes, {len(plan) - len(todo)} already done; {len(todo)} to run", flush=True)
    with tqdm(total=len(todo) * runs_per_regime, desc="theory", unit="run", mininterval=5) as bar:
        step = lambda description: (bar.set_postfix_str(description, refresh=False), bar.update())  # noqa: E731
        for instance, n, steps in todo:
            if instance not in splits:
                size = max(args.ns)
                splits[instance] = {
                    "tuning": Split(ENVIRONMENTS[instance], args.tuning_seeds, size),
                    "test": Split(ENVIRONMENTS[instance], args.test_seeds, size),
                }
            began = time.perf_counter()
            outcome = run_regime(
                instance, n, steps, splits[instance], declared[(n, steps)], cells=args.cells, on_run=step
            )
            outcome["seconds"] = round(time.perf_counter() - began, 1)
            finished.append(outcome)
            finished.sort(key=lambda r: plan.index((r["instance"], r["n"], r["budget"])))
            write(results, finished, plan, args)
            tqdm.write(f"finished {outcome['regime']} in {outcome['seconds']} s ({len(finished)}/{len(plan)})")
            if args.commit:
                commit([args.out], f"Theory benchmark: partial results, {len(finished)} of {len(plan)} regimes")
    results = write(results, finished, plan, args)
    print(f"wrote {args.out}/results.json, table.md, table.csv and plots in {time.perf_counter() - start:.0f} s")
    if args.commit:
        commit([args.out], "Theory benchmark: complete results under the protocol")
    return results


def json_lines(results: dict) -> str:
    """results.json with one row per line: thousands of records stay readable, and a rerun's diff is its new rows."""
    parts = []
    for key, value in results.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = ",\n".join("    " + json.dumps(row, default=str) for row in value)
            parts.append(f"  {json.dumps(key)}: [\n{rows}\n  ]")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, default=str)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


ROWS = ("records", "trials", "decisions", "summary")  # per regime, kept in the top-level lists of results.json


def restore(previous: dict, regime: dict) -> dict:
    """A finished regime of an earlier results.json, with its rows, so a rerun carries it over unchanged."""
    return {**regime, **{key: [row for row in previous[key] if row["regime"] == regime["regime"]] for key in ROWS}}


def write(results: dict, finished: list[dict], plan: list, args: argparse.Namespace) -> dict:
    results = {
        **results,
        "partial": len(finished) < len(plan),
        "regimes_done": len(finished),
        "regimes_total": len(plan),
        "records": [row for r in finished for row in r["records"]],
        "trials": [row for r in finished for row in r["trials"]],
        "decisions": [row for r in finished for row in r["decisions"]],
        "summary": [row for r in finished for row in r["summary"]],
        "spent_flags": [flag for r in finished for flag in r["spent_flags"]],
        "compute_seconds": round(sum(r.get("seconds", 0.0) for r in finished), 1),
        "regimes": [{key: value for key, value in r.items() if key not in ROWS} for r in finished],
        "environment": environment_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json_lines(results))
    write_report(results, args.out)
    return results


if __name__ == "__main__":
    main()
