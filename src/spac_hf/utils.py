"""Atomic writes: readers see a file or folder either as it was or as it is now, never in between; the kill points
the kill/resume tests stop a run at, inside those writes; and discarding a damaged cache, to compute it again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)

CACHE_ENV = "SPAC_HF_CACHE"
CACHE_LABEL = "<spac-hf cache root>"  # how results name a file in the cache root (never the machine's path)


def cache_root() -> Path:
    """The one folder spac-hf caches into (fetched evaluation data, NLTK's Punkt, scores of a starting model):
    `$SPAC_HF_CACHE`, else `$XDG_CACHE_HOME/spac-hf`, else `~/.cache/spac-hf`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spac-hf"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in blocks (model weights and downloaded wheels do not fit a read())."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[: len(data) // 2])
            kill_point("write_file.partial")
            f.write(data[len(data) // 2 :])
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; published files are ordinary files
        kill_point("write_file.before_rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def describe_error(err: BaseException) -> str:
    """`TypeName: first line of the message`, short enough for a one-line warning or error."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"


def discard_damaged(path: Path, what: str, err: BaseException) -> None:
    """Delete a damaged file or folder that can be computed again (a cache), with a warning naming it and why."""
    logger.warning("Discarding %s %s: it is damaged (%s); it will be computed again.", what, path, describe_error(err))
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` in one rename.

    A crash inside the block leaves `path` as it was (or absent) and only a `.<name>.tmp-*` folder behind, which the
    next attempt removes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp creates 0700; the published folder is an ordinary one
    try:
        yield tmp
        kill_point("write_folder.before_rename")
        if path.exists():
            old = path.with_name(f".{path.name}.tmp-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            kill_point("write_folder.between_renames")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


KILL_ENV = "SPAC_HF_KILL_AT"
_kill_counts: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Fault injection for the kill/resume tests: end the process at once, as a SIGKILL or a power cut would.

    `SPAC_HF_KILL_AT=<name>` ends it the first time `name` is reached, `<name>:<n>` the n-th time. Unset (always,
    outside tests), this is one dictionary lookup.
    """
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    wanted, _, count = target.partition(":")
    if wanted != name:
        return
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if _kill_counts[name] == int(count or 1):
        os._exit(137)  # no cleanup, no `finally`, no atexit: exactly what a kill leaves behind


def recorded_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """A model or folder as a results file records it: never the layout of the machine that made the results.

    A Hub id stays as given; a local path inside `root` (default: the current directory, where the commands run from
    the checkout) becomes relative to it; a path in spac-hf's cache root becomes `<spac-hf cache root>/...` (e.g. the
    lm-eval task YAMLs built there); any other local path becomes its folder's name (a model's name). The one place
    that decides this for every results file, card and record."""
    text = os.fspath(path)
    if not os.path.isabs(text) and not os.path.exists(text):
        return text  # a Hub id (or a path that is not here to resolve)
    absolute = Path(text).resolve()
    for base, prefix in ((Path(root if root is not None else os.getcwd()), ""), (cache_root(), CACHE_LABEL + "/")):
        try:
            return prefix + absolute.relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return absolute.name


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op torch threads, then restore the previous count.

    Tiny models gain nothing from more threads, and on a shared machine each extra thread mostly waits for a core.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_PACKAGES = ("spac-hf", "torch", "transformers", "trl", "datasets", "accelerate", "huggingface_hub", "peft", "lm-eval")


def environment_info() -> dict[str, Any]:
    """Package versions and hardware, recorded next to every result so that a number can be traced to a machine."""
    versions = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }
    with contextlib.suppress(ImportError):
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    with contextlib.suppress(OSError, ValueError):
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    return info
