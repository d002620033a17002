"""Open LLM Leaderboard (v1 or v2) with lm-eval on a list of checkpoints, e.g. the iterates of SPAC, SPIN and DPO.

    accelerate launch -m benchmarks.leaderboard.run --suite v1 --out results/leaderboard/<name> \\
        --models base=<path-or-hub-id> spac-iter1=<...> spac-iter2=<...>
    accelerate launch --multi_gpu --num_processes 8 -m benchmarks.leaderboard.run --suite v1 \\
        --runs outputs/zephyr-7b-spac outputs/zephyr-7b-spin --out results/leaderboard/zephyr-7b
    python -m benchmarks.leaderboard.run --suite v1 --tasks-dir tests/fixtures/lm_eval ...   # CPU smoke run

Per model `<out>/<label>.json` (lm-eval's output; a model whose file exists is skipped, so a long benchmark resumes),
then `comparison.csv`, `comparison.md` (change against the model labelled `base`), `plots/<column>.png`,
`environment.json` and `dataset/` (the results in the Hub dataset layout; `--push-to-hub` uploads it).
Under `accelerate launch` lm-eval's HFLM gives each GPU a shard of every task; only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from pathlib import Path

from spac_hf.hub import check_repo_id, push_results_dataset
from spac_hf.utils import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    recorded_path,
)

from benchmarks.leaderboard.models import ModelSpec, check_specs, collect_runs, parse_models
from benchmarks.leaderboard.report import dataset_card, dataset_rows, load_entries, write_report
from benchmarks.leaderboard.suites import SUITES, Suite, task_manager


# A results file is reused only if it was made with these settings; anything else would mix incomparable numbers.
RESUME_KEYS = (
    "model",
    "suite",
    "tasks",
    "tasks_dir",
    "limit",
    "task_limit",
    "dtype",
    "apply_chat_template",
    "max_gen_toks",
    "max_length",
    "lm_model",
)
# lm-eval's model on a CPU machine: the CTranslate2 engine (spac_hf.lm_eval_engine, float32: loglikelihoods equal to
# `hf`'s within float32 rounding, the same greedy answers, several times faster; benchmarks/cost/README.md); on a GPU,
# lm-eval's `hf` model. Results files written before this option existed were made with `hf`.
LM_MODELS = ("hf", "spac-ct2")
SAMPLE_SEED = 1234  # the seed of --task-limit's subsets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="LABEL=MODEL",
        help="label=local folder or Hub id; label 'base' is the reference, '<series>-iter<t>' a point",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="DIR",
        help="output_dir of run_self_play: its base model and every finished iter_<t>",
    )
    parser.add_argument("--suite", choices=sorted(SUITES), default="v1", help="leaderboard version")
    parser.add_argument("--out", type=Path, required=True, help="results folder, e.g. results/leaderboard/<name>")
    parser.add_argument(
        "--tasks-dir",
        type=Path,
        help="folder with another definition of the suite's group "
        "(e.g. tests/fixtures/lm_eval: the same tasks on local fixture data)",
    )
    parser.add_argument("--limit", type=_limit, help="at most N examples per task (or a fraction < 1): for smoke runs")
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="NAME",
        help="only these tasks or groups of the suite (e.g. "
        "leaderboard_ifeval hhh_alignment); default: the whole suite",
    )
    parser.add_argument(
        "--task-limit",
        nargs="+",
        default=[],
        metavar="PATTERN=N",
        help="at most N examples of each task whose name matches PATTERN (fnmatch), a fixed seeded "
        "subset: e.g. 'bbh_bigbench_*=20' on a CPU; recorded with the results",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="lm-eval's request cache (one SQLite file per model): an "
        "interrupted evaluation resumes from the requests already answered",
    )
    parser.add_argument("--batch-size", default="8", help="per process; an integer or 'auto'")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (the checkpoint's), bfloat16, float16 or float32; with --lm-model spac-ct2: float32 (auto) or int8",
    )
    parser.add_argument(
        "--lm-model",
        choices=LM_MODELS,
        default=None,
        help="lm-eval's model: spac-ct2 (the CTranslate2 engine, float32 or --dtype int8; the default on CPU) or hf "
        "(the default on a GPU)",
    )
    parser.add_argument(
        "--apply-chat-template",
        action="store_true",
        help="format prompts with the tokenizer's chat template (v2 on chat models; v1 did not)",
    )
    parser.add_argument(
        "--max-gen-toks",
        type=int,
        help="cap on generated tokens (GSM8K: 256 by default); only "
        "for models whose context is shorter than the task's default, it changes the scores",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        help="context length lm-eval allows the model (default: the "
        "model's); only for models whose context is shorter than the tasks' examples",
    )
    parser.add_argument("--base", default="base", help="label of the model the changes are computed against")
    parser.add_argument("--push-to-hub", action="store_true", help="upload the results dataset when done")
    parser.add_argument("--hub-dataset-id", help="dataset repo for --push-to-hub, e.g. username/spac-leaderboard")
    args = parser.parse_args(argv)
    try:
        args.specs = check_specs(parse_models(args.models) + collect_runs(args.runs))
        if args.push_to_hub:
            if not args.hub_dataset_id:
                raise ValueError("--push-to-hub needs --hub-dataset-id")
            check_repo_id(args.hub_dataset_id)
        args.task_limit = parse_task_limits(args.task_limit)
        if args.task_limit and args.limit is not None:
            raise ValueError("--limit and --task-limit cannot be combined")
        engine_precision(args.lm_model or default_lm_model(), args.dtype)
        if args.tasks_dir is not None and not args.tasks_dir.is_dir():
            raise ValueError(f"--tasks-dir {args.tasks_dir}: no such folder")
        if args.tasks_dir is not None and args.tasks_dir.resolve() == SUITES[args.suite].tasks_dir:
            args.tasks_dir = None  # the suite's own definition: a real run, not a smoke run
    except ValueError as err:
        parser.error(str(err))
    return args


def _limit(text: str) -> int | float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return int(value) if value >= 1 else value


def parse_task_limits(entries: list[str]) -> dict[str, int]:
    """`PATTERN=N` entries -> {pattern: N}."""
    limits = {}
    for entry in entries:
        pattern, sep, count = entry.rpartition("=")
        if not sep or not pattern or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--task-limit entry {entry!r} must look like PATTERN=N with N >= 1 (bbh_bigbench_*=20)")
        limits[pattern] = int(count)
    return limits


def task_samples(
    manager, group: str, limits: dict[str, int], seed: int = SAMPLE_SEED, allow_unused: bool = False
) -> dict[str, list[int]]:
    """lm-eval's `samples`: for each task of `group` matched by a pattern of `limits`, a seeded subset of its docs."""
    from fnmatch import fnmatch

    from lm_eval.tasks import get_task_dict

    samples = {}
    for name, task in _leaf_tasks(get_task_dict([group], manager)):
        matched = [n for pattern, n in limits.items() if fnmatch(name, pattern)]
        if matched:
            size = len(task.eval_docs)
            count = min(min(matched), size)
            samples[name] = sorted(random.Random(f"{seed}:{name}").sample(range(size), count))
    unused = [p for p in limits if not any(fnmatch(name, p) for name in samples)]
    if unused and not allow_unused:
        raise SystemExit(f"--task-limit: no task of {group} matches {', '.join(unused)}")
    return samples


