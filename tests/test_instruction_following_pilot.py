"""The pilot gate of the instruction-following redesign (benchmarks/instruction_following/pilot.py): the declared
rule on hand-made scores, and a quick end-to-end run on the tiny model whose pilot.json numbers are recomputed here
from the responses it scored."""

from __future__ import annotations

import json
import random

import pytest

from spac_hf.tasks import instruction_following as task

from benchmarks.eval_data.fetch import ensure_punkt
from benchmarks.instruction_following import data, pilot
from benchmarks.instruction_following import single_constraint as sc


def scores(mean: float, degenerate: float) -> dict:
    return {"mean": mean, "degenerate_fraction": degenerate}


def test_the_gate_and_its_one_retry_as_declared():
    assert (pilot.MIN_GAIN, pilot.STEPS, pilot.RETRY_FACTOR) == (0.08, 100, 3.0)
    sft = scores(0.40, 0.05)
    assert pilot.gate(sft, scores(0.48, 0.05))[0]  # exactly the gain, no more degenerate answers
    assert pilot.gate(sft, scores(0.60, 0.0))[0]
    assert pilot.gate(sft, scores(0.479, 0.05)) == (False, "reward gain +0.079 under 0.08")
    passed, why = pilot.gate(sft, scores(0.90, 0.06))  # a large gain with more loops is no pass
    assert not passed and why == "degenerate fraction 0.060 above SFT's 0.050"
    # The retry: x3 when the model did not move enough, /3 when it degenerated.
    lr, why = pilot.retry_learning_rate({"degenerate_fraction": 0.05, "sft_degenerate_fraction": 0.05}, 1e-5)
    assert lr == pytest.approx(3e-5) and "x 3" in why
    lr, why = pilot.retry_learning_rate({"degenerate_fraction": 0.2, "sft_degenerate_fraction": 0.05}, 1e-5)
    assert lr == pytest.approx(1e-5 / 3, rel=1e-5) and "/ 3" in why


def single_constraint_data(folder, n_train: int = 16, n_test: int = 6):
    """A small data set in the single_constraint format (one constraint per prompt, hand-written responses)."""
    bases = [r for r in data.checked_source_prompts() if len(r["base_prompt"]) < 120]
    kinds = ["change_case:english_lowercase", "punctuation:no_comma"]
    rows = [sc.single_constraint_row(b, kinds[i % 2], 0) for i, b in enumerate(bases[: n_train + n_test])]
    rng = random.Random(0)
    pairs = [data.bradley_terry_pair(r, ["sure here it is.", "SURE, HERE IT IS"], [1.0, 0.0], rng) for r in rows]
    provenance = {
        "task": task.TASK_NAME,
        "design": sc.DESIGN,
        "settings": {"design": sc.DESIGN, "model": "hand-made", "max_new_tokens": 8, "max_prompt_tokens": 400},
        "counts": {"train_prompts": n_train, "train_pairs": n_train, "test_prompts": n_test},
        "label_noise": sc.label_noise(pairs[:n_train], 0.25),
    }
    test = [data.held_out_row(r) for r in rows[n_train:]]
    return data.write_dataset(folder, pairs[:n_train], test, rows, provenance, card="hand-made pairs\n")


