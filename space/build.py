"""`python space/app.py --build`: produce the default task's iterates and results before starting the Space.

Runs the shipped recipes in a spac-hf checkout, in order, each as its own process (what a user would type). The
recipes resume from what is already saved, so running this again after an interruption continues where it stopped.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path


RECIPES = ("spac", "dpo", "spin")  # the recipe scripts, `python -m spac_hf.scripts.<name>`


def build_commands(root: Path) -> list[list[str]]:
    commands = []
    if not (root / "src" / "spac_hf" / "default" / "model" / "config.json").is_file():
        commands.append([sys.executable, "recipes/default/build_assets.py"])
    commands += [["accelerate", "launch", "-m", f"spac_hf.scripts.{method}"] for method in RECIPES]
    return commands


def build_default_outputs(root: Path) -> None:
    for command in build_commands(root):
        print(f"$ {shlex.join(command)}", flush=True)
        subprocess.run(command, cwd=root, check=True)