def _leaf_tasks(task_dict: dict):
    for key, value in task_dict.items():
        if isinstance(value, dict):
            yield from _leaf_tasks(value)
        else:
            yield getattr(key, "task_name", None) or value.config.task, value


def settings_of(args: argparse.Namespace) -> dict:
    return {
        "suite": args.suite,
        "tasks": args.tasks,
        "tasks_dir": str(args.tasks_dir) if args.tasks_dir else None,
        "limit": args.limit,
        "task_limit": args.task_limit or None,
        "dtype": args.dtype,
        "apply_chat_template": args.apply_chat_template,
        "max_gen_toks": args.max_gen_toks,
        "max_length": args.max_length,
        "lm_model": args.lm_model or default_lm_model(),
        "batch_size": args.batch_size,
        "base_label": args.base,
        "hub_dataset_id": args.hub_dataset_id,
    }


def check_resumable(out: Path, specs: list[ModelSpec], settings: dict) -> list[ModelSpec]:
    """The models still to evaluate. A results file made with other settings is an error, not silently reused."""
    todo = []
    for spec in specs:
        path = out / f"{spec.label}.json"
        if not path.exists():
            todo.append(spec)
            continue
        recorded = {"lm_model": "hf", **json.loads(path.read_text(encoding="utf-8")).get("spac_hf", {})}
        wanted = {"model": spec.to_dict()["model"], **settings}
        changed = {k: (recorded.get(k), wanted[k]) for k in RESUME_KEYS if recorded.get(k) != wanted[k]}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise SystemExit(f"{path} was made with other settings ({details}). Use another --out or delete it.")
    return todo


