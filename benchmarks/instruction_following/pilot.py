"""The pilot gate of the instruction-following redesign (issue 25): can training move SmolLM2 at all?

Before any comparison of methods (docs/fairness.md, rule 8), one DPO run on the `single_constraint` data must raise the
held-out in-distribution reward clearly above the SFT model's. The gate, declared here before the run:

- DPO (TRL's DPOTrainer through the recipe, `recipes/smollm2/dpo.yaml`), one seed, `STEPS` optimizer steps of
  `BATCH` pairs at a constant learning rate, from the SFT model (also mu).
- The SFT model and the trained model are scored on the data's held-out prompts (300 with the design's defaults),
  greedy, on the CTranslate2 engine, at the data's length cap: the in-distribution reward (lm-eval's strict checker),
  with the degenerate fraction and the mean length beside it.
- **Pass** when the trained model's reward exceeds the SFT model's by at least `MIN_GAIN` and its degenerate fraction
  is not higher. Otherwise the learning rate changes once, as `retry_learning_rate` says (x3 when the model did not
  move enough, /3 when it degenerated), and the gate is tried again; if that fails too, the pilot records
  "cannot move the model" and the benchmark stops there.

    python -m benchmarks.instruction_following.pilot --commit   # data (if not built), SFT score, DPO, gate; resumable
    python -m benchmarks.instruction_following.pilot --quick --model <tiny model> --data <data> --out <tmp>   # tests

Every stage is kept when it finishes (the data set, each score, each training run) and reused by a rerun;
`pilot.json` is rewritten after each stage (status "partial" until the decision) with the command that resumes, beside
`responses.jsonl` (every scored response) and `data_provenance.json` (the data's follow rates, cuts and label noise).
The data set is built inside the results folder (`data/`, its samples drawn into `data.work/` chunk by chunk): with
`--commit`, every finished chunk and stage is committed, so a fresh clone on another machine resumes where the last
commit left off (the scores and training runs, in `outputs/`, are redone there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


# Before torch is imported: the 2 cores are shared (see benchmarks/ground_truth/run.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from spac_hf.utils import atomic_write_json, atomic_write_text, environment_info, read_json, recorded_path

from benchmarks.instruction_following.methods import REPO_ROOT
from benchmarks.partial import commit


DEFAULT_MODEL = "outputs/smollm2/model"  # recipes/smollm2/convert.py writes it
DEFAULT_OUT = "results/instruction_following/pilot"
DEFAULT_DATA = f"{DEFAULT_OUT}/data"  # committed with the results: the costliest stage survives a lost machine
DEFAULT_WORK = "outputs/instruction_following/pilot"

# The gate, declared before the run. 0.08 on 300 held-out prompts is about 2.7 standard errors of a 0/1 reward near
# 0.4 (issue 25); a model that gains by looping is no gain.
MIN_GAIN = 0.08
STEPS = 100
BATCH = 4
# Pairs per forward pass: a DPO batch of 4 pairs at the longest pairs (about 680 tokens) holds 8 sequences, about 15 GB
# of activations in float32 on this 24 GB machine (measured: 3.7 GB for 2 sequences of 680 tokens); 2 pairs at a time,
# accumulated twice, give the same optimizer step in half the memory.
MICRO_BATCH = 2
LEARNING_RATE = 1e-5  # the recipe's (recipes/smollm2/dpo.yaml), constant
RETRY_FACTOR = 3.0
QUICK_STEPS = 4


def retry_learning_rate(first: dict, learning_rate: float) -> tuple[float, str]:
    """The one retry the gate allows, declared in advance: a model that degenerated took too large steps (learning
    rate / 3); one that did not move enough took too small ones (x 3)."""
    if first["degenerate_fraction"] > first["sft_degenerate_fraction"]:
        return float(
            f"{learning_rate / RETRY_FACTOR:.6g}"
        ), f"more degenerate answers than SFT: learning rate / {RETRY_FACTOR:g}"
    return float(
        f"{learning_rate * RETRY_FACTOR:.6g}"
    ), f"reward gain under {MIN_GAIN}: learning rate x {RETRY_FACTOR:g}"


def gate(sft: dict, trained: dict) -> tuple[bool, str]:
    """(passed, why) for one trained model against the SFT model, from their scores."""
    gain = trained["mean"] - sft["mean"]
    if trained["degenerate_fraction"] > sft["degenerate_fraction"]:
        return False, (
            f"degenerate fraction {trained['degenerate_fraction']:.3f} above SFT's {sft['degenerate_fraction']:.3f}"
        )
    if gain < MIN_GAIN - 1e-9:  # means of 0/1 rewards: 0.48 - 0.40 must count as 0.08
        return False, f"reward gain {gain:+.3f} under {MIN_GAIN}"
    return True, f"reward gain {gain:+.3f} >= {MIN_GAIN}, degenerate fraction not higher"


# ---------------------------------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------------------------------


def held_out_rows(data_dir: Path, limit: int | None = None) -> list[dict]:
    """The data set's held-out prompts as task rows (prompt, instruction_id_list, kwargs) with their ids."""
    from spac_hf.tasks.instruction_following import row_from_messages

    rows = []
    for line in (data_dir / "test.jsonl").read_text().splitlines():
        test = json.loads(line)
        rows.append({"id": test["id"], **row_from_messages(test["prompt"], test["constraints"])})
    return rows[:limit]


