"""Does SPAC beat DPO when the data cover a good policy and little else? The review LM, equal compute, equal tuning.

    python -m benchmarks.coverage.run                                  # the declared design -> results/coverage/
    python -m benchmarks.coverage.run --regimes covered_mu --commit    # one process per regime; commit every cell
    python -m benchmarks.coverage.run --quick --out /tmp/cov           # seconds: 2 arms, a tiny budget (tests)

Per regime: every arm is tuned (the same number of trials each, on the tuning seeds, scored on the validation
prompts at the validation-chosen checkpoint), then run at its chosen trial on every test seed. Each run's result is
one JSON file under `<out>/runs/`, written when the run finishes: a rerun skips finished runs (resume), and refuses
to start when `<out>/settings.json` records other settings. After every cell (one arm's tuning, one test seed of all
arms) the report (`results.json`, tables, plots) is rebuilt, marked PARTIAL until every selected run is done, and
with `--commit` committed. benchmarks/coverage/README.md has the design and the reading of the results.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import time
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")  # a 0.9M model: one thread per process is fastest on a shared machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no busy-waiting threads stealing the other process's core
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from spac_hf.utils import atomic_write_json, read_json, recorded_path

from . import design
from .data import REGIMES, REPO_ROOT, prompt_splits, regime_data
from .train import RunSpec
from benchmarks.partial import commit
from benchmarks.protocol import ProtocolError, tune


QUICK = {
    "budget": 2,
    "arms": ("spac_theory", "dpo"),
    "regimes": ("covered",),
    "test_seeds": (0, 1),
    "tuning_seeds": (100,),
    "trials": 1,
    "max_pairs": 32,
    "validation_prompts": 6,
    "test_prompts": 6,
}


DEFAULT_OUT = REPO_ROOT / "results" / design.BENCHMARK
README = Path(__file__).resolve().parent / "README.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", nargs="+", default=list(design.DEFAULT_REGIMES), help=f"of {list(REGIMES)}")
    parser.add_argument("--arms", nargs="+", default=list(design.DEFAULT_ARMS), help=f"of {list(design.ARMS)}")
    parser.add_argument("--budget", type=int, default=design.DEFAULT_BUDGET, help="optimizer steps of 16 pairs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "outputs" / design.BENCHMARK)
    parser.add_argument("--commit", action="store_true", help="git-commit <out> and the benchmark after every cell")
    parser.add_argument("--tune-only", action="store_true", help="stop after the tuning of the selected regimes")
    parser.add_argument("--quick", action="store_true", help="2 arms, 1 regime, a 2-step budget on 32 pairs")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict:
    """What a result folder's runs depend on; a resumed run must agree (regimes and arms only select what runs)."""
    if args.quick:
        return {
            key: list(v) if isinstance(v, tuple) else v for key, v in QUICK.items() if key not in ("arms", "regimes")
        }
    return {
        "budget": args.budget,
        "test_seeds": list(design.TEST_SEEDS),
        "tuning_seeds": list(design.TUNING_SEEDS),
        "trials": design.TRIALS_PER_ARM,
        "max_pairs": None,
        "validation_prompts": None,
        "test_prompts": None,
    }


def check_args(args: argparse.Namespace) -> tuple[dict, object]:
    """Every refusal before any training, each naming its option."""
    if args.quick:
        args.regimes, args.arms, args.budget = list(QUICK["regimes"]), list(QUICK["arms"]), QUICK["budget"]
    for name in args.regimes:
        if name not in REGIMES:
            raise SystemExit(f"--regimes: unknown regime {name!r}; known: {list(REGIMES)}")
    for name in args.arms:
        if name not in design.ARMS:
            raise SystemExit(f"--arms: unknown arm {name!r}; known: {list(design.ARMS)}")
    settings = settings_of(args)
    # The declared comparison: the default arms plus any selected (a process running some arms still checks the
    # whole design, contrasts included); the runner trains the selected arms only.
    declared = tuple(args.arms) if args.quick else tuple(dict.fromkeys([*design.DEFAULT_ARMS, *args.arms]))
    comparison = design.comparison(args.budget, declared)
    if args.quick:
        import dataclasses

        comparison = dataclasses.replace(
            comparison,
            trials_per_arm=QUICK["trials"],
            tuning_seeds=QUICK["tuning_seeds"],
            test_seeds=QUICK["test_seeds"],
            budget=dataclasses.replace(comparison.budget, checkpoints=(1, 2)),
        )
    try:
        comparison.validate()
    except ProtocolError as error:
        raise SystemExit(f"--budget {args.budget}: {error}") from None
    pairs = settings["max_pairs"] or design.TRAIN_PAIRS
    from .train import fit_schedule

    for arm in comparison.arms:
        try:
            fit_schedule(
                {**_variant_overrides(arm.variant), **design.schedule_settings(arm, args.budget)}, pairs, args.budget
            )
        except ValueError as error:
            raise SystemExit(f"{error} (arm {arm.name!r})") from None
    recorded = read_json(args.out / "settings.json")
    if recorded is not None and recorded != settings:
        changed = [key for key in settings if recorded.get(key) != settings[key]]
        changed = ", ".join(f"--{k.replace('_', '-')} {recorded.get(k)} (now {settings[k]})" for k in changed)
        raise SystemExit(f"{args.out} holds runs made with other settings: {changed}. Use another --out.")
    return settings, comparison


