"""Where the Space reads from and the limits it enforces: one place, filled from the command line and the environment.

Environment variables (all optional):

- `SPAC_RESULTS_DATASET`: a Hub dataset id (`user/name`) holding results rows (`data/*.jsonl`, as written by
  `spac_hf.hub.save_results_dataset`); `SPAC_RESULTS_REVISION` pins a branch, tag or commit of it.
- `SPAC_RESULTS_DIRS`: folders searched for `**/data/results.jsonl` (or holding a protocol benchmark's
  `results.json` table), separated by `os.pathsep` (`:`). Default, in a spac-hf checkout:
  `results/instruction_following/dataset/`, `outputs/default/` (the embedded default's runs),
  `results/ground_truth/` (the multi-seed benchmark) and `results/coverage/` (the neural coverage benchmark, one
  ranking per regime); elsewhere (on a Space): none. The leaderboard's fixture smoke run (`results/leaderboard/`) is
  left out on purpose: its scores come from made-up fixture data.
- `SPAC_MODELS_FILE`: the model allowlist (default: `models.yaml` next to this file).
- `SPAC_MAX_NEW_TOKENS`, `SPAC_MAX_PROMPT_CHARS`, `SPAC_MAX_PROMPT_TOKENS`, `SPAC_GENERATION_CONCURRENCY`,
  `SPAC_QUEUE_SIZE`, `SPAC_MODEL_CACHE_SIZE`: the limits below.
- `SPAC_REWARD_TASK`: the task whose true reward is shown beside each answer (default `reviews`, the embedded
  default's; `none` hides it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


SPACE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SPACE_DIR.parent
DEFAULT_MODELS_FILE = SPACE_DIR / "models.yaml"


def in_checkout(root: Path = REPO_ROOT) -> bool:
    """True when the Space runs from a spac-hf checkout (local use), False when its folder stands alone (a Space)."""
    return (root / "src" / "spac_hf").is_dir() and (root / "recipes").is_dir()


def _reward_task(value: str | None) -> str | None:
    return None if value in (None, "", "none") else value


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Settings:
    results_dataset: str | None = None
    results_revision: str | None = None
    results_dirs: tuple[Path, ...] = ()
    models_file: Path = DEFAULT_MODELS_FILE
    # Root under which `outputs/*/*/iter_*` and `src/spac_hf/default/model` are discovered; None turns discovery off.
    discover_root: Path | None = None
    # Prompts are free text from anyone: cap them before they reach a tokenizer, and again in tokens (what costs).
    max_prompt_chars: int = 500
    max_prompt_tokens: int = 128
    max_new_tokens: int = 96
    default_new_tokens: int = 48  # the default task's responses were trained and scored at 48 new tokens
    # One generation at a time: a request runs two models at once and a free Space has 2 CPU cores.
    generation_concurrency: int = 1
    queue_size: int = 20  # waiting requests beyond this are turned away rather than queued for minutes
    model_cache_size: int = 4  # loaded models kept in memory (least recently used goes first)
    example_prompts: tuple[str, ...] = field(default_factory=tuple)
    # The task whose true reward (a program) is shown beside each answer; "none" turns it off.
    reward_task: str | None = "reviews"

    @classmethod
    def from_env(
        cls,
        results_dirs: list[str] | None = None,
        models_file: str | None = None,
        root: Path = REPO_ROOT,
    ) -> Settings:
        """Settings for a run: explicit arguments first, then environment variables, then checkout-aware defaults."""
        local = in_checkout(root)
        if results_dirs is None:
            env_dirs = os.environ.get("SPAC_RESULTS_DIRS")
            if env_dirs:
                results_dirs = [d for d in env_dirs.split(os.pathsep) if d]
            else:
                # The real task first (SmolLM2 on instruction following), then the review task's runs and benchmark.
                defaults = [
                    root / "results" / "instruction_following" / "dataset",
                    root / "outputs" / "default",
                    root / "results" / "ground_truth",
                    root / "results" / "coverage",
                ]
                results_dirs = [str(d) for d in defaults] if local else []
        return cls(
            results_dataset=os.environ.get("SPAC_RESULTS_DATASET") or None,
            results_revision=os.environ.get("SPAC_RESULTS_REVISION") or None,
            results_dirs=tuple(Path(d) for d in results_dirs),
            models_file=Path(models_file or os.environ.get("SPAC_MODELS_FILE") or DEFAULT_MODELS_FILE),
            discover_root=root if local else None,
            max_prompt_chars=_int_env("SPAC_MAX_PROMPT_CHARS", cls.max_prompt_chars),
            max_prompt_tokens=_int_env("SPAC_MAX_PROMPT_TOKENS", cls.max_prompt_tokens),
            max_new_tokens=_int_env("SPAC_MAX_NEW_TOKENS", cls.max_new_tokens),
            generation_concurrency=_int_env("SPAC_GENERATION_CONCURRENCY", cls.generation_concurrency),
            queue_size=_int_env("SPAC_QUEUE_SIZE", cls.queue_size),
            model_cache_size=_int_env("SPAC_MODEL_CACHE_SIZE", cls.model_cache_size),
            example_prompts=tuple(example_prompts(root if local else None)),
            reward_task=_reward_task(os.environ.get("SPAC_REWARD_TASK", cls.reward_task)),
        )


FALLBACK_PROMPTS = (
    "Review of the blue camera:",
    "Customer review of the red kettle:",
    "Short review of the green backpack:",
    "My review of the silver watch:",
)


def example_prompts(root: Path | None, count: int = 4) -> list[str]:
    """A few held-out prompts of the default task when they are there, else prompts of the same form."""
    import json

    test_file = root / "src" / "spac_hf" / "default" / "data" / "test.jsonl" if root else None
    if test_file is not None and test_file.is_file():
        prompts = []
        with test_file.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    prompt = json.loads(line).get("prompt")
                    if isinstance(prompt, str) and prompt not in prompts:
                        prompts.append(prompt)
                if len(prompts) == count:
                    break
        if prompts:
            return prompts
    return list(FALLBACK_PROMPTS[:count])
