"""scripts/gpu_check.sh: its --dry-run end to end on the CPU (what CI can check of the GPU run), its time limits, its
summary and table, and the wheel list of scripts/gpu_wheels.sh against constraints.txt."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load_gpu_check()


def run_check(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    command = ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_dry_run_runs_every_step_end_to_end(tmp_path):
    result = run_check("--dry-run", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["dry_run"] and summary["finished"] and summary["ok"]
    steps = summary["steps"]
    assert list(steps) == [step.name for step in gpu_check.gpu_steps()]
    assert steps["versions"]["status"] == "passed" and steps["versions"]["versions"]["trl"]
    # The GPU-marked tests ran (on the CPU), and the bf16 test recorded both step-1 losses.
    pytest_step = steps["pytest"]
    assert pytest_step["status"] == "passed" and pytest_step["passed"] >= 3
    # tests/test_gpu.py runs on the CPU in a dry run; GPU tests elsewhere may skip themselves without CUDA.
    ours = [t for t in pytest_step["tests"] if t["test"].startswith("tests.test_gpu::")]
    assert len(ours) == 3 and all(t["outcome"] == "passed" for t in ours)
    bf16 = next(t for t in pytest_step["tests"] if "bf16" in t["test"])
    assert {"fp32_cpu_losses", "bf16_cpu_losses"} <= set(bf16["properties"])
    cost = steps["cost_0.5B"]
    assert cost["status"] == "passed" and cost["sizes"]["0.1M"]["time_ratio_to_dpo"]["spac"] > 0
    assert json.loads((tmp_path / "cost_0.5B.json").read_text())["settings"]["step"]["device"] == "cpu"
    assert steps["cost_1.5B"]["status"] == "skipped"
    if steps["ifeval"]["status"] == "skipped":  # no staged data and no benchmarks.eval_data.fetch to fetch it with
        assert "gpu_wheels.sh" in steps["ifeval"]["reason"]
    else:
        assert steps["ifeval"]["status"] == "passed" and steps["ifeval"]["prompts"] == 4
        assert steps["ifeval"]["tokens_per_second"] > 0
    for name in ("deepspeed", "qlora"):
        assert steps[name]["status"] == "skipped" and steps[name]["reason"]
    assert summary["seconds"] <= summary["budget_s"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost_0.5B.json", "gpu_check.json", "gpu_check.log"]
    assert "GPU check (dry run): OK" in result.stdout
    assert re.search(r"^pytest +\| passed", result.stdout, re.MULTILINE)


def test_a_step_past_its_limit_is_killed_and_the_rest_still_run(tmp_path):
    args = gpu_check.parse_args(["--dry-run", "--out", str(tmp_path)])
    check = gpu_check.Check(args)
    started = time.monotonic()
    sleeper = [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(30)"]
    code, output, _ = check.run_process(sleeper, limit=1.5)
    assert code is None and "hi" in output and time.monotonic() - started < 10
    # With the overall budget spent, a step is skipped with the reason rather than started.
    summary = gpu_check.Check(gpu_check.parse_args(["--dry-run", "--out", str(tmp_path), "--budget", "3",
                                                    "--only", "versions", "pytest"])).run()  # fmt: skip
    assert summary["steps"]["pytest"] == {"status": "skipped", "reason": "the overall budget is spent",
                                          "seconds": 0.0, "limit_s": 0}  # fmt: skip
    assert not summary["ok"] or summary["steps"]["versions"]["status"] in ("passed", "timeout", "skipped")
    assert json.loads((tmp_path / "gpu_check.json").read_text())["finished"]


def test_the_table_and_the_test_selection():
    summary = {
        "dry_run": False, "ok": False, "seconds": 12.5,
        "steps": {
            "pytest": {"status": "passed", "seconds": 3.0, "passed": 5, "skipped": 1},
            "qlora": {"status": "skipped", "seconds": 0.1, "reason": "bitsandbytes is not importable"},
            "ifeval": {"status": "failed", "seconds": 2.0, "reason": "exit status 1"},
        },
    }  # fmt: skip
    text = gpu_check.table(summary)
    assert text.splitlines()[0] == "GPU check: FAILED in 12.5 s"
    assert re.search(r"^pytest +\| passed +\| 3.0 +\| 5 passed, 1 skipped$", text, re.MULTILINE)
    assert re.search(r"^qlora +\| skipped .*bitsandbytes is not importable$", text, re.MULTILINE)
    assert "tests/test_gpu.py" in gpu_check.gpu_test_files()
    assert "tests/test_trainer.py" not in gpu_check.gpu_test_files()


def test_the_carried_wheels_match_constraints():
    """scripts/gpu_wheels.sh carries the versions constraints.txt pins (the tested set), and nothing the image has."""
    script = (ROOT / "scripts" / "gpu_wheels.sh").read_text()
    block = script.split("WHEELS=(", 1)[1].split("\n)", 1)[0]
    pins = dict(re.findall(r"([A-Za-z0-9_.-]+)==([^\s]+)", block))
    constraints = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "constraints.txt").read_text(), re.MULTILINE))
    for name in ("trl", "datasets", "lm-eval", "evaluate"):
        assert pins[name] == constraints[name], name
    image = {"torch", "transformers", "accelerate", "peft", "numpy", "pandas", "pyarrow", "tokenizers", "safetensors",
             "pytest"}  # fmt: skip
    assert not image & set(pins)
    assert ".gpu/" in (ROOT / ".gitignore").read_text().split()


def test_the_readme_states_the_measured_sizes_and_that_no_gpu_run_happened():
    wheels = json.loads((ROOT / "results" / "gpu" / "wheels.json").read_text())
    default, bnb = wheels["default"], wheels["with_bitsandbytes"]
    mib = default["mib"]
    assert mib["total"] < mib["limit"] < bnb["mib"]["total"]  # why QLoRA cannot travel
    sentence = (
        f"{len(default['wheels'])} wheels ({mib['wheels']:.1f} MiB) and {mib['data']:.1f} MiB of IFEval and Punkt "
        f"data; with the {mib['working_tree']:.1f} MiB working tree, {mib['total']:.1f} MiB of the {mib['limit']} MiB "
        f"limit. bitsandbytes' wheel ({bnb['bitsandbytes'][0]['bytes'] / 2**20:.1f} MiB) would make it "
        f"{bnb['mib']['total']:.1f} MiB, over the limit"
    )
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert sentence in readme
    gpu_runs = [p for p in (ROOT / "results" / "gpu").rglob("gpu_check.json")
                if not json.loads(p.read_text())["dry_run"]]  # fmt: skip
    assert ("No GPU run has happened yet" in readme) == (not gpu_runs)
    assert gpu_check.BUDGET_S <= 8 * 60  # "under 8 minutes"


def test_the_rehearsal_record_backs_the_readme():
    """The committed rehearsal: the dry run with only the carried wheels in an image-like environment passed."""
    record = json.loads((ROOT / "results" / "gpu" / "rehearsal" / "gpu_check.json").read_text())
    assert record["dry_run"] and record["finished"] and record["ok"] and "--install" in record["command"]
    steps = record["steps"]
    assert steps["install"]["status"] == "passed"
    assert len(steps["install"]["wheels"]) == len(record["carried"]["wheels"])
    assert all(steps[name]["status"] == "passed" for name in ("versions", "pytest", "cost_0.5B", "ifeval"))
    environment = (ROOT / "results" / "gpu" / "rehearsal" / "image_like_environment.txt").read_text().split()
    names = {line.split("==")[0].lower() for line in environment}
    assert {"torch", "transformers", "accelerate", "peft", "pytest"} <= names
    assert not {"trl", "datasets", "lm_eval", "lm-eval", "evaluate"} & names  # they came from the carried wheels
    assert steps["versions"]["versions"]["transformers"] == next(
        line.split("==")[1] for line in environment if line.lower().startswith("transformers==")
    )
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "The install was rehearsed" in readme and "transformers 5.17" in readme


def test_wheels_unpack_without_pip_as_pip_would_install_them(tmp_path):
    """The fallback for an image without pip: a wheel unzipped into the target imports like a pip --target install."""
    import zipfile

    wheel = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo_pkg/__init__.py", "VALUE = 41\n")
        archive.writestr("demo_pkg-1.0.data/purelib/demo_extra.py", "VALUE = 1\n")
        archive.writestr("demo_pkg-1.0.data/scripts/demo", "#!/bin/sh\n")
        archive.writestr("demo_pkg-1.0.dist-info/METADATA", "Name: demo-pkg\nVersion: 1.0\n")
    gpu_check.unpack_wheels([wheel], tmp_path / "site")
    code = "import demo_pkg, demo_extra; print(demo_pkg.VALUE + demo_extra.VALUE)"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.stdout.strip() == "42", result.stderr
    assert not (tmp_path / "site" / "demo").exists()