def _variant_overrides(name: str) -> dict:
    from spac_hf.variants import get_variant

    return dict(get_variant(name).overrides)


@contextlib.contextmanager
def locked(path: Path):
    """One writer at a time for the report and the git commit (two processes, one per regime, share `out`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Runner:
    def __init__(self, args: argparse.Namespace, settings: dict, comparison):
        self.args, self.settings, self.comparison = args, settings, comparison
        train, validation, test = prompt_splits()
        self.prompts = {
            "validation": validation[: settings["validation_prompts"] or None],
            "test": test[: settings["test_prompts"] or None],
        }
        self.started = time.perf_counter()
        self.ran = 0  # runs this process trained (not read back, not left to another process)
        self.log_file = args.work_dir / f"progress_{'_'.join(args.regimes)}.log"

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} +{(time.perf_counter() - self.started) / 60:5.1f} min] {message}"
        print(line, flush=True)
        self.args.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as handle:
            handle.write(line + "\n")

    def run_path(self, regime: str, arm: str, tag: str) -> Path:
        return self.args.out / "runs" / regime / arm / f"{tag}.json"

    def data(self, regime: str, seed: int):
        data = regime_data(regime, seed)
        if self.settings["max_pairs"]:
            data = type(data)(data.pairs[: self.settings["max_pairs"]], data.mu_samples, data.stats)
        return data

    def start_model(self, regime: str, seed: int, data) -> Path:
        from .data import SHIPPED_MODEL
        from .train import mu_start_model

        if REGIMES[regime].start == "sft":
            return SHIPPED_MODEL
        path = self.args.work_dir / "start" / f"{REGIMES[regime].covered}_seed{seed}"
        with locked(path.with_suffix(".lock")):  # two processes on one regime build it once
            if not (path / "config.json").is_file():
                self.log(f"{regime} seed {seed}: fine-tuning pi_1 on mu's samples")
            return mu_start_model(data.mu_samples, path, seed)

    def one(
        self, regime: str, arm, params: dict, seed: int, tag: str, test: bool, trial: int, wait: bool = True
    ) -> dict | None:
        """One run, or its finished result read back (a result of other settings is refused). A run another live
        process has claimed is waited for (`wait`) or skipped (returns None), so several processes running the
        same command share the work."""
        from .train import run_arm

        steps = self.args.budget
        spec = RunSpec(
            regime,
            arm.name,
            arm.variant,
            design.schedule_settings(arm, steps),
            params,
            seed,
            steps,
            self.comparison.budget.checkpoints,
        )
        path = self.run_path(regime, arm.name, tag)
        claim = self.args.work_dir / "claims" / regime / arm.name / f"{tag}.pid"
        while True:
            done = read_json(path)
            if done is not None:
                if done["config_hash"] != spec.config_hash():
                    raise SystemExit(f"{path} was run with other settings ({done['identity']}); use another --out.")
                return done
            if _claim(claim):
                break
            if not wait:
                return None
            time.sleep(15)
        try:
            data = self.data(regime, seed)
            start = self.start_model(regime, seed, data)
            scratch = self.args.work_dir / "scratch" / regime / arm.name / tag
            result = run_arm(spec, data.pairs, start, self.prompts, scratch, test=test, log=self.log)
            result.update(
                trial=trial,
                data_sha256=data.sha256,
                data_stats=data.stats,
                start_model=recorded_path(start, REPO_ROOT),
            )
            atomic_write_json(path, result)
        finally:
            claim.unlink(missing_ok=True)
        self.ran += 1
        if test:
            self.ensure_start_scores(regime, seed, start)
        return result

    def ensure_start_scores(self, regime: str, seed: int, start: Path) -> None:
        """pi_1 scored once per regime and test seed, like an arm's checkpoint: `<out>/start/<regime>/seed<s>.json`."""
        path = self.args.out / "start" / regime / f"seed{seed}.json"
        claim = self.args.work_dir / "claims" / regime / "_start" / f"seed{seed}.pid"
        if path.is_file() or not _claim(claim):
            return
        try:
            atomic_write_json(
                path,
                {
                    "regime": regime,
                    "seed": seed,
                    "start_model": recorded_path(start, REPO_ROOT),
                    **self.start_scores(start, seed),
                },
            )
        finally:
            claim.unlink(missing_ok=True)

    def start_scores(self, start: Path, seed: int) -> dict:
        from transformers import AutoTokenizer

        from .data import SHIPPED_MODEL
        from .train import TEST_SAMPLES, VALIDATION_SAMPLES, score_policy

        tokenizer = AutoTokenizer.from_pretrained(str(SHIPPED_MODEL))
        return {
            "validation": score_policy([str(start)], tokenizer, self.prompts["validation"], VALIDATION_SAMPLES, seed),
            "test": score_policy([str(start)], tokenizer, self.prompts["test"], TEST_SAMPLES, seed),
        }

    def tuning_runs(self, regime: str, arm) -> list[tuple]:
        return [
            (params, seed, f"tune_seed{seed}_trial{k}", k)
            for k, params in enumerate(arm.search.trials(self.comparison.trials_per_arm))
            for seed in self.comparison.tuning_seeds
        ]

    def tuned(self, regime: str, arm) -> dict:
        trials = []
        for k, params in enumerate(arm.search.trials(self.comparison.trials_per_arm)):
            runs = [
                self.one(regime, arm, params, seed, f"tune_seed{seed}_trial{k}", False, k)
                for seed in self.comparison.tuning_seeds
            ]
            score = sum(r["curve"][str(r["chosen"])] for r in runs) / len(runs)
            trials.append({"regime": regime, "arm": arm.name, "trial": k, "params": params, "val_score": score})
        return tune(arm, trials, "val_score")

    def run(self) -> None:
        for regime in self.args.regimes:
            arms = [self.comparison.arm(name) for name in self.args.arms]
            self.log(
                f"{regime}: tuning {len(arms)} arms x {self.comparison.trials_per_arm} trials x "
                f"{len(self.comparison.tuning_seeds)} seeds"
            )
            for arm in arms:  # first the runs no other process has claimed, then wait for the rest
                ran = self.ran
                for params, seed, tag, k in self.tuning_runs(regime, arm):
                    self.one(regime, arm, params, seed, tag, False, k, wait=False)
                if self.ran > ran:
                    self.cell(f"{regime}: {arm.name} tuning runs")
            chosen = {}
            for arm in arms:
                chosen[arm.name] = self.tuned(regime, arm)
                self.log(
                    f"{regime}/{arm.name}: tuned {chosen[arm.name]['params']} "
                    f"(validation {chosen[arm.name]['val_score']:.3f})"
                )

            if self.args.tune_only:
                continue
            self.cell(f"{regime}: every arm tuned")
            for seed in self.comparison.test_seeds:
                ran = self.ran
                for arm in arms:
                    trial = chosen[arm.name]
                    self.one(
                        regime, arm, dict(trial["params"]), seed, f"test_seed{seed}", True, trial["trial"], wait=False
                    )
                if self.ran > ran:
                    self.cell(f"{regime}: test seed {seed}")
        self.log("done")

    def cell(self, what: str) -> None:
        """Rebuild the report from every finished run in `out`; with --commit, commit it (under one lock)."""
        from .report import build_report

        with locked(self.args.work_dir / "report.lock"):
            atomic_write_json(self.args.out / "settings.json", self.settings)
            readme = README if self.args.out == DEFAULT_OUT.resolve() else None  # only the committed results
            summary = build_report(self.args.out, command=_command(self.args), readme=readme)
            self.log(f"cell done: {what}; {summary}")
            if self.args.commit:
                # results only (and the README's generated results section): code is committed by hand
                paths = [self.args.out] + ([README] if readme else [])
                commit(paths, f"Coverage benchmark (PARTIAL): {what}; {summary}")