def evaluate(spec: ModelSpec, suite: Suite, args: argparse.Namespace, manager) -> dict | None:
    """lm-eval on one model; its output on rank 0, None on the other ranks. `args.samples`: --task-limit's subsets."""
    cache = str(args.cache_dir / spec.label) if args.cache_dir else None
    if cache:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
    return evaluate_model(
        spec.model,
        args.tasks or [suite.group],
        manager,
        dtype=args.dtype,
        batch_size=args.batch_size,
        limit=args.limit,
        samples=getattr(args, "samples", None),
        apply_chat_template=args.apply_chat_template,
        max_gen_toks=args.max_gen_toks,
        max_length=args.max_length,
        use_cache=cache,
        lm_model=args.lm_model or default_lm_model(),
    )


def engine_precision(lm_model: str, dtype: str) -> str | None:
    """spac-ct2's precision for `--dtype` (None for hf); a combination the model cannot run is refused, named."""
    if lm_model == "hf":
        if dtype == "int8":
            raise ValueError("--dtype int8 needs --lm-model spac-ct2 (lm-eval's hf model loads float types only).")
        return None
    if dtype not in ("auto", "float32", "int8"):
        raise ValueError(f"--lm-model spac-ct2 evaluates in float32 or int8; got --dtype {dtype} (use --lm-model hf).")
    return "int8" if dtype == "int8" else "float32"


def default_lm_model() -> str:
    import torch

    return "hf" if torch.cuda.is_available() else "spac-ct2"


def evaluate_model(
    model: str,
    tasks: list[str],
    manager,
    *,
    dtype: str = "auto",
    batch_size: str | int = "8",
    limit=None,
    samples=None,
    apply_chat_template: bool = False,
    max_gen_toks: int | None = None,
    max_length: int | None = None,
    use_cache: str | None = None,
    lm_model: str = "hf",
) -> dict | None:
    """lm-eval's `simple_evaluate` of one local model or Hub id on `tasks` of `manager` (rank 0 gets the output).

    `lm_model`: lm-eval's `hf` model, or `spac-ct2` (a local folder converted once for CTranslate2, float32 or, with
    `dtype="int8"`, int8 weights).
    """
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model

    if lm_model not in LM_MODELS:
        raise ValueError(f"--lm-model must be one of {LM_MODELS}, got {lm_model!r}.")
    model_args = {"pretrained": model, "dtype": dtype, **({"max_length": max_length} if max_length else {})}
    batch_size = str(batch_size)
    batch_size = int(batch_size) if batch_size.isdigit() else batch_size
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if lm_model == "spac-ct2":
        import spac_hf.lm_eval_engine  # noqa: F401 (registers spac-ct2)

        model_args = {
            "pretrained": model,
            "precision": engine_precision(lm_model, dtype),
            **({"max_length": max_length} if max_length else {}),
        }
        lm = get_model(lm_model).create_from_arg_obj(model_args, {"batch_size": batch_size})
    else:
        engine_precision(lm_model, dtype)  # refuses int8
        # Built as simple_evaluate(model="hf") would build it, so that the checkpoint's generation defaults can be
        # cleared: lm-eval bounds generation with `max_length`, but a `max_new_tokens` saved in the model's
        # generation_config.json takes precedence in transformers and would silently cut GSM8K's answers short.
        lm = get_model("hf").create_from_arg_obj(model_args, {"batch_size": batch_size, "device": device})
        generation_config = getattr(lm.model, "generation_config", None)
        if generation_config is not None and generation_config.max_new_tokens is not None:
            generation_config.max_new_tokens = None
    output = simple_evaluate(
        model=lm,
        model_args=model_args,  # recorded in the output's config
        tasks=tasks,
        task_manager=manager,
        batch_size=batch_size,
        device=device,
        limit=limit,
        samples=samples or None,
        log_samples=False,
        apply_chat_template=apply_chat_template,
        gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
        use_cache=use_cache,
    )
    del lm
    gc.collect()  # free this model's memory before the next one loads
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return output