def test_quick_pilot_end_to_end_numbers_come_from_the_scored_responses(sharp_dir, tmp_path, monkeypatch):
    ensure_punkt()  # NLTK's Punkt from the shared cache, before the run gets a cache root of its own
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path / "cache"))
    folder = single_constraint_data(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["--quick", "--model", sharp_dir, "--data", str(folder), "--work-dir", str(tmp_path / "work")]
    argv += ["--out", str(out), "--threads", "1"]
    results = pilot.main(argv)

    assert json.loads((out / "pilot.json").read_text()) == json.loads(json.dumps(results))
    assert json.loads((out / "data_provenance.json").read_text()) == json.loads(
        (folder / "provenance.json").read_text()
    )
    attempts = results["attempts"]
    assert results["status"] in ("pass", "cannot move the model")
    if results["status"] == "pass":
        assert attempts[-1]["passed"] and not any(a["passed"] for a in attempts[:-1])
    else:  # the one retry ran, at the declared learning rate, and failed too
        assert len(attempts) == 2 and not any(a["passed"] for a in attempts)
        expected, _ = pilot.retry_learning_rate(
            {**attempts[0]["score"], "sft_degenerate_fraction": results["sft"]["degenerate_fraction"]},
            pilot.LEARNING_RATE,
        )
        assert attempts[1]["learning_rate"] == pytest.approx(expected)
    assert all(a["optimizer_steps"] == pilot.QUICK_STEPS for a in attempts)
    run = json.loads((tmp_path / "work" / "lr_1e-05" / "dpo" / "seed_0" / "benchmark_run.json").read_text())
    assert run["settings"]["per_device_train_batch_size"] * run["settings"]["gradient_accumulation_steps"] == 4
    assert (
        run["settings"]["learning_rate"] == pilot.LEARNING_RATE and run["settings"]["lr_scheduler_type"] == "constant"
    )

    # Every number of pilot.json, recomputed from the responses the pilot scored.
    lines = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == results["sft"]["n_prompts"] == 6
    names = ["sft"] + [f"attempt_{a['attempt']}" for a in attempts]
    reported = [results["sft"]] + [a["score"] for a in attempts]
    rewards = {name: [task.reward(line, line[name]) for line in lines] for name in names}
    for name, numbers in zip(names, reported):
        assert numbers["mean"] == pytest.approx(sum(rewards[name]) / 6)
        assert numbers["degenerate_fraction"] == sum(task.is_degenerate(line[name]) for line in lines) / 6
    for attempt in attempts:
        name = f"attempt_{attempt['attempt']}"
        assert attempt["gain"]["mean"] == pytest.approx(attempt["score"]["mean"] - results["sft"]["mean"])
        assert attempt["answers_changed"] == sum(line[name] != line["sft"] for line in lines)
        assert attempt["passed"] == pilot.gate(results["sft"], attempt["score"])[0]

    # A rerun reuses every finished stage: no scoring, no training.
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(task, "mean_task_reward", must_not_run)
    monkeypatch.setattr("spac_hf.scripts.self_play.main", must_not_run)
    again = pilot.main(argv)
    assert again["attempts"] == results["attempts"] and again["sft"] == results["sft"]
    assert again["compute_seconds"] == results["compute_seconds"]  # what each stage cost when it ran, not the reuse
    assert set(results["compute_seconds"]) == {"score_sft"} | {
        f"{k}_{a['attempt']}" for a in attempts for k in ("train", "score")
    }


def test_readme_declares_the_design_the_code_runs():
    """The redesign section states the constants the code declares, and says "not yet run" until pilot.json exists."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = " ".join((root / "benchmarks" / "instruction_following" / "README.md").read_text().split())
    section = readme[readme.index("## Redesign (issue 25)") : readme.index("## The task")]
    d = sc.DEFAULTS
    low, high = sc.FOLLOW_RATE_BOUNDS
    assert f"gets {d['prompts_per_kind']} prompts with that one constraint" in section
    assert f"samples {d['responses_per_prompt']} responses to each at temperature {d['temperature']:g}" in section
    assert f"between {low:.0%} and {high:.0%} of the time" in section
    assert f"the length cap ({d['max_new_tokens']} new tokens)" in section
    assert f"{sc.MAX_CUT_SHARE:.0%} or more is refused" in section
    assert f"{d['num_train']} training prompts" in section and f"{d['responses_per_prompt']} samples each" in section
    assert f"Fewer than {sc.MIN_PAIRS} pairs" in section and f"(tau {d['tau']})" in section
    assert f"{d['num_test']} held-out prompts of the same design" in section
    assert f"{pilot.STEPS} optimizer steps of {pilot.BATCH} pairs at a constant learning rate of 1e-5" in section
    assert pilot.LEARNING_RATE == 1e-5 and f"by at least {pilot.MIN_GAIN}" in section
    assert f"x{pilot.RETRY_FACTOR:g} when the gain fell short, /{pilot.RETRY_FACTOR:g}" in section
    probe = json.loads((root / pilot.DEFAULT_OUT / "sampling_probe.json").read_text())
    stopped = probe["status"] == "finished" and probe["chosen"] is None
    assert ("**Stopped at the data stage" in section) == stopped
    assert stopped or ("**Not yet run.**" in section) != (root / pilot.DEFAULT_OUT / "pilot.json").exists()


def test_readme_probe_numbers_come_from_the_committed_samples():
    """The probe's table and the loop count quoted under it, recomputed from the committed samples."""
    from pathlib import Path

    from benchmarks.instruction_following.probe import setting_summary

    root = Path(__file__).resolve().parents[1]
    readme = (root / "benchmarks" / "instruction_following" / "README.md").read_text()
    folder = root / pilot.DEFAULT_OUT
    record = json.loads((folder / "sampling_probe.json").read_text())
    lines = [json.loads(x) for x in (folder / "sampling_probe.jsonl").read_text().splitlines()]
    by_setting = {(x["settings"]["temperature"], x["settings"]["top_p"]): x for x in lines}
    for row in record["results"]:
        line = by_setting[(row["temperature"], row["top_p"])]
        assert [i["id"] for i in line["items"]] == record["prompt_ids"]
        stats = sc.chunk_stats(folder / "sampling_probe.jsonl", line["settings"])
        summary = setting_summary(line["items"], stats["tokens"], stats["seconds"])
        assert row == {"temperature": row["temperature"], "top_p": row["top_p"], **summary}
        assert (
            f"| {row['temperature']:g} | {row['top_p']:g} | {row['cut']} of {row['samples']} ({row['cut_share']:.1%}) "
            f"| {row['degenerate_share']:.1%} | {row['mean_tokens']:.0f} | {row['prompts_with_pair']} of "
            f"{row['prompts']} |"
        ) in readme
    cut = [
        text
        for item in by_setting[(0.7, 0.9)]["items"]
        for text, was_cut in zip(item["responses"], item["cut"])
        if was_cut
    ]
    shares = [row["cut_share"] for row in record["results"]]
    quoted = f"{min(shares):.0%} to {max(shares):.0%}"
    for path in ("README.md", "benchmarks/README.md", "benchmarks/instruction_following/README.md"):
        assert quoted in " ".join((root / path).read_text().split()), path
    loops = sum(task.is_degenerate(text) for text in cut)
    assert f"at 0.7, {loops} of the {len(cut)} cut samples are loops" in " ".join(readme.split())


def test_the_data_are_drawn_only_with_the_sampling_the_probe_decided(tmp_path, monkeypatch):
    """No probe record, an unfinished one, or one that found no setting: refused before any sampling, naming it."""
    from benchmarks.instruction_following import single_constraint

    monkeypatch.setattr(single_constraint, "build_single_constraint_data", lambda *a, **k: pytest.fail("sampled"))
    argv = ["--data", str(tmp_path / "data"), "--out", str(tmp_path), "--work-dir", str(tmp_path / "work")]
    with pytest.raises(ValueError, match=r"mu's sampling is not decided yet .*probe --commit` first"):
        pilot.main(argv)
    record = {"status": "partial", "chosen": None, "decision": None}
    (tmp_path / "sampling_probe.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not decided yet"):
        pilot.main(argv)
    stop = "no setting of the ladder passes: the benchmark stops at the data stage"
    (tmp_path / "sampling_probe.json").write_text(json.dumps({**record, "status": "finished", "decision": stop}))
    with pytest.raises(ValueError, match=f"The sampling probe decided: {stop}"):
        pilot.main(argv)
    chosen = {"temperature": 0.8, "top_p": 0.9}
    (tmp_path / "sampling_probe.json").write_text(json.dumps({**record, "status": "finished", "chosen": chosen}))
    assert pilot.decided_sampling(tmp_path) == chosen
