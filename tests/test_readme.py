"""The README's examples run as written, and CI runs the README's test command."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    assert "```bash\nmake test\n```" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile and "-c constraints.txt" in makefile  # never a CUDA torch by accident


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_example_runs_as_written(index):
    code = PYTHON_BLOCKS[index]
    outputs = [ROOT / m for m in re.findall(r'output_dir="([^"]+)"', code)]
    assert outputs, "every README example writes under outputs/"
    for out in outputs:
        shutil.rmtree(out, ignore_errors=True)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        for out in outputs:
            assert any(out.rglob("model.safetensors")), f"{out} holds no saved model"
    finally:
        for out in outputs:
            shutil.rmtree(out, ignore_errors=True)
