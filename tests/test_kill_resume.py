"""A run killed anywhere, including inside every durable write, resumes to the bit-identical result.

tests/kill_resume.py runs a tiny two-iteration SPAC loop (with history, evaluation and averaging, a checkpoint at
every step) once uninterrupted, then once per kill point: killed there (`os._exit`, nothing cleaned up), resumed, and
compared with the uninterrupted run: every weight file byte for byte, the generated data, the evaluations and the
per-step training losses. After the resume no temporary file and no checkpoint of a finished iteration may remain.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


SCRIPT = str(Path(__file__).parent / "kill_resume.py")
DURABLE_WRITES = (
    "write_file.partial",  # atomic_write_bytes: half the bytes written
    "write_file.before_rename",  # atomic_write_bytes: written and synced, not yet renamed
    "write_folder.before_rename",  # atomic_directory: the folder complete, not yet renamed
    "generated.before_save",  # generated responses in memory, nothing saved
    "checkpoint.partial",  # inside a Trainer checkpoint: weights written, optimizer state not
    "iterate.weights_written",  # an iterate's weights in its temporary folder
    "iterate.before_rename",  # the iterate complete in its temporary folder
    "iterate.after_rename",  # the iterate published, its checkpoints not yet deleted
)


def kill_and_resume(model: str, work: Path, points: str) -> dict:
    report = work / "report.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, SCRIPT, "--model", model, "--work", str(work / "runs"), "--points", points,
         "--report", str(report)],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(report.read_text())


def check(report: dict) -> None:
    assert report["reference_leftovers"] == []
    for point, outcome in report["points"].items():
        assert outcome["killed_exit_code"] == 137, f"{point}: the run was not killed there"
        assert outcome["resumed_exit_code"] == 0, f"{point}: the resumed run failed"
        assert outcome["differences"] == [], f"{point}: resumed result differs from the uninterrupted run"
        assert outcome["leftovers"] == [], f"{point}: left behind after the resume"


def test_every_kind_of_kill_point_resumes_bit_identically(tiny_model_dir, tmp_path):
    report = kill_and_resume(tiny_model_dir, tmp_path, "default")
    check(report)
    killed = [p for p in report["points"] if not p.startswith("damaged:")]
    assert len(killed) >= 10
    assert {p.rsplit(":", 1)[0] for p in killed} == set(DURABLE_WRITES)  # every kind of durable write
    assert {p.rsplit(":", 1)[0] for p in report["reached"]} == set(DURABLE_WRITES)

    # A kill inside a file write leaves its temporary file, removed and reported on resume.
    assert any("Removed what an interrupted run left behind" in line and ".tmp" in line
               for line in report["points"]["write_file.partial:1"]["resume_log"])  # fmt: skip
    # A kill between publishing iterate 2 and deleting its checkpoints: resume deletes them and says so.
    (late,) = [p for p in killed if p.startswith("iterate.after_rename:") and p != "iterate.after_rename:1"]
    assert any("work/iter_2/checkpoints" in line for line in report["points"][late]["resume_log"])

    # Damaged recomputable files (generated data, evaluations): named, discarded, recomputed to the same result.
    (damaged,) = [p for p in report["points"] if p.startswith("damaged:")]
    outcome = report["points"][damaged]
    assert any("generated" in p for p in outcome["damaged"]) and "base_eval.json" in outcome["damaged"]
    log = "\n".join(outcome["resume_log"])
    assert "Discarding the generated responses of iteration 1" in log and "work/iter_1/generated" in log
    assert "Discarding the evaluation" in log and "base_eval.json" in log


@pytest.mark.exhaustive
def test_every_kill_point_of_a_run_resumes_bit_identically(tiny_model_dir, tmp_path):
    report = kill_and_resume(tiny_model_dir, tmp_path, "all")
    check(report)
    assert len(report["points"]) == len(report["reached"]) + 1
