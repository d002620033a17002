"""Partial results that survive: a long benchmark commits its results after every finished cell, so a session that
ends (or a machine that is lost) keeps what finished, and the same command resumes from it on a fresh clone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


def commit(paths: Sequence[str | Path], message: str, *, attempts: int = 10) -> bool:
    """Commit `paths` alone (other staged work stays staged; files deleted under them are committed as deleted),
    retried while another git command holds the index. False, with a warning, if it could not."""
    paths = [str(Path(p).resolve().relative_to(REPO_ROOT.resolve())) for p in paths]
    for _ in range(attempts):
        added = subprocess.run(["git", "add", "-A", "--", *paths], cwd=REPO_ROOT, capture_output=True, text=True)
        committed = added.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--", *paths], cwd=REPO_ROOT, capture_output=True, text=True
        ).returncode in (0, 1)  # 1: nothing to commit
        if committed:
            return True
        time.sleep(3)
    print(f"warning: could not commit {', '.join(paths)}", file=sys.stderr)
    return False
