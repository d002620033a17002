"""`pip install spac-hf` gives a working command: a wheel built from this checkout, installed into a fresh virtual
environment, runs the embedded default from an empty directory, with nothing of the checkout on the path.

The fresh environment gets the wheel and nothing else; its dependencies (torch, TRL, ...) come from the environment
running the tests through a `.pth` line naming that environment's site-packages (a plain path line: the `.pth` files
there, such as an editable install of spac-hf, are not processed), so the test takes seconds, not the minutes a fresh
install of torch would.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the checkout's packaging files and `src/` (a build writes `build/` and `*.egg-info`)."""
    source = out / "source"
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        str(source),
        "-w",
        str(out / "dist"),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (out / "dist").glob("spac_hf-*.whl")
    return wheel


def fresh_environment(path: Path, wheel: Path) -> Path:
    """A new virtual environment holding only the wheel; returns its `bin/`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return path / "bin"


def test_the_wheel_ships_the_embedded_default_and_the_scripts(tmp_path):
    names = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    for name in (
        "model/model.safetensors",
        "model/tokenizer.json",
        "data/train.jsonl",
        "data/test.jsonl",
        "data/README.md",
        "spac.yaml",
        "dpo.yaml",
        "spin.yaml",
    ):
        assert f"spac_hf/default/{name}" in names
    assert {f"spac_hf/scripts/{m}.py" for m in ("spac", "dpo", "spin", "self_play", "compare", "space")} <= names
    assert not [n for n in names if n.startswith(("recipes/", "benchmarks/", "tests/"))]


@pytest.mark.slow
def test_spac_hf_train_runs_the_embedded_default_from_an_installed_wheel(tmp_path):
    bin_dir = fresh_environment(tmp_path / "venv", build_wheel(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [bin_dir / "python", "-c", "import spac_hf; print(spac_hf.__file__)"],
        cwd=empty,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert Path(where).resolve().is_relative_to((tmp_path / "venv").resolve())  # the wheel's copy, not the checkout
    done = subprocess.run(
        [
            bin_dir / "spac-hf",
            "train",
            "--method",
            "spac",
            "--num_iterations",
            "1",
            "--max_steps",
            "2",
            "--max_train_samples",
            "32",
            "--true_reward_prompts",
            "8",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = empty / "outputs" / "default" / "spac"  # the embedded default's output_dir, under the current directory
    iterate = json.loads((run / "iter_1" / "iterate.json").read_text())
    assert iterate["iteration"] == 1 and (run / "iter_1" / "model.safetensors").is_file()
    evaluation = json.loads((run / "iter_1" / "eval.json").read_text())
    assert -1.0 <= evaluation["results"]["true_reward_reviews"]["mean"] <= 1.0
    assert json.loads((run / "summary.json").read_text())["iterates"][0]["iteration"] == 1
    # The Space is a folder of the repository, not of the package: one line saying so, not a traceback.
    space = subprocess.run([bin_dir / "spac-hf", "space"], cwd=empty, env=env, capture_output=True, text=True)
    assert space.returncode != 0 and "Space is not part of the installed package" in space.stderr
    assert "Traceback" not in space.stderr
