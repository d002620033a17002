"""The instruction-following task (spac_hf.tasks.instruction_following) and its benchmark
(benchmarks/instruction_following): constraint sampling, the reward on hand-written responses, the data builder's
atomic, resumable writes, IFEval scoring, and a tiny end-to-end run through the real recipes on the tiny test model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from spac_hf.tasks import instruction_following as task

from benchmarks.eval_data.fetch import ensure_punkt
from benchmarks.instruction_following import data


@pytest.fixture(scope="module")
def prompts():
    return data.build_prompts(seed=0)


def row(ids, kwargs, prompt="Describe a cat."):
    return {"id": "hand/0", "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}


# ------------------------------------------------------------------------------------------------ constraints


def test_constraint_sampling_is_reproducible_and_never_conflicting(prompts):
    registry, _ = task.ifeval_modules()
    assert len(prompts) == 805 + 750
    assert data.build_prompts(seed=0)[:50] == prompts[:50]  # same seed, same constraints
    other = data.build_prompts(seed=1)
    assert [r["instruction_id_list"] for r in other] != [r["instruction_id_list"] for r in prompts]
    counts = {n: 0 for n in range(1, 4)}
    for r in prompts:
        ids = r["instruction_id_list"]
        counts[len(ids)] += 1
        assert len(set(ids)) == len(ids)
        assert all(i in registry.INSTRUCTION_DICT for i in ids)
        for a in ids:
            for b in ids:
                if a != b:  # both directions: the registry lists some conflicts one way only
                    assert b not in registry.INSTRUCTION_CONFLICTS[a] and a not in registry.INSTRUCTION_CONFLICTS[b]
        assert r["prompt"].startswith(r["base_prompt"])
    assert all(c > 300 for c in counts.values())  # 1, 2 and 3 constraints all occur
    # The description is lm-eval's own: rebuilding the class from the stored kwargs gives the same text.
    first = next(r for r in prompts if r["instruction_id_list"][0] == "length_constraints:number_sentences")
    rebuilt = registry.INSTRUCTION_DICT["length_constraints:number_sentences"]("x").build_description(
        **first["kwargs"][0]
    )
    assert rebuilt in first["prompt"]
    # Sampling leaves the caller's global random state alone.
    random.seed(5)
    expected = random.random()
    random.seed(5)
    data.sample_constraints(random.Random(0), "Hi.", 3)
    assert random.random() == expected


def test_ifeval_prompts_are_never_used(prompts):
    from benchmarks.eval_data.fetch import ifeval_rows

    ifeval = {" ".join(r["prompt"].lower().split()) for r in ifeval_rows()}
    assert not any(" ".join(r["base_prompt"].lower().split()) in ifeval for r in prompts)


# ------------------------------------------------------------------------------------------------ reward


def test_reward_on_hand_written_responses():
    lower_no_comma = row(["change_case:english_lowercase", "punctuation:no_comma"], [{}, {}])
    assert task.reward(lower_no_comma, "cats are small furry animals. they purr.") == 1.0
    assert task.reward(lower_no_comma, "Cats are small furry animals. they purr.") == 0.5  # a capital letter
    assert task.reward(lower_no_comma, "Cats, dogs.") == 0.0
    three = row(
        ["detectable_format:title", "startend:end_checker", "keywords:forbidden_words"],
        [{}, {"end_phrase": "Any other questions?"}, {"forbidden_words": ["dog"]}],
    )
    assert task.reward(three, "<<Cats>>\nCats purr. Any other questions?") == 1.0
    assert task.reward(three, "<<Cats>>\nCats chase a dog. Any other questions?") == pytest.approx(2 / 3)
    assert task.reward(three, "Cats chase a dog.") == 0.0
    assert task.reward(three, "") == 0.0  # lm-eval's strict checker: an empty response follows nothing
    assert task.follow_list(three, "<<Cats>>\nCats chase a dog. Any other questions?") == [True, True, False]


def test_degenerate_responses():
    assert task.is_degenerate("")
    assert task.is_degenerate("the cat sat on the mat " * 10)
    assert task.is_degenerate("Hello!\nHello!\nHello!\nOkay.")
    assert not task.is_degenerate(
        "Cats are small, furry animals that many people keep as pets because they purr, "
        "play and keep mice away from the house and the garden all year round."
    )


def test_bradley_terry_pair():
    r = row(["punctuation:no_comma"], [{}])
    assert data.bradley_terry_pair(r, ["a", "b"], [1.0, 1.0], random.Random(0)) is None  # no signal, no pair
    picks = [data.bradley_terry_pair(r, ["good", "mid", "bad"], [1.0, 0.5, 0.0], random.Random(s)) for s in range(400)]
    assert {p["chosen"][0]["content"] for p in picks} == {"good", "bad"}  # best against worst
    wins = sum(p["chosen"][0]["content"] == "good" for p in picks) / len(picks)
    assert wins == pytest.approx(data.preference_probability(1.0, 0.0), abs=0.03)  # sigmoid(4) = 0.982


# ------------------------------------------------------------------------------------------------ the data builder


def test_builder_writes_atomically_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "data"
    kwargs = {
        "num_train": 6,
        "num_test": 2,
        "responses_per_prompt": 3,
        "max_new_tokens": 6,
        "max_prompt_tokens": 400,
        "batch_size": 8,
        "chunk_prompts": 2,
    }
    # The random tiny model's responses all follow the same constraints on most prompts, so they would give no pair:
    # here (test only) the reward is the response's length, which differs between samples.
    monkeypatch.setattr(data, "reward", lambda r, response: len(response) / 100)
    calls = []
    real_generate = __import__("spac_hf.generation", fromlist=["x"]).generate_responses

    def crash_after_two_chunks(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated crash")
        return real_generate(*args, **kw)

    monkeypatch.setattr("spac_hf.generation.generate_responses", crash_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        data.build_preference_data(tiny_model_dir, out, **kwargs)
    assert not out.exists()  # nothing half-written where the data set goes
    progress = (tmp_path / "data.work" / data.PROGRESS_FILE).read_text().splitlines()
    assert len(progress) == 2  # two finished chunks kept
    # A crash mid-write leaves a cut-off line: it is ignored and that chunk is redone.
    (tmp_path / "data.work" / data.PROGRESS_FILE).write_text("\n".join(progress) + '\n{"items": [{"id"')
    monkeypatch.setattr("spac_hf.generation.generate_responses", real_generate)
    calls.clear()
    data.build_preference_data(tiny_model_dir, out, **kwargs)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["counts"]["train_prompts"] == 6 and provenance["counts"]["test_prompts"] == 2
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert len(train) == provenance["counts"]["train_pairs"] > 0
    assert all(p["chosen"] != p["rejected"] for p in train)
    ids = [json.loads(x)["id"] for x in (out / "prompts.jsonl").read_text().splitlines()]
    assert len(set(ids)) == 8  # train and test prompts disjoint
    assert "Bradley-Terry" in (out / "README.md").read_text()
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ids[:6] and all(len(s["responses"]) == 3 for s in samples)
    coverage = data.mu_coverage(out)  # by lm-eval's checkers (the patched reward is only for the pairs)
    rows = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()][:6]
    assert sum(v["samples"] for v in coverage.values()) == 3 * sum(len(r["instruction_id_list"]) for r in rows)
    with pytest.raises(ValueError, match="other settings"):
        data.build_preference_data(tiny_model_dir, out, **{**kwargs, "num_train": 7})


# ------------------------------------------------------------------------------------------------ IFEval scoring


def test_ifeval_scoring_uses_lm_eval_metrics():
    from benchmarks.eval_data.fetch import ifeval_rows
    from benchmarks.instruction_following.ifeval import score_responses

    docs = [d for d in ifeval_rows() if d["instruction_id_list"] == ["punctuation:no_comma"]][:1]
    docs += [d for d in ifeval_rows() if d["instruction_id_list"] == ["change_case:english_lowercase"]][:1]
    assert len(docs) == 2
    scores = score_responses(docs, ["No commas here at all.", "This Has Capitals."])
    assert scores["prompt_level_strict_acc"] == 0.5
    assert scores["inst_level_strict_acc"] == 0.5


def test_ifeval_pass_writes_its_record_and_resumes(tiny_model_dir, tmp_path):
    from benchmarks.eval_data.fetch import ifeval_rows
    from benchmarks.instruction_following.ifeval import METRICS, run_ifeval

    docs = sorted(ifeval_rows(), key=lambda d: len(d["prompt"]))[:3]  # the tiny model's positions stop at 512
    record = tmp_path / "ifeval.json"
    partial = tmp_path / "ifeval.partial.jsonl"
    first = run_ifeval(tiny_model_dir, record, max_gen_toks=4, batch_size=2, chunk_prompts=2, docs=docs)
    assert all(0.0 <= first[m] <= 1.0 for m in METRICS)
    assert first["settings"]["max_gen_toks"] == 4 and first["settings"]["n_prompts"] == 3
    assert first["generated_tokens"] > 0 and not partial.exists()
    # An interrupted pass: the first chunk's responses are kept and only the rest is generated again.
    record.unlink()
    chunk = {
        "settings": first["settings"],
        "responses": {str(docs[0]["key"]): "all lowercase, no capitals."},
        "seconds": 1.0,
        "tokens": 7,
    }
    partial.write_text(json.dumps(chunk) + "\n")
    again = run_ifeval(tiny_model_dir, record, max_gen_toks=4, batch_size=2, chunk_prompts=2, docs=docs)
    assert again["examples"][0]["response"] == "all lowercase, no capitals."
    assert run_ifeval(tiny_model_dir, record, max_gen_toks=4, docs=docs) == again  # finished: read back


# ------------------------------------------------------------------------------------------------ end to end


def hand_made_data(folder: Path, prompts: list[dict]) -> Path:
    """A small data set in the builder's format (pairs of hand-written responses), so the end-to-end test does not
    depend on a random tiny model happening to produce responses of different rewards."""
    train = []
    rng = random.Random(0)
    for r in prompts[:16]:
        good, bad = "sure. here it is.", "SURE, HERE IT IS"
        train.append({**data.bradley_terry_pair(r, [good, bad], [1.0, 0.0], rng)})
    test = [data.held_out_row(r) for r in prompts[16:20]]
    provenance = {
        "task": task.TASK_NAME,
        "settings": {
            "seed": 0,
            "model": "hand-made",
            "responses_per_prompt": 2,
            "temperature": 1.0,
            "max_new_tokens": 8,
            "tau": task.BT_TAU,
        },
        "counts": {"train_prompts": 16, "train_pairs": 16, "prompts_without_pair": 0, "test_prompts": 4},
        "mu_reward": {"mean": 0.5, "stderr": 0.1, "samples": 32},
        "mu_sampling": {"seconds": 0.0, "tokens": 0, "tokens_per_second": None},
    }
    return data.write_dataset(folder, train, test, prompts[:20], provenance)


def test_tiny_benchmark_end_to_end(tiny_model_dir, tmp_path, monkeypatch, prompts):
    from benchmarks.instruction_following import run as benchmark

    ensure_punkt()  # NLTK's Punkt from the shared cache on NLTK_DATA, before the run gets a cache root of its own
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path / "cache"))
    short = [r for r in prompts if len(r["prompt"]) < 200]
    data = hand_made_data(tmp_path / "data", short)
    argv = [
        "--quick",
        "--model",
        tiny_model_dir,
        "--data",
        str(data),
        "--seeds",
        "2",
        "--methods",
        "dpo",
        "spac",
        "--no-ifeval",
        "--threads",
        "1",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out"),
    ]
    results = benchmark.main(argv)
    assert results["status"] == "complete" and not results["left"]
    cells = results["summary"]["cells"]
    assert set(cells) == {"dpo", "spac"}
    assert cells["dpo"]["in_dist_true_reward"]["count"] == 2
    paired = results["summary"]["paired_vs_dpo"]["spac"]["in_dist_true_reward"]
    assert paired["mean"] == pytest.approx(
        cells["spac"]["in_dist_true_reward"]["mean"] - cells["dpo"]["in_dist_true_reward"]["mean"]
    )
    preset = results["settings"]["theory_preset"]
    assert preset["n_pairs"] == 16 and preset["lam"] == pytest.approx(0.1 * 4)
    # 16 pairs, batch 4: one pass of DPO and SPAC's 2 parts of 8 are 4 optimizer steps each: the protocol let it run.
    assert {r["method"]: r["iterations"][-1]["optimizer_steps"] for r in results["runs"]} == {"dpo": 4, "spac": 4}
    for name in ("results.json", "table.md", "table.csv", "instruction_following.png", "protocol.json"):
        assert (tmp_path / "out" / name).exists()
    assert "| SPAC |" in (tmp_path / "out" / "table.md").read_text()
    assert all(r["iterations"][-1]["prompts_changed_vs_sft"] >= 0 for r in results["runs"])
    # A rerun reuses every finished run.
    again = benchmark.main(argv)
    assert [r["wall_seconds"] for r in again["runs"]] == [r["wall_seconds"] for r in results["runs"]]
    # --report-only computes nothing: the same cells, and IFEval (never run here) listed as left to do.
    report = benchmark.main([a for a in argv if a != "--no-ifeval"] + ["--report-only"])
    assert report["summary"]["cells"] == results["summary"]["cells"]
    assert report["status"] == "partial" and {s["step"] for s in report["left"]} == {"ifeval"}
    assert "--report-only" not in report["command"]


def test_the_theory_preset_at_its_own_budget_is_refused_before_training(tiny_model_dir, tmp_path, prompts):
    """The preset trains every iteration on all the pairs: against DPO's one pass the arms' budgets differ, and the
    comparison is refused, naming the arm and the field, before any run folder exists."""
    from benchmarks.instruction_following import run as benchmark
    from benchmarks.protocol import ProtocolError

    data = hand_made_data(tmp_path / "data", [r for r in prompts if len(r["prompt"]) < 200])
    argv = ["--quick", "--model", tiny_model_dir, "--data", str(data), "--methods", "dpo", "spac_theory"]
    argv += ["--no-ifeval", "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    # The preset's 4 iterations over all 16 pairs: 16 steps and 64 pairs, against DPO's 4 and 16.
    with pytest.raises(ProtocolError, match=r"arm 'dpo': budget\.optimizer_steps 4 differs from the comparison's 16"):
        benchmark.main(argv)
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_readme_states_the_configuration_the_code_runs():
    from benchmarks.instruction_following import methods, run
    from benchmarks.instruction_following.ifeval import CPU_MAX_GEN_TOKS

    readme = (Path(__file__).resolve().parents[1] / "benchmarks" / "instruction_following" / "README.md").read_text()
    data = run.CPU["data"]
    assert f"{data['num_train']} training prompts of at most {data['max_prompt_tokens']} tokens" in readme
    assert f"{data['responses_per_prompt']}\nsamples of at most {data['max_new_tokens']} tokens" in readme
    assert f"{data['num_test']} held-out prompts" in readme
    assert f"IFEval at {CPU_MAX_GEN_TOKS} new\ntokens" in readme and f"stops at {CPU_MAX_GEN_TOKS}" in readme
    assert f"T = {methods.THEORY_ITERATIONS} |" in readme and f"affords {methods.THEORY_ITERATIONS}" in readme


def test_readme_results_come_from_the_committed_results():
    from benchmarks.instruction_following.report import readme_block

    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "results" / "instruction_following" / "results.json").read_text())
    readme = (root / "benchmarks" / "instruction_following" / "README.md").read_text()
    assert readme_block(results) in readme  # rewrite with: python -m benchmarks.instruction_following.report
    table = (root / "results" / "instruction_following" / "table.md").read_text()
    assert ("PARTIAL" in table) == (results["status"] != "complete")
