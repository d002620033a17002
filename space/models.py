"""The model allowlist: which models the side-by-side tab may load, by label.

A browser (or any client) only ever sends a label; the server looks it up here and loads nothing else, so no request
can make the Space read an arbitrary repo or path. The list is fixed at startup from:

1. `models.yaml` (or `SPAC_MODELS_FILE`): `label: {path: ...}` for a local folder (relative to that file) or
   `label: {repo: user/name, revision: ...}` for a Hub model, plus an optional `chat: true|false`;
2. when running from a spac-hf checkout, every saved iterate `outputs/<run>/<method>/iter_<t>/` (a folder with an
   `iterate.json`, as `spac_hf.run.loop` writes it), labelled `<run>: <METHOD> iter <t>`.

Local folders that do not exist are skipped, so one file can name both the shipped model of a checkout and Hub repos.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from results import METHOD_ORDER, METHODS


logger = logging.getLogger(__name__)

ENTRY_KEYS = {"path", "repo", "revision", "chat"}
ITERATE_FILE = "iterate.json"  # spac_hf.run.folder.ITERATE_FILE


@dataclass(frozen=True)
class ModelEntry:
    label: str
    source: str  # an absolute local folder or a Hub repo id
    revision: str | None = None
    chat: bool | None = None  # None: use the chat template when the tokenizer has one
    method: str | None = None
    iteration: int | str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_absolute()


def _entry_from_config(label: str, spec: object, base: Path) -> ModelEntry | None:
    if not isinstance(spec, dict) or set(spec) - ENTRY_KEYS or ("path" in spec) == ("repo" in spec):
        raise ValueError(f"models file: {label!r} needs exactly one of `path` or `repo` (keys: {sorted(ENTRY_KEYS)})")
    chat = spec.get("chat")
    if chat is not None and not isinstance(chat, bool):
        raise ValueError(f"models file: {label!r}: `chat` must be true or false")
    if "repo" in spec:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(spec["repo"])
        return ModelEntry(label, spec["repo"], revision=spec.get("revision"), chat=chat)
    path = (base / spec["path"]).resolve()
    if not (path / "config.json").is_file():
        logger.info("models file: skipping %r, no model at %s", label, path)
        return None
    return ModelEntry(label, str(path), chat=chat)


def read_models_file(path: Path) -> list[ModelEntry]:
    if not path.is_file():
        logger.warning("No models file at %s", path)
        return []
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    models = config.get("models") or {}
    if not isinstance(models, dict):
        raise ValueError(f"{path}: `models` must map labels to entries")
    entries = [_entry_from_config(str(label), spec, path.parent) for label, spec in models.items()]
    return [entry for entry in entries if entry is not None]


def _iteration_key(entry: ModelEntry) -> tuple:
    run = entry.label.split(":")[0]
    iteration = entry.iteration if isinstance(entry.iteration, int) else float("inf")  # "average" after the last
    return run, METHOD_ORDER.get(entry.method or "", len(METHOD_ORDER)), entry.method or "", iteration


def discover_iterates(root: Path) -> list[ModelEntry]:
    """Saved iterates under `root/outputs/<run>/<method>/iter_<t>` (including `iter_average`)."""
    entries = []
    for folder in (root / "outputs").glob("*/*/iter_*"):
        record_file = folder / ITERATE_FILE
        if not (record_file.is_file() and (folder / "config.json").is_file()):
            continue  # an iteration in progress, or not a model folder
        record = json.loads(record_file.read_text(encoding="utf-8"))
        run, method = folder.parent.parent.name, record.get("method") or folder.parent.name
        iteration = record.get("iteration")
        what = f"iter {iteration}" if isinstance(iteration, int) else str(iteration or folder.name)
        name = METHODS[method][0] if method in METHODS else method.upper()
        label = f"{run}: {name} {what}"
        entries.append(ModelEntry(label, str(folder.resolve()), method=method, iteration=iteration))
    return sorted(entries, key=_iteration_key)


def load_allowlist(models_file: Path, discover_root: Path | None = None) -> dict[str, ModelEntry]:
    """Label -> entry, configured entries first. A discovered iterate already configured (same folder) is not
    repeated."""
    allowlist = {entry.label: entry for entry in read_models_file(models_file)}
    if discover_root is not None:
        known_sources = {entry.source for entry in allowlist.values()}
        for entry in discover_iterates(discover_root):
            if entry.label not in allowlist and entry.source not in known_sources:
                allowlist[entry.label] = entry
    return allowlist


def default_pair(allowlist: dict[str, ModelEntry]) -> tuple[str | None, str | None]:
    """The comparison shown first: the first configured model (the SFT model) against the last SPAC iterate."""
    labels = list(allowlist)
    if not labels:
        return None, None
    spac = [label for label, entry in allowlist.items() if entry.method == "spac" and isinstance(entry.iteration, int)]
    # Prefer the SFT model's own run group ("default: SFT" against "default: SPAC iter 3"), not another model's run.
    same_group = [label for label in spac if label.split(":")[0] == labels[0].split(":")[0]]
    spac = same_group or spac
    right = spac[-1] if spac else (labels[1] if len(labels) > 1 else labels[0])
    return labels[0], right


def has_iterates(allowlist: dict[str, ModelEntry]) -> bool:
    return any(entry.method for entry in allowlist.values())