def main(argv: list[str] | None = None) -> list[dict] | None:
    started = time.time()
    args = parse_args(argv)
    suite, settings = SUITES[args.suite], settings_of(args)
    # Rank and world size from the launcher's environment (accelerate launch / torchrun set them). Reading them does
    # not start the process group: lm-eval's HFLM does that with its own long timeout for rank 0's metric pass.
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    main_process = rank == 0
    say = print if main_process else (lambda *a, **k: None)

    manager = task_manager(suite, args.tasks_dir)
    if suite.group not in manager.all_groups:
        searched = [str(p) for p in suite.task_paths(args.tasks_dir)]
        raise SystemExit(f"Group {suite.group!r} of suite {suite.name} is defined in none of {searched}")
    todo = check_resumable(args.out, args.specs, settings)
    if args.tasks:
        unknown = [t for t in args.tasks if t not in manager.all_tasks]
        if unknown:
            raise SystemExit(f"--tasks {' '.join(unknown)}: not a task or group of suite {suite.name}")
    args.samples = None
    if args.task_limit and todo:
        args.samples = {}
        for group in args.tasks or [suite.group]:
            args.samples.update(task_samples(manager, group, args.task_limit, allow_unused=bool(args.tasks)))
    if args.base not in {spec.label for spec in args.specs}:
        say(f"No model is labelled {args.base!r}: the comparison will have no changes against a base.")
    if world_size > 1:
        import torch

        if torch.cuda.device_count() < 2:
            say(
                f"{world_size} processes but fewer than 2 GPUs: lm-eval shards tasks across GPUs only, so every "
                "process evaluates everything (rank 0 writes). On CPU, run with plain python."
            )

    say(
        f"Leaderboard {suite.name} ({suite.group}) on {len(args.specs)} models, {len(todo)} to evaluate, "
        f"{world_size} process(es); results in {args.out}"
    )
    seconds = {}
    for index, spec in enumerate(args.specs, start=1):
        path = args.out / f"{spec.label}.json"
        if spec not in todo:
            say(f"[{index}/{len(args.specs)}] {spec.label}: {path} exists, skipped")
            continue
        say(f"[{index}/{len(args.specs)}] {spec.label}: evaluating {spec.model}")
        start = time.time()
        output = evaluate(spec, suite, args, manager)
        seconds[spec.label] = round(time.time() - start, 1)
        if main_process:
            output["spac_hf"] = {
                **spec.to_dict(),
                **settings,
                "seconds": seconds[spec.label],
                "world_size": world_size,
                "environment": environment_info(),
            }
            if suite.make_tasks_dir is not None:  # real data from registry packages: their licences and citations
                from benchmarks.eval_data.tasks import provenance

                output["spac_hf"]["data_sources"] = provenance()
            write_json(path, output)
            say(f"[{index}/{len(args.specs)}] {spec.label}: done in {seconds[spec.label]:.0f} s -> {path}")

    if not main_process:
        return None
    return finish(args, suite, settings, seconds, world_size, started, argv)


def finish(args, suite: Suite, settings: dict, seconds: dict, world_size: int, started: float, argv) -> list[dict]:
    """Rank 0, once every model has its JSON: the comparison, plots, dataset, environment record and the push."""
    entries = load_entries(args.out, args.specs)
    rows = write_report(args.out, suite, entries, settings)
    record = {
        "arguments": sys.argv[1:] if argv is None else list(argv),
        "settings": settings,
        "models": [spec.to_dict() for spec in args.specs],
        "evaluated_seconds": seconds,
        "world_size": world_size,
        "total_seconds": round(time.time() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": environment_info(),
    }
    atomic_write_json(args.out / "environment.json", record)
    print(f"Wrote {args.out}/comparison.md, comparison.csv, plots/, dataset/, environment.json")
    if args.push_to_hub:
        base = next((s.model for s in args.specs if s.label == args.base), None)
        url = push_results_dataset(
            dataset_rows(entries, suite, base),
            args.hub_dataset_id,
            local_dir=args.out / "dataset",
            **dataset_card(suite, args.out, settings),
        )
        print(f"Pushed the results dataset: {url}")
    return rows


def write_json(path: Path, output: dict) -> None:
    """lm-eval's output as JSON, atomically (numpy numbers become numbers, functions in the configs their names, and
    each task's `config_source`, a YAML in the cache root for the generated tasks, a recorded path)."""
    from lm_eval.utils import handle_non_serializable

    for config in output.get("configs", {}).values():
        metadata = config.get("metadata") if isinstance(config, dict) else None
        if isinstance(metadata, dict) and isinstance(metadata.get("config_source"), str):
            metadata["config_source"] = recorded_path(metadata["config_source"])
    atomic_write_text(path, json.dumps(output, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
