"""Damaged files in a run folder: named, and healed where that is safe.

Two kinds of file live in `output_dir`:
- caches that can be computed again (an iteration's generated responses, with the reference log-probs and
  tokenization that `datasets` caches beside them; an evaluation): a damaged one is discarded with a warning naming it,
  and the loop recomputes it;
- results that cannot (a published iterate, the run record): a damaged one stops the run with a message naming the
  file and what to delete, never a traceback from inside `datasets`, `safetensors` or `json`.

What a kill leaves behind besides damaged files (temporaries, checkpoints of a finished iteration) is the run folder's
to remove: `folder.remove_leftovers`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk

from ..utils import describe_error, discard_damaged


class DamagedRunError(RuntimeError):
    """A file that cannot be recomputed is damaged. The message names it and what to delete."""


def load_cached_dataset(path: str | os.PathLike, what: str = "cached data") -> Dataset | None:
    """The data set saved at `path` (`save_to_disk`), or None when it is missing or damaged (then it is deleted).

    The `cache-*.arrow` files that `datasets` writes beside it (the tokenized rows, TRL's reference log-probs) are
    checked too; a damaged one is deleted alone, and `datasets` writes it again on the next `map`.
    """
    path = Path(path)
    if not path.exists():
        return None
    for cache in sorted(path.glob("cache-*.arrow")):
        try:
            Dataset.from_file(str(cache), in_memory=False)
        except Exception as err:  # noqa: BLE001 (whatever pyarrow raises for this file, the cache is recomputed)
            discard_damaged(cache, "the cache file", err)
    try:
        # Arrow files are memory-mapped and read in full here, so a truncated file fails now, not mid-training.
        return load_from_disk(str(path))
    except Exception as err:  # noqa: BLE001 (a recomputable cache: any failure to read it means computing it again)
        discard_damaged(path, what, err)
        return None


def read_json_cache(path: str | os.PathLike, what: str = "the cached result") -> Any | None:
    """The JSON at `path`, or None when it is missing or damaged (then it is deleted, to be computed again)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        discard_damaged(path, what, err)
        return None


def damaged_file(path: Path) -> str | None:
    """Why a file of a saved model or checkpoint cannot be read, or None (also for the kinds it does not know).

    Reads headers only, so it is cheap even for large models: a JSON file is parsed, a safetensors header must cover
    the file, a `torch.save` file (`.bin`, `.pt`, `.pth`) must be a zip archive with its central directory.
    """
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            # The header gives every tensor's byte range; opening checks the file covers them all.
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        elif path.suffix in (".bin", ".pt", ".pth"):
            with zipfile.ZipFile(path) as f:  # a truncated file has no central directory
                f.namelist()
    except Exception as err:  # noqa: BLE001 (reported with the file's name, whatever the reader raised)
        return describe_error(err)
    return None


WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


def check_saved_model(
    folder: str | os.PathLike, delete_hint: str, recomputable: tuple[str, ...] = ("eval.json",)
) -> None:
    """Raise `DamagedRunError` naming the first damaged file of a saved model (or its missing weights).

    The `recomputable` files beside it (an evaluation) are left to `read_json_cache`.
    """
    folder = Path(folder)
    problems = []
    if not any((folder / name).exists() for name in WEIGHTS):
        problems.append((folder, f"no weights ({' or '.join(WEIGHTS)})"))
    index = folder / "model.safetensors.index.json"
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin") and p.name not in recomputable
    )  # fmt: skip
    for path in files:
        problem = damaged_file(path)
        if problem:
            problems.append((path, problem))
    if index.exists() and not any(p == index for p, _ in problems):
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        missing = [folder / shard for shard in sorted(shards) if not (folder / shard).exists()]
        problems += [(path, "missing (listed in the index)") for path in missing]
    if problems:
        path, problem = problems[0]
        raise DamagedRunError(f"{str(path)!r} is damaged: {problem}. {delete_hint}")
