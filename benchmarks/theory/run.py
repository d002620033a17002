"""The theory benchmark: DPO, SPIN and SPAC on a contextual bandit with exact expectations, as the data grows.

    python benchmarks/theory/run.py                 # the committed run (about a minute on 2 CPU cores)
    python benchmarks/theory/run.py --quick         # a few seconds: the smoke run the tests use
    python benchmarks/theory/run.py --out results/theory

Writes results.json (every number, the settings and the machine), table.md, table.csv and suboptimality.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path


if __package__ in (None, ""):  # run as a script: make `benchmarks.theory` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tqdm.auto import tqdm  # noqa: E402

from spac_hf.utils import atomic_write_json  # noqa: E402
from recipes.script_utils import environment_info, torch_threads  # noqa: E402

from benchmarks.theory.experiment import ENVIRONMENTS, run_environment  # noqa: E402
from benchmarks.theory.methods import METHODS, TrainConfig  # noqa: E402
from benchmarks.theory.report import write_report  # noqa: E402


DEFAULT_NS = [30, 100, 300, 1000, 3000]
QUICK = {"ns": [30, 300], "seeds": 3, "steps": 40}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/theory"), help="output folder")
    parser.add_argument("--ns", type=int, nargs="+", default=DEFAULT_NS, help="data sizes (pairs, all iterations)")
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (each: a new bandit and data set)")
    parser.add_argument("--environments", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    parser.add_argument("--beta", type=float, default=defaults.beta)
    parser.add_argument("--lam", type=float, default=defaults.lam, help="SPAC's lambda")
    parser.add_argument("--real", default=defaults.real, choices=["average", "chosen", "rejected"])
    parser.add_argument("--smoothing", default=defaults.smoothing, choices=["sigmoid", "linear"])
    parser.add_argument("--iterations", type=int, default=defaults.iterations, help="T")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="full-batch Adam steps per iteration")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help=f"tiny run for tests: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        args.ns, args.seeds, args.steps = QUICK["ns"], QUICK["seeds"], QUICK["steps"]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # The tensors are tiny: extra intra-op threads only wait for a core when the machine is shared.
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    train_config = TrainConfig(
        beta=args.beta, lam=args.lam, real=args.real, smoothing=args.smoothing,
        iterations=args.iterations, steps=args.steps, lr=args.lr,
    )  # fmt: skip
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    environments = []
    with tqdm(total=len(args.environments) * len(args.ns) * len(METHODS), desc="theory", unit="run") as bar:
        for name in args.environments:
            environments.append(
                run_environment(
                    name, ENVIRONMENTS[name], train_config, args.ns, seeds,
                    on_step=lambda description: (bar.set_postfix_str(description), bar.update()),
                )  # fmt: skip
            )
    results = {
        "benchmark": "theory",
        "command": " ".join(["python", "benchmarks/theory/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "train": asdict(train_config),
            "ns": args.ns,
            "seeds": seeds,
            "pi_1": "the behaviour policy mu (the SFT model)",
            "comparator": "argmax J(pi) over pi with max_{x,a} pi(a|x)/mu(a|x) <= C (C = 1/good_mass)",
            "output_policy": "last iterate",
            "exact": ["J(pi) over contexts and actions", "self-play response y ~ pi_t (weighted sum over actions)"],
            "sampled": ["the preference data: x ~ rho, y1, y2 ~ mu, Bradley-Terry labels (n pairs per seed)"],
        },
        "environments": environments,
        "runtime_seconds": round(time.perf_counter() - start, 2),
        "environment": environment_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", results)
    write_report(results, args.out)
    print(f"wrote {args.out}/results.json, table.md, table.csv, suboptimality.png in {results['runtime_seconds']} s")
    return results


if __name__ == "__main__":
    main()
