"""Kill a tiny self-play run at named points, resume it, compare with an uninterrupted run (for test_kill_resume.py).

    python tests/kill_resume.py --model DIR --work DIR --report FILE [--points a,b:2,...|default|all]

The libraries are imported once; every run is a forked child, so a kill costs a fraction of a second of start-up
instead of a fresh interpreter. A kill is `spac_hf.utils.kill_point`: with `SPAC_HF_KILL_AT=<name>[:<n>]` the child
calls `os._exit` the n-th time it reaches `<name>` (no cleanup, no `finally`: what SIGKILL or a power cut leaves).
The points inside every durable write are `write_file.*` (`atomic_write_bytes`: half the bytes written, or all of them
before the rename), `write_folder.*` (`atomic_directory`), `iterate.*` (publishing an iterate) and
`checkpoint.partial` (inside a Trainer checkpoint, once the weights are written and before the optimizer state).

`--points all` kills at every point the uninterrupted run reaches, each occurrence: the exhaustive variant.
Writes one JSON object to `--report`: the points reached by the reference run, and for each point tried the exit
codes of the killed and the resumed run, the differences from the reference (empty when bit-identical), what was
left behind, and what the library logged while resuming.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import traceback
from pathlib import Path


sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from datasets import Dataset, load_from_disk  # noqa: E402
from transformers import Trainer  # noqa: E402

import spac_hf.utils  # noqa: E402
from spac_hf import SPACConfig, run_self_play  # noqa: E402

from helpers import CPU_TRAINING, preference_rows  # noqa: E402


torch.set_num_threads(1)
TRACE_ENV = "SPAC_HF_KILL_TRACE"
LOG_ENV = "SPAC_HF_TEST_LOG"


def _traced(original):
    """`kill_point` that also appends each point reached to the file named by $SPAC_HF_KILL_TRACE."""

    def kill_point(name: str) -> None:
        trace = os.environ.get(TRACE_ENV)
        if trace:
            with open(trace, "a") as f:
                f.write(name + "\n")
        original(name)

    return kill_point


def install_kill_points() -> None:
    """Trace every kill point, and add one inside Trainer's checkpoint write (Trainer is not ours to instrument)."""
    kill_point = _traced(spac_hf.utils.kill_point)
    for module in [m for name, m in sys.modules.items() if name.startswith("spac_hf") and m is not None]:
        if getattr(module, "kill_point", None) is not None:
            module.kill_point = kill_point
    original = Trainer._save_optimizer_and_scheduler

    def save_optimizer_and_scheduler(self, output_dir):
        kill_point("checkpoint.partial")  # the checkpoint's weights are written, its optimizer state not yet
        return original(self, output_dir)

    Trainer._save_optimizer_and_scheduler = save_optimizer_and_scheduler


