"""The theory benchmark: DPO, SPIN, SPAC and Algorithm 1 on contextual bandits with exact expectations, as data grows.

    python -m benchmarks.theory.run                 # the committed run (resumable: finished cells are reused)
    python -m benchmarks.theory.run --quick         # seconds: the smoke run the tests use
    python -m benchmarks.theory.run --environments sparse-30 --methods dpo spac_theory --no-budget

Writes results.json (every number, the settings and the machine), table.md, table.csv and suboptimality.png to --out,
and one file per finished (environment, method, n) cell to --cells (default <out>/cells), which a rerun reuses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from spac_hf.utils import (
    atomic_write_json,
    environment_info,
    torch_threads,
)

from benchmarks.theory.experiment import ENVIRONMENTS, run_budget_sweep, run_environment
from benchmarks.theory.methods import METHOD_LIST, METHODS
from benchmarks.theory.report import write_report


DEFAULT_NS = [30, 100, 300, 1000, 3000]
# The 100-action stress instance is the costliest (every self-play step is over 100 actions): fewer sizes, no SPIN.
STRESS = {"sparse-100": {"ns": [300, 1000], "skip": ["spin"]}}
BUDGET = {"environment": "sparse-30", "ns": [300], "steps": [10, 30, 100, 300],
          "methods": ["dpo", "iterative_dpo", "spac_theory", "spac_theory_no_pessimism"]}  # fmt: skip
QUICK = {
    "ns": [30, 300],
    "seeds": 3,
    "environments": ["covered-optimal", "sparse-30"],
    "budget_steps": [5, 10],
    "steps_scale": 0.05,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/theory"), help="output folder")
    parser.add_argument("--cells", type=Path, default=None, help="finished cells, reused on a rerun (<out>/cells)")
    parser.add_argument("--ns", type=int, nargs="+", default=DEFAULT_NS, help="data sizes (pairs, all iterations)")
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (each: a new bandit and data set)")
    parser.add_argument("--environments", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--budget-steps",
        type=int,
        nargs="+",
        default=BUDGET["steps"],
        help=f"steps per iteration of the budget sweep ({BUDGET['environment']}, n in {BUDGET['ns']})",
    )
    parser.add_argument("--no-budget", action="store_true", help="skip the budget sweep")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help=f"tiny run for tests: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        args.ns, args.seeds, args.environments = QUICK["ns"], QUICK["seeds"], QUICK["environments"]
        args.budget_steps = QUICK["budget_steps"]
    args.cells = args.cells or args.out / "cells"
    args.steps_scale = QUICK["steps_scale"] if args.quick else 1.0
    return args


def environment_plan(args: argparse.Namespace) -> list[tuple[str, list[int], list[str]]]:
    plan = []
    for name in args.environments:
        stress = STRESS.get(name, {}) if not args.quick else {}
        ns = [n for n in args.ns if n in stress.get("ns", args.ns)]
        methods = [m for m in args.methods if m not in stress.get("skip", [])]
        plan.append((name, ns, methods))
    return plan


def sweep(methods, ns, seeds, data_size, args, step) -> dict:
    return run_budget_sweep(
        BUDGET["environment"], ENVIRONMENTS[BUDGET["environment"]], methods, ns, args.budget_steps, seeds,
        data_size=data_size, cells=args.cells, on_step=step,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # The tensors are tiny: extra intra-op threads only wait for a core when the machine is shared.
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    seeds = list(range(args.seeds))
    data_size = max(args.ns)
    plan = environment_plan(args)
    budget_methods = [m for m in BUDGET["methods"] if m in args.methods]
    budget_ns = [n for n in BUDGET["ns"] if n <= data_size] if not args.quick else args.ns[-1:]
    run_budget = not args.no_budget and BUDGET["environment"] in args.environments and budget_methods
    total = sum(len(ns) * len(methods) for _, ns, methods in plan)
    total += len(budget_ns) * len(args.budget_steps) * len(budget_methods) if run_budget else 0
    start = time.perf_counter()
    environments, budget = [], None
    with tqdm(total=total, desc="theory", unit="cell") as bar:
        step = lambda description: (bar.set_postfix_str(description), bar.update())  # noqa: E731
        # The stress instances last: the budget sweep is worth more than them when time runs out.
        for name, ns, methods in sorted(plan, key=lambda item: item[0] in STRESS):
            if name in STRESS and run_budget and budget is None:
                budget = sweep(budget_methods, budget_ns, seeds, data_size, args, step)
            environments.append(
                run_environment(
                    name,
                    ENVIRONMENTS[name],
                    methods,
                    ns,
                    seeds,
                    data_size=data_size,
                    cells=args.cells,
                    steps_scale=args.steps_scale,
                    on_step=step,
                )  # fmt: skip
            )
        if run_budget and budget is None:
            budget = sweep(budget_methods, budget_ns, seeds, data_size, args, step)
    results = {
        "benchmark": "theory",
        "command": " ".join(["python", "-m", "benchmarks.theory.run", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "methods": {m.name: m.identity for m in METHOD_LIST if m.name in args.methods},
            "ns": args.ns,
            "data_size": data_size,
            "seeds": seeds,
            "pi_1": "the behaviour policy mu (the SFT model)",
            "comparator": "argmax J(pi) over pi with max_{x,a} pi(a|x)/mu(a|x) <= C (C = 1/good_mass)",
            "output_policy": "last iterate, except methods with output 'mixture': the uniform mixture of the trained "
            "iterates pi_2..pi_{T+1}",
            "bounded_methods": "reward / critic in [-B, B], B = half the environment's reward range; solved by "
            "projected Newton to a projected-gradient residual recorded per cell (critic_residual)",
            "exact": ["J(pi) over contexts and actions", "self-play response y ~ pi_t (weighted sum over actions)"],
            "sampled": ["the preference data: x ~ rho, y1, y2 ~ mu, Bradley-Terry labels (n pairs per seed)"],
        },
        "environments": environments,
        "budget_sweep": budget,
        "runtime_seconds": round(time.perf_counter() - start, 2),
        # Cells are reused across runs (and can be computed by several processes sharing --cells): the compute of
        # this result is the sum of its cells' own times, each measured when the cell was computed.
        "compute_seconds_of_all_cells": round(
            sum(row.get("seconds") or 0.0 for e in environments for row in e["rows"])
            + sum(row.get("seconds") or 0.0 for row in (budget or {}).get("rows", [])),
            1,
        ),
        "environment": environment_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    write_report(results, args.out)
    print(f"wrote {args.out}/results.json, table.md, table.csv, suboptimality.png in {results['runtime_seconds']} s")
    return results


if __name__ == "__main__":
    main()
