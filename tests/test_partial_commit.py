"""benchmarks.partial.commit: a long benchmark commits its results folder alone after every cell."""

from __future__ import annotations

import subprocess

from benchmarks import partial


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_commits_the_folder_alone_deletions_included_and_leaves_other_work_staged(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    results, code = repo / "results" / "pilot", repo / "code.py"
    (results / "data.work").mkdir(parents=True)
    (results / "data.work" / "chunks.jsonl").write_text("{}\n")
    code.write_text("x = 1\n")
    git(repo, "add", "code.py")  # someone's staged work, not the benchmark's to commit
    monkeypatch.setattr(partial, "REPO_ROOT", repo)

    assert partial.commit([results], "PARTIAL: one chunk")
    assert git(repo, "log", "--format=%s") == "PARTIAL: one chunk\n"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["results/pilot/data.work/chunks.jsonl"]
    assert git(repo, "diff", "--cached", "--name-only").split() == ["code.py"]

    (results / "data.work" / "chunks.jsonl").unlink()  # the chunks moved into the data set
    (results / "data").mkdir()
    (results / "data" / "train.jsonl").write_text("{}\n")
    assert partial.commit([results], "data set built")
    assert git(repo, "ls-tree", "-r", "--name-only", "HEAD").split() == ["results/pilot/data/train.jsonl"]
    assert partial.commit([results], "nothing new")  # nothing to commit is not a failure
    assert git(repo, "rev-list", "--count", "HEAD") == "2\n"