def evaluate(model_path: str, iteration: int) -> dict:
    """A deterministic stand-in for lm-eval: the sum of the weights, so evaluation files are written and compared."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(model_path) / "model.safetensors"))
    total = sum(float(t.double().sum()) for t in weights.values())
    return {"results": {"weights": {"sum": total, "sum_stderr": 0.0}}, "iteration": iteration}


def run(model: str, out: Path) -> None:
    log = os.environ.get(LOG_ENV)
    if log:  # what the library says while resuming (what it removed, what it recomputed)
        import logging

        handler = logging.FileHandler(log)
        handler.setLevel(logging.WARNING)
        logging.getLogger("spac_hf").addHandler(handler)
    args = SPACConfig(
        **{
            **CPU_TRAINING,
            "output_dir": str(out),
            "num_iterations": 2,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-2,
            "save_strategy": "steps",
            "save_steps": 1,
            "history_iterations": 1,
            "average_iterates": True,
        }
    )
    run_self_play(model, args, Dataset.from_list(preference_rows(8)), dataset_names=["local/tiny"], evaluate=evaluate)


def in_child(fn, *args, env: dict[str, str] | None = None) -> int:
    """Run `fn(*args)` in a forked child with `env` added to its environment; return its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.environ.update(env or {})
            fn(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fingerprint(out: Path) -> dict[str, str]:
    """What must be bit-identical: every weight file, the generated data, the evaluations, the training losses."""
    result = {}
    for path in sorted(out.glob("iter_*/*.safetensors")):
        result[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted(out.glob("work/iter_*/generated*")):
        rows = load_from_disk(str(path)).to_dict()
        result[str(path.relative_to(out))] = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    for path in sorted([*out.glob("iter_*/eval.json"), out / "base_eval.json"]):
        result[str(path.relative_to(out))] = path.read_text()
    for path in sorted(out.glob("iter_*/iterate.json")):
        record = json.loads(path.read_text())
        losses = [(e["step"], e["loss"]) for e in record.get("log_history", []) if "loss" in e]
        result[f"{path.relative_to(out)}:losses"] = json.dumps(losses)
    results = out / "results"
    for path in sorted(results.rglob("*.jsonl")) if results.exists() else []:
        result[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def leftovers(out: Path) -> list[str]:
    """Temporary files and folders, and checkpoints of finished iterations, still in the run folder."""
    found = [p for p in out.rglob("*") if ".tmp" in p.name or (p.name.startswith("tmp") and "work" in p.parts)]
    found += [p for p in out.glob("work/iter_*/checkpoints")]
    return sorted(str(p.relative_to(out)) for p in found)


def occurrences(trace: list[str]) -> list[str]:
    """`name:n` for every point of a trace, in the order reached."""
    seen: dict[str, int] = {}
    points = []
    for name in trace:
        seen[name] = seen.get(name, 0) + 1
        points.append(f"{name}:{seen[name]}")
    return points


LATE = ("write_file.partial", "write_folder.before_rename", "checkpoint.partial", "iterate.after_rename")


def default_points(reached: list[str]) -> list[str]:
    """Every kind of point the first time it is reached, and a few kinds also the last time (late in the run: the
    summary, the averaged iterate, the last checkpoint of iteration 2, iteration 2's published iterate)."""
    first, last = {}, {}
    for point in reached:
        name = point.rsplit(":", 1)[0]
        first.setdefault(name, point)
        last[name] = point
    return list(dict.fromkeys([*first.values(), *(last[name] for name in LATE if name in last)]))


def last_checkpoint(reached: list[str]) -> str:
    return [p for p in reached if p.startswith("checkpoint.partial:")][-1]


def damage(out: Path) -> list[str]:
    """Truncate what the loop can recompute: every generated data set's Arrow file and every evaluation."""
    damaged = [*out.glob("work/iter_*/generated*/data-*.arrow"), *out.glob("iter_*/eval.json"), out / "base_eval.json"]
    damaged = [p for p in damaged if p.exists()]
    for path in damaged:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return sorted(str(p.relative_to(out)) for p in damaged)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--points", default="default", help="comma-separated `name[:n]`, `default` or `all`")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    options = parser.parse_args()
    install_kill_points()
    work = Path(options.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    # One path for every run: the folder's name is part of the model labels written into cards and results.
    out, trace_file = work / "runs" / "spac", work / "trace.txt"
    code = in_child(run, options.model, out, env={TRACE_ENV: str(trace_file)})
    if code != 0:
        raise SystemExit(f"the uninterrupted run failed with exit code {code}")
    reached = occurrences(trace_file.read_text().split())
    expected = fingerprint(out)
    report = {"reached": reached, "reference_leftovers": leftovers(out), "points": {}}
    shutil.rmtree(out)
    if options.points == "all":
        points = reached
    elif options.points == "default":
        points = default_points(reached)
    else:
        points = options.points.split(",")

    # Last, a kill in iteration 2's training followed by damage to every recomputable file before the resume.
    for point in [*points, f"damaged:{last_checkpoint(reached)}"]:
        killed = in_child(run, options.model, out, env={"SPAC_HF_KILL_AT": point.removeprefix("damaged:")})
        damaged = damage(out) if point.startswith("damaged:") else []
        log = work / "resume.log"
        log.unlink(missing_ok=True)
        resumed = in_child(run, options.model, out, env={LOG_ENV: str(log)})
        got = fingerprint(out) if resumed == 0 else {}
        report["points"][point] = {
            "killed_exit_code": killed,
            "resumed_exit_code": resumed,
            "differences": sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)),
            "leftovers": leftovers(out),
            "damaged": damaged,
            "resume_log": log.read_text().splitlines() if log.exists() else [],
        }
        shutil.rmtree(out, ignore_errors=True)
    Path(options.report).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