def _claim(path: Path) -> bool:
    """Claim a run for this process: True if the claim file is new, or stale (its process is gone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(path.read_text() or 0), 0)
                return False  # a live process runs it
            except (ProcessLookupError, ValueError, FileNotFoundError):
                path.unlink(missing_ok=True)  # left by a killed process: take it over
                continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def _command(args: argparse.Namespace) -> str:
    """The command that resumes everything in `out`: the regimes and arms it has runs of, and those selected now
    (a process started on some regimes must not record a command that would leave the others out)."""
    runs = args.out / "runs"
    present = {(p.parent.name, p.name) for p in runs.glob("*/*") if p.is_dir()}
    regimes = [r for r in REGIMES if r in args.regimes or any(r == g for g, _ in present)]
    arms = [a for a in design.ARMS if a in args.arms or any(a == arm for _, arm in present)]
    words = ["python -m benchmarks.coverage.run"]
    if args.quick:
        words.append("--quick")
    else:
        if regimes != list(design.DEFAULT_REGIMES):
            words += ["--regimes", *regimes]
        if arms != list(design.DEFAULT_ARMS):
            words += ["--arms", *arms]
    if args.budget != design.DEFAULT_BUDGET and not args.quick:
        words += ["--budget", str(args.budget)]
    if args.out != DEFAULT_OUT.resolve():
        words += ["--out", str(recorded_path(args.out, REPO_ROOT))]
    return " ".join(words + (["--commit"] if args.commit else []))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out, args.work_dir = args.out.resolve(), args.work_dir.resolve()
    settings, comparison = check_args(args)
    import torch

    from spac_hf.scripts.console import quiet_libraries

    torch.set_num_threads(1)
    quiet_libraries()  # no per-step dicts or bars from the libraries: the progress lines are the benchmark's
    runner = Runner(args, settings, comparison)
    runner.log(
        f"coverage benchmark: regimes {args.regimes}, arms {args.arms}, budget {args.budget} steps, "
        f"{len(comparison.test_seeds)} test seeds -> {args.out}"
    )
    runner.run()
    runner.cell("finished the selected regimes")


if __name__ == "__main__":
    main()
