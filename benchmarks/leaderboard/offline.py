"""One local model on a chosen subset of the offline suite's tasks (real data, no Hub), from Python.

    from benchmarks.leaderboard.offline import evaluate_offline
    output = evaluate_offline("outputs/smollm2/spac/iter_3", tasks=["leaderboard_ifeval"], max_gen_toks=256)
    output["results"]["leaderboard_ifeval"]["prompt_level_strict_acc,none"]

The same scoring path as `run.py --suite offline-v2` (the same task folder, the same `evaluate_model`), for callers
that score one model at a time, such as the instruction-following benchmark scoring each iterate on IFEval.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from spac_hf.utils import environment_info, recorded_path

from benchmarks.eval_data.tasks import provenance
from benchmarks.leaderboard.run import default_lm_model, evaluate_model, task_samples
from benchmarks.leaderboard.suites import OFFLINE_V2, task_manager


def offline_task_names() -> list[str]:
    """Every task and group name of the offline suite that `evaluate_offline` accepts."""
    manager = task_manager(OFFLINE_V2)
    return sorted(set(manager.all_tasks))


def _uses_chat_template(model: str) -> bool:
    config = Path(model) / "tokenizer_config.json"
    has_template = (Path(model) / "chat_template.jinja").is_file()
    if config.is_file():
        has_template = has_template or bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    return has_template


def evaluate_offline(
    model: str,
    tasks: list[str] | tuple[str, ...] = ("leaderboard_ifeval",),
    *,
    max_gen_toks: int | None = None,
    task_limit: dict[str, int] | None = None,
    apply_chat_template: bool | None = None,
    batch_size: int | str = 8,
    dtype: str = "auto",
    max_length: int | None = None,
    cache: str | Path | None = None,
    lm_model: str | None = None,
) -> dict:
    """lm-eval's output for `model` (a local folder) on `tasks` of the offline suite, with a `spac_hf` record.

    `tasks`: names of the suite's tasks or groups (`leaderboard_ifeval`, `bbh_bigbench`, `bbh_bigbench_snarks`,
    `hhh_alignment`, `hhh_alignment_honest`, `offline_v2`; `offline_task_names()` lists them all).
    `max_gen_toks`: cap on generated tokens (IFEval's own is 1280); recorded. `task_limit`: {fnmatch pattern: N},
    at most N examples of each matching task, a fixed seeded subset (as `run.py --task-limit`).
    `apply_chat_template`: None = when the model's tokenizer has a chat template (as the leaderboard does for chat
    models). `cache`: lm-eval's request cache file prefix, so that an interrupted evaluation resumes. `lm_model`:
    lm-eval's model, `spac-ct2` (the CTranslate2 engine, float32) or `hf`; default `spac-ct2` on CPU, `hf` on a GPU.
    """
    lm_model = lm_model or default_lm_model()
    if not (Path(model) / "config.json").is_file():
        raise ValueError(f"evaluate_offline: {model} is not a saved model folder (no config.json)")
    manager = task_manager(OFFLINE_V2)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"evaluate_offline: unknown task(s) {unknown}; the offline suite has "
            f"{', '.join(sorted(manager.all_groups))} and their tasks"
        )
    if apply_chat_template is None:
        apply_chat_template = _uses_chat_template(model)
    samples = {}
    for name in tasks:
        if task_limit:
            samples.update(task_samples(manager, name, task_limit, allow_unused=True))
    started = time.time()
    output = evaluate_model(
        model,
        list(tasks),
        manager,
        dtype=dtype,
        batch_size=batch_size,
        samples=samples or None,
        apply_chat_template=apply_chat_template,
        max_gen_toks=max_gen_toks,
        max_length=max_length,
        use_cache=str(cache) if cache else None,
        lm_model=lm_model,
    )
    if output is not None:
        output["spac_hf"] = {
            "model": recorded_path(model),
            "suite": OFFLINE_V2.name,
            "tasks": list(tasks),
            "max_gen_toks": max_gen_toks,
            "task_limit": task_limit,
            "apply_chat_template": apply_chat_template,
            "dtype": dtype,
            "max_length": max_length,
            "lm_model": lm_model,
            "seconds": round(time.time() - started, 1),
            "environment": environment_info(),
            "data_sources": provenance(),
        }
    return output
