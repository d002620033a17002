"""Where each ranking's rows come from and with which settings, for the page.

A results file `<folder>/data/results.jsonl` belongs to the results folder `<folder>`; when its parent holds a
benchmark's `results.json` (`results/ground_truth/dataset/` in `results/ground_truth/`), that benchmark's command and
per-method settings are shown. In a checkout, each method's settings are compared with the recipe YAML its run started
from (`--config recipes/default/spac.yaml`) as that file is today: an option the run did not set on its command line
but whose value the YAML has since changed is named, so a reader knows the ranking is not what today's default
gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from settings import REPO_ROOT

from spac_hf.utils import recorded_path


BENCHMARK_FILE = "results.json"
# Recorded beside the settings but not settings: where things are (a folder moved is the same model and data).
NOT_SETTINGS = {"recipe_args", "model_name_or_path", "dataset_name", "output_dir"}
# Where a recipe YAML that results record lives now (the embedded default's YAMLs moved into the package).
MOVED_YAMLS = {"recipes/default/": "src/spac_hf/default/"}


def todays_yaml(config: str, root: Path = REPO_ROOT) -> Path | None:
    """The recipe YAML a run recorded (`--config recipes/default/spac.yaml`), where it is in the checkout today."""
    candidates = [config] + [config.replace(old, new, 1) for old, new in MOVED_YAMLS.items() if config.startswith(old)]
    return next((root / c for c in candidates if (root / c).is_file()), None)


def results_folder(results_file: Path) -> Path:
    """`<folder>/data/results.jsonl` -> `<folder>`."""
    return results_file.parent.parent


def shown_path(folder: Path | str) -> str:
    """A folder as the page shows it: relative to the checkout when it is inside it (never the machine's path)."""
    return recorded_path(Path(folder).resolve(), REPO_ROOT)


def _benchmark_record(folder: Path) -> dict | None:
    for candidate in (folder / BENCHMARK_FILE, folder.parent / BENCHMARK_FILE):
        if candidate.is_file():
            try:
                record = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return record if isinstance(record, dict) and "settings" in record else None
    return None


def _config_of(recipe_args: list[str]) -> str | None:
    return next((recipe_args[i + 1] for i, a in enumerate(recipe_args[:-1]) if a == "--config"), None)


def changed_defaults(per_method: dict, root: Path = REPO_ROOT) -> list[str]:
    """`option value (today's <yaml>: value)` for every option a run took from its recipe YAML whose value that YAML
    no longer has. Empty outside a checkout (the YAMLs are not there)."""
    import yaml

    changes: dict[tuple[str, str, str], list[str]] = {}
    for settings in per_method.values():
        recipe_args = [str(a) for a in settings.get("recipe_args", [])]
        config = _config_of(recipe_args)
        path = todays_yaml(config, root) if config else None
        if path is None:
            continue
        today = yaml.safe_load(path.read_text()) or {}
        config = shown_path(path) if root == REPO_ROOT else str(path.relative_to(root))
        explicit = {a[2:].split("=", 1)[0] for a in recipe_args if a.startswith("--")}
        for option, value in settings.items():
            if option in explicit or option not in today or option in NOT_SETTINGS:
                continue
            if today[option] != value and not _same_number(today[option], value):
                files = changes.setdefault((option, str(value), str(today[option])), [])
                files += [config] if config not in files else []
    return [f"{option} {then} (today's {', '.join(files)}: {now})" for (option, then, now), files in changes.items()]


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def describe(folder: Path | str, root: Path = REPO_ROOT) -> str:
    """One line on a results folder: where it is, what made it, and whether its settings are today's default."""
    folder = Path(folder)
    line = f"`{shown_path(folder)}`"
    record = _benchmark_record(folder)
    if record is None:
        return line + ": runs of the recipes (each run's `self_play_run.json` holds its settings)."
    settings = record["settings"]
    seeds = settings.get("seeds") or settings.get("test_seeds")
    line += f", made by `{record.get('command', '?')}`" + (f" over seeds {seeds}" if seeds else "")
    if record.get("partial"):
        # A benchmark still running (or stopped): its rankings hold the seeds finished so far.
        line += " (**PARTIAL**: not every run has finished; each ranking says its number of seeds)"
    changes = changed_defaults(settings.get("per_method", {}), root)
    if changes:
        line += ". **Not today's default settings**: " + "; ".join(changes) + "."
    elif "per_method" in settings and (root / "recipes").is_dir():
        line += ", with the settings of today's recipe YAMLs."
    else:
        line += "."
    return line


def provenance(sources: Iterable[str], root: Path = REPO_ROOT) -> str:
    """The page's note on where a ranking's rows come from: one line per results folder or Hub dataset."""
    lines = [
        describe(s, root) if not s.startswith("hub:") else f"Hub dataset `{s[4:]}`." for s in sorted(set(sources))
    ]
    return "Results from " + " ".join(lines) if lines else ""