def score(model_path: str | Path, rows: list[dict], record: Path, *, max_new_tokens: int, batch_size: int) -> dict:
    """The greedy in-distribution score of the model at `model_path` on `rows` (`mean_task_reward` on the CTranslate2
    engine), kept in `record` with every response; a record with the same settings is read back."""
    from transformers import AutoTokenizer

    from spac_hf.tasks.instruction_following import mean_task_reward

    settings = {
        "model": recorded_path(model_path, REPO_ROOT),
        "prompts": [r["id"] for r in rows],
        "max_new_tokens": max_new_tokens,
        "backend": "ctranslate2",
        "decoding": "greedy",
    }
    done = read_json(record)
    if done is not None and done["settings"] == settings:
        return done
    result = mean_task_reward(
        str(model_path),
        AutoTokenizer.from_pretrained(model_path),
        rows,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        backend="ctranslate2",
        engine_cache_dir=str(record.with_suffix(".ctranslate2")),
    )
    result = {"settings": settings, **result}
    atomic_write_json(record, result)
    return result


def train(data_dir: Path, work_dir: Path, model: str, learning_rate: float, steps: int, max_length: int, quick: bool):
    """One DPO run (or its finished record) through the recipe: one pass, `steps` optimizer steps of `BATCH` pairs."""
    from benchmarks.ground_truth.runs import run_dir, run_method
    from benchmarks.instruction_following.methods import methods

    method = methods(1)["dpo"]  # the number of pairs only sets the theory preset's lambda
    # The loop's own evaluation (transformers' `generate`) is cut to one short prompt: the gate scores on the engine.
    overrides = [
        "--model_name_or_path",
        str(Path(model).resolve()),
        "--dataset_name",
        str(data_dir),
        "--learning_rate",
        str(learning_rate),
        "--lr_scheduler_type",
        "constant",
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(MICRO_BATCH),
        "--gradient_accumulation_steps",
        str(BATCH // MICRO_BATCH),
        "--max_length",
        str(max_length),
        "--true_reward_prompts",
        "1",
        "--true_reward_max_new_tokens",
        "8",
        "--save_steps",
        str(max(1, steps // 4)),
        "--logging_steps",
        "1" if quick else "5",
    ]
    folder = work_dir / f"lr_{learning_rate:g}"
    record, _ = run_method(method, 0, folder, overrides)
    return record, run_dir(folder, method, 0) / f"iter_{record['iterations'][-1]['iteration']}"


def summary(result: dict) -> dict:
    keys = ("mean", "stderr", "prompt_level_strict", "mean_length_tokens", "truncated_fraction", "degenerate_fraction")
    return {key: result[key] for key in keys} | {"n_prompts": result["n_prompts"]}


def paired_gain(sft: dict, trained: dict) -> dict:
    """The gain over the SFT model prompt by prompt: mean and standard error of the per-prompt differences."""
    from spac_hf.tasks.reviews import mean_and_stderr

    mean, stderr = mean_and_stderr([b - a for a, b in zip(sft["per_prompt"], trained["per_prompt"])])
    return {"mean": mean, "stderr": stderr}


# ---------------------------------------------------------------------------------------------------------------------
# The pilot
# ---------------------------------------------------------------------------------------------------------------------


def decided_sampling(out: Path) -> dict:
    """mu's temperature and top-p as the sampling probe decided them (`probe.py`, `sampling_probe.json` in `out`);
    refused, before any sampling, while the probe has not decided or when it found no setting that lets mu finish."""
    record = read_json(Path(out) / "sampling_probe.json")
    if record is None or record["status"] != "finished":
        raise ValueError(
            f"mu's sampling is not decided yet ({out}/sampling_probe.json): run "
            "`python -m benchmarks.instruction_following.probe --commit` first."
        )
    if record["chosen"] is None:
        raise ValueError(f"The sampling probe decided: {record['decision']} ({out}/sampling_probe.json).")
    return record["chosen"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the SFT model, also mu (default: %(default)s)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"the data set (default: {DEFAULT_DATA}, built when "
        "missing with the single_constraint design's defaults)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help=f"runs and scores (default: {DEFAULT_WORK})")
    parser.add_argument("--out", type=Path, default=None, help=f"pilot.json's folder (default: {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="generation batch when scoring")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps, 8 new tokens: for the tests")
    parser.add_argument(
        "--commit", action="store_true", help="git-commit --out after every data chunk and every stage (PARTIAL)"
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.data = (args.data or REPO_ROOT / DEFAULT_DATA).resolve()
    args.work_dir = (args.work_dir or REPO_ROOT / DEFAULT_WORK).resolve()
    args.out = args.out or REPO_ROOT / DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> dict:
    from spac_hf.scripts.console import quiet_libraries
    from spac_hf.utils import torch_threads

    from benchmarks.instruction_following import single_constraint

    args = parse_args(argv)
    quiet_libraries()
    started = time.perf_counter()
    command = " ".join(["python", "-m", "benchmarks.instruction_following.pilot", *args.argv])
    steps = QUICK_STEPS if args.quick else STEPS
    # Compute per stage, read from each stage's own record: a rerun that reuses a stage reports what it cost then.
    seconds: dict[str, float] = {}

    def stage(text: str) -> None:
        print(f"\n[pilot {int(time.perf_counter() - started) // 60}m] {text}", flush=True)

    def checkpoint(what: str) -> None:
        if args.commit:
            commit([args.out], f"Instruction-following pilot (PARTIAL): {what}. Resume: {command}")

    with torch_threads(args.threads):
        if not (args.data / "provenance.json").exists():
            if args.quick:
                raise ValueError(f"--quick needs a built data set: {args.data} has no provenance.json.")
            sampling = decided_sampling(args.out)
            stage(f"data: building {args.data} (single_constraint design, {sampling}, resumable)")
            single_constraint.build_single_constraint_data(
                args.model, args.data, threads=args.threads, on_chunk=checkpoint, **sampling
            )
            # The chunks are in the data set now (samples.jsonl, estimation_samples.jsonl): the copy is not committed.
            if args.commit:
                shutil.rmtree(args.data.parent / f"{args.data.name}.work")
            checkpoint("data set built")
        provenance = read_json(args.data / "provenance.json")
        for name, record in (
            ("data_estimation", provenance.get("estimation", {}).get("sampling")),
            ("data_sampling", provenance.get("mu_sampling")),
        ):
            if record:
                seconds[name] = record["seconds"]
        data_settings = provenance["settings"]
        max_new_tokens = 8 if args.quick else data_settings["max_new_tokens"]
        # Every pair fits whole: the longest prompt, the cap, and the chat template's end of turn.
        max_length = 512 if args.quick else data_settings["max_prompt_tokens"] + data_settings["max_new_tokens"] + 8
        rows = held_out_rows(args.data)
        scores_dir = args.work_dir / "scores"
        results = {
            "benchmark": "instruction_following/pilot",
            "status": "partial",
            "command": command,
            "resume_command": command + "   (reuses every finished stage)",
            "gate": {
                "min_reward_gain": MIN_GAIN,
                "degenerate_fraction": "not higher than the SFT model's",
                "retry": f"once: learning rate x {RETRY_FACTOR:g} if the gain fell short, / {RETRY_FACTOR:g} if the "
                "degenerate fraction rose; if the retry fails too: cannot move the model",
            },
            "settings": {
                "method": "dpo (recipes/smollm2/dpo.yaml, one pass)",
                "base_model": recorded_path(args.model, REPO_ROOT),
                "data": recorded_path(args.data, REPO_ROOT),
                "data_settings": data_settings,
                "data_counts": provenance["counts"],
                "label_noise": provenance.get("label_noise"),
                "optimizer_steps": steps,
                "batch_size": BATCH,
                "micro_batch_size": MICRO_BATCH,
                "pairs_seen": steps * BATCH,
                "lr_scheduler_type": "constant",
                "max_length": max_length,
                "seed": 0,
                "scoring": {
                    "prompts": len(rows),
                    "max_new_tokens": max_new_tokens,
                    "decoding": "greedy",
                    "backend": "ctranslate2 (float32)",
                    "reward": "lm-eval strict checker",
                },
                "threads": args.threads,
            },
            "sft": None,
            "attempts": [],
            "decision": None,
            "environment": environment_info(),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        # The data's record beside the gate (the data set itself stays in outputs/): follow rates, cuts, label noise.
        atomic_write_json(args.out / "data_provenance.json", provenance)

        def save(responses: dict[str, list[str]]) -> None:
            results["compute_seconds"] = seconds
            atomic_write_json(args.out / "pilot.json", results)
            lines = [
                {
                    "id": r["id"],
                    "prompt": r["prompt"],
                    "instruction_id_list": r["instruction_id_list"],
                    "kwargs": r["kwargs"],
                    **{name: texts[i] for name, texts in responses.items()},
                }
                for i, r in enumerate(rows)
            ]
            atomic_write_text(args.out / "responses.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
            if results["status"] == "partial":
                checkpoint(f"{', '.join(responses)} scored")
            elif args.commit:
                commit([args.out], f"Instruction-following pilot: {results['decision']}")

        stage(f"scoring the SFT model on {len(rows)} held-out prompts (greedy, at most {max_new_tokens} new tokens)")
        sft = score(
            args.model, rows, scores_dir / "sft.json", max_new_tokens=max_new_tokens, batch_size=args.batch_size
        )
        seconds["score_sft"] = round(sft["seconds"], 1)
        results["sft"] = summary(sft)
        responses = {"sft": sft["responses"]}
        print(
            f"SFT: reward {sft['mean']:.3f} ± {sft['stderr']:.3f}, degenerate {sft['degenerate_fraction']:.3f}, "
            f"mean length {sft['mean_length_tokens']:.0f} tokens",
            flush=True,
        )
        save(responses)

        learning_rate = LEARNING_RATE
        for attempt in (1, 2):
            stage(f"attempt {attempt}: DPO, {steps} steps of {BATCH} pairs at learning rate {learning_rate:g}")
            record, final = train(args.data, args.work_dir, args.model, learning_rate, steps, max_length, args.quick)
            seconds[f"train_{attempt}"] = record["wall_seconds"]
            stage(f"attempt {attempt}: scoring the trained model")
            trained = score(
                final,
                rows,
                scores_dir / f"attempt_{attempt}.json",
                max_new_tokens=max_new_tokens,
                batch_size=args.batch_size,
            )
            seconds[f"score_{attempt}"] = round(trained["seconds"], 1)
            passed, why = gate(sft, trained)
            last = record["iterations"][-1]
            entry = {
                "attempt": attempt,
                "learning_rate": learning_rate,
                "optimizer_steps": last["optimizer_steps"],
                "train_loss": last["train_loss"],
                "model": recorded_path(final, REPO_ROOT),
                "score": summary(trained),
                "gain": paired_gain(sft, trained),
                "answers_changed": sum(a != b for a, b in zip(sft["responses"], trained["responses"])),
                "passed": passed,
                "why": why,
            }
            results["attempts"].append(entry)
            responses[f"attempt_{attempt}"] = trained["responses"]
            print(
                f"attempt {attempt}: reward {trained['mean']:.3f} (gain {entry['gain']['mean']:+.3f} ± "
                f"{entry['gain']['stderr']:.3f}), degenerate {trained['degenerate_fraction']:.3f}, "
                f"{entry['answers_changed']}/{len(rows)} answers changed: {'PASS' if passed else 'fail'} ({why})",
                flush=True,
            )
            if passed:
                results["status"], results["decision"] = "pass", f"pass at learning rate {learning_rate:g}: {why}"
                break
            if attempt == 1:
                learning_rate, reason = retry_learning_rate(
                    {**summary(trained), "sft_degenerate_fraction": sft["degenerate_fraction"]}, learning_rate
                )
                entry["retry"] = reason
            else:
                results["status"] = "cannot move the model"
                results["decision"] = (
                    f"cannot move the model: both attempts failed the gate ({results['attempts'][0]['why']}; {why}); "
                    "the benchmark stops here"
                )
            save(responses)
        save(responses)
    stage(f"decision: {results['decision']}; wrote pilot.json, responses.jsonl and data_provenance.json in {args.out}")
    return results


if __name__ == "__main__":
    main()
