"""The `single_constraint` data design of the instruction-following benchmark (issue 25): the kind filter, the cap
rule (a cut sample is never chosen), the pair-count and cap refusals, the label-noise numbers, the engine's
end-of-turn flags, and a resumable build on a tiny model."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from benchmarks.instruction_following import data
from benchmarks.instruction_following import single_constraint as sc


def pair(chosen: float, rejected: float) -> dict:
    return {"chosen_reward": chosen, "rejected_reward": rejected}


# ------------------------------------------------------------------------------------------------ pure rules


def test_kinds_are_kept_by_their_follow_rate_bounds_included():
    rates = {"a": 0.0, "b": 0.079, "c": 0.08, "d": 0.5, "e": 0.85, "f": 0.851, "g": 1.0}
    table = {kind: {"rate": rate} for kind, rate in rates.items()}
    assert sc.FOLLOW_RATE_BOUNDS == (0.08, 0.85)
    assert sc.kinds_in_bounds(table) == ["c", "d", "e"]
    rows = [{"id": f"p{i}", "instruction_id_list": [kind]} for i, kind in enumerate("aabd")]
    done = {
        "p0": {"rewards": [1.0, 0.0], "cut": [False, True]},
        "p1": {"rewards": [0.0, 0.0], "cut": [False, False]},
        "p2": {"rewards": [1.0, 1.0], "cut": [True, True]},
        "p3": {"rewards": [0.0, 1.0], "cut": [False, False]},
    }
    rates = sc.follow_rates(rows, done)
    assert rates["a"] == {"prompts": 2, "samples": 4, "followed": 1, "cut": 1, "rate": 0.25}
    assert rates["b"]["rate"] == 1.0 and rates["d"]["rate"] == 0.5


def test_an_ifeval_prompt_is_refused_by_name():
    from benchmarks.eval_data.fetch import ifeval_rows

    rows = [
        {"id": "alpaca_eval/1", "base_prompt": "Say hi."},
        {"id": "x/2", "base_prompt": ifeval_rows()[3]["prompt"]},
    ]
    with pytest.raises(ValueError, match=r"x/2 is an IFEval prompt"):
        data.checked_source_prompts(rows)
    assert data.checked_source_prompts(rows[:1]) == rows[:1]


def test_an_unknown_constraint_kind_is_refused_by_name():
    assert "punctuation:no_comma" in sc.candidate_kinds()
    assert sc.candidate_kinds(["punctuation:no_comma"]) == ["punctuation:no_comma"]
    with pytest.raises(ValueError, match=r"--kinds: \['punctuation:no_dots'\] not in lm-eval"):
        sc.candidate_kinds(["punctuation:no_comma", "punctuation:no_dots"])


def test_prompts_take_the_kinds_in_turn_and_none_is_lost_between_uses(tokenizer):
    bases = [{"id": f"b{i}", "base_prompt": " ".join(["cat"] * (300 if i == 1 else 3))} for i in range(8)]
    remaining = iter(bases)
    kinds = ["punctuation:no_comma", "detectable_format:title"]
    first = sc.assign(remaining, kinds, 2, tokenizer, 200, 0, "estimation")
    assert [r["id"] for r in first] == ["b0", "b2"]  # b1 is too long: skipped, and b2 takes its kind
    assert [r["instruction_id_list"][0] for r in first] == kinds
    assert first[0]["prompt"].startswith("cat cat cat\n\n") and first[0]["kwargs"] == [{}]
    second = sc.assign(remaining, kinds, 3, tokenizer, 200, 0, "held-out prompts")
    assert [r["id"] for r in second] == ["b3", "b4", "b5"]  # the next use starts where the last one stopped
    with pytest.raises(ValueError, match=r"Only 2 source prompts are left for the training prompts .*--max-prompt"):
        sc.assign(remaining, kinds, 3, tokenizer, 200, 0, "training prompts")


def test_a_cut_sample_is_never_paired_so_never_chosen():
    row = {"id": "p", "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    # The only follower was cut: the uncut samples all fail, so no pair (not a pair with the cut follower).
    done = {"p": {"responses": ["cut, follower", "b", "c"], "rewards": [1.0, 0.0, 0.0], "cut": [True, False, False]}}
    pairs, counts = sc.pair_rows([row], done, random.Random(0), 0.25)
    assert pairs == [] and counts == {"prompts_all_tied": 1, "prompts_under_two_uncut": 0}
    # A cut follower beside an uncut one: every draw pairs the uncut ones, whichever way the label falls.
    done = {"p": {"responses": ["cut", "good", "bad"], "rewards": [1.0, 1.0, 0.0], "cut": [True, False, False]}}
    chosen = set()
    for seed in range(300):
        (p,), _ = sc.pair_rows([row], done, random.Random(seed), 0.25)
        chosen.add(p["chosen"][0]["content"])
        assert {p["chosen"][0]["content"], p["rejected"][0]["content"]} == {"good", "bad"}
    assert chosen == {"good", "bad"}  # the draw flips some labels, and still never picks the cut sample
    done = {"p": {"responses": ["x", "y"], "rewards": [1.0, 0.0], "cut": [True, False]}}
    assert sc.pair_rows([row], done, random.Random(0), 0.25)[1]["prompts_under_two_uncut"] == 1


def test_label_noise_on_a_hand_made_case():
    noise = sc.label_noise([pair(1, 0), pair(0, 1), pair(1, 0), pair(0.5, 0)], tau=0.25)
    # One label of four goes against the reward order; the draw flips a full gap with 1 - sigmoid(4) = 0.017986 and a
    # half gap with 1 - sigmoid(2) = 0.119203: (3 * 0.017986 + 0.119203) / 4.
    assert noise["pairs"] == 4 and noise["flipped"] == 1 and noise["flipped_share"] == 0.25
    assert noise["expected_flip_rate"] == pytest.approx((3 * 0.0179862100 + 0.1192029220) / 4, abs=1e-9)
    assert sc.label_noise([], 0.25)["flipped_share"] is None


def test_too_few_pairs_is_refused_naming_the_settings():
    rates = {"a": {"rate": 0.5}, "b": {"rate": 0.1}}
    rows = [{"instruction_id_list": ["a"]}, {"instruction_id_list": ["b"]}]
    # 1 - 0.5^4 - 0.5^4 = 0.875 and 1 - 0.1^4 - 0.9^4 = 0.3438
    assert sc.expected_pairs(rates, rows, 4) == pytest.approx(0.875 + 1 - 0.1**4 - 0.9**4)
    settings = {"num_train": 500, "responses_per_prompt": 4}
    sc.check_pairs(sc.MIN_PAIRS, settings, "in fact")
    with pytest.raises(
        ValueError, match=r"gives in expectation 299 pairs, fewer than 300: raise --num-train \(now 500\)"
    ):
        sc.check_pairs(299, settings, "in expectation")


# ------------------------------------------------------------------------------------------------ the engine's flags


@pytest.fixture(scope="module")
def ending_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with sharper weights and a strong end-of-turn token: most samples end within a few tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
        model.model.embed_tokens.weight[tokenizer.eos_token_id] *= 10.0
    path = tmp_path_factory.mktemp("ending")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_finished_flags_agree_between_generate_and_the_engine(ending_model_dir, tmp_path):
    """A response is cut when it reached the cap without the end-of-turn token: both backends say so alike (greedy:
    the same texts), and a cut response has exactly the cap's tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spac_hf.generation import generate_responses

    tokenizer = AutoTokenizer.from_pretrained(ending_model_dir)
    model = AutoModelForCausalLM.from_pretrained(ending_model_dir)
    rng = random.Random(0)
    words = ["cat", "dog", "sun", "tree", "runs", "blue"]
    prompts = [[{"role": "user", "content": " ".join(rng.choice(words) for _ in range(4))}] for _ in range(40)]
    options = {"max_new_tokens": 3, "temperature": 0.0, "distributed": False, "return_finished": True}
    hf_texts, hf_finished = generate_responses(model, tokenizer, prompts, **options)
    ct_texts, ct_finished = generate_responses(
        ending_model_dir, tokenizer, prompts, backend="ctranslate2", engine_cache_dir=str(tmp_path / "ct2"), **options
    )
    assert ct_texts == hf_texts and ct_finished == hf_finished
    assert 0 < sum(ct_finished) < len(ct_finished)  # both kinds occur at this cap
    # Greedy: with a longer cap, an ended response is the same; a cut one goes on (its text alone cannot say which:
    # re-tokenizing a cut text here does not even give back 3 tokens).
    longer, longer_finished = generate_responses(model, tokenizer, prompts, **{**options, "max_new_tokens": 8})
    for text, finished, more, more_finished in zip(ct_texts, ct_finished, longer, longer_finished):
        if finished:
            assert more == text and more_finished
        else:
            assert more.startswith(text) and len(more) > len(text)
    plain = generate_responses(model, tokenizer, prompts[:2], max_new_tokens=3, temperature=0.0, distributed=False)
    assert plain == hf_texts[:2]  # without return_finished: the texts alone, as before


# ------------------------------------------------------------------------------------------------ the builder

KINDS = ["punctuation:no_comma", "change_case:english_lowercase", "detectable_format:title"]
SMALL = dict(num_train=10, num_test=4, prompts_per_kind=2, responses_per_prompt=3, max_new_tokens=24)
SMALL.update(max_prompt_tokens=400, batch_size=8, chunk_prompts=4, threads=1)


def odd_length_reward(row, response):
    """Test-only reward: the tiny model's samples vary in length, so about half are 'followers' for every kind."""
    return float(len(response) % 2)


def test_a_cap_that_cuts_too_many_samples_is_refused_before_the_training_samples(tiny_model_dir, tmp_path):
    out = tmp_path / "data"
    # The random tiny model almost never ends a response on its own: at 4 tokens the cap cuts nearly all of them.
    with pytest.raises(ValueError, match=r"--max-new-tokens 4 cuts \d+\.\d% of mu's 18 estimation samples"):
        sc.build_single_constraint_data(tiny_model_dir, out, kinds=KINDS, **{**SMALL, "max_new_tokens": 4})
    assert (tmp_path / "data.work" / sc.ESTIMATE_FILE).exists()
    assert not (tmp_path / "data.work" / sc.SAMPLES_FILE).exists() and not out.exists()


def test_builder_refuses_too_few_pairs_then_builds_and_resumes(ending_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "reward", odd_length_reward)
    out = tmp_path / "data"
    # At most 10 pairs from 10 prompts: refused against the 300 the design needs, before the training samples.
    with pytest.raises(ValueError, match=r"in expectation \d pairs, fewer than 300: raise --num-train \(now 10\)"):
        sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **SMALL)
    assert not (tmp_path / "data.work" / sc.SAMPLES_FILE).exists() and not out.exists()
    monkeypatch.setattr(sc, "MIN_PAIRS", 3)

    # An uninterrupted build, for reference. Every chunk drawn is announced (the pilot commits there), and the work
    # folder holds only samples (no model conversion), so it can be committed.
    progress: list[str] = []
    reference = sc.build_single_constraint_data(
        ending_model_dir, tmp_path / "reference", kinds=KINDS, on_chunk=progress.append, **SMALL
    )
    assert [line.split(", ")[0] for line in progress] == [
        "Estimating follow rates: chunk 1/2",
        "Estimating follow rates: chunk 2/2",
        "Sampling from mu: chunk 1/3",
        "Sampling from mu: chunk 2/3",
        "Sampling from mu: chunk 3/3",
    ]
    work = tmp_path / "reference.work"
    assert sorted(p.name for p in work.iterdir()) == [sc.ESTIMATE_FILE, sc.SAMPLES_FILE, "settings.json"]

    # A crash after two chunks of training samples: nothing is written where the data set goes; the rerun keeps the
    # finished chunks (the estimation pass's too) and draws what the uninterrupted build drew.
    import spac_hf.generation as generation

    real, calls = generation.generate_responses, []

    def crash_on_the_third_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the estimation pass is kept from the refused build: training chunks 1, 2, then crash
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_responses", crash_on_the_third_call)
    with pytest.raises(KeyboardInterrupt):
        sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **SMALL)
    assert not out.exists()
    assert len((tmp_path / "data.work" / sc.SAMPLES_FILE).read_text().splitlines()) == 2
    calls.clear()
    sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **SMALL)
    assert len(calls) == 1  # only the last training chunk (10 prompts: chunks of 4, 4, 2) was drawn again
    for name in ("train.jsonl", "test.jsonl", "prompts.jsonl", "samples.jsonl", "estimation_samples.jsonl"):
        assert (out / name).read_text() == (reference / name).read_text(), name

    provenance = json.loads((out / "provenance.json").read_text())
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    samples = {s["id"]: s for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    prompts = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()]
    counts, estimation = provenance["counts"], provenance["estimation"]
    # One constraint per prompt, of a kept kind; held-out and training prompts disjoint, and none from IFEval.
    assert all(len(p["instruction_id_list"]) == 1 for p in prompts)
    assert {p["instruction_id_list"][0] for p in prompts} <= set(estimation["kept"]) <= set(KINDS)
    assert len({p["id"] for p in prompts}) == counts["train_prompts"] + counts["test_prompts"] == 14
    # The follow rates come from the estimation samples (2 prompts x 3 samples per kind).
    estimated = [json.loads(x) for x in (out / "estimation_samples.jsonl").read_text().splitlines()]
    assert sum(e["samples"] for e in estimation["kinds"].values()) == estimation["samples"] == 18
    assert sum(e["followed"] for e in estimation["kinds"].values()) == sum(sum(s["rewards"]) for s in estimated)
    assert estimation["cut_share"] == sum(sum(s["cut"]) for s in estimated) / 18 < sc.MAX_CUT_SHARE
    # Pairs: never a cut response chosen, and the label-noise numbers are those of the written pairs.
    assert len(train) == counts["train_pairs"] >= 3
    for p in train:
        item = samples[p["id"]]
        uncut = {r for r, cut in zip(item["responses"], item["cut"]) if not cut}
        assert p["chosen"][0]["content"] in uncut and p["rejected"][0]["content"] in uncut
    assert provenance["label_noise"] == sc.label_noise(train, provenance["settings"]["tau"])
    card = (out / "README.md").read_text()
    assert f"{provenance['label_noise']['flipped']} of {len(train)} pairs" in card
    # A finished data set is read back; other settings are refused, naming them, before any sampling.
    calls.clear()
    assert sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **SMALL) == out and not calls
    with pytest.raises(ValueError, match="holds a data set built with other settings"):
        sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **{**SMALL, "max_new_tokens": 20})
    shutil.rmtree(out)
    with pytest.raises(ValueError, match=r"other settings \(max_new_tokens: was \[24\], now \[20\]\)"):
        sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **{**SMALL, "max_new_tokens": 20})
    # More training prompts reuse the samples drawn: only the last chunk (now 4 prompts, was 2) is drawn again.
    grown = sc.build_single_constraint_data(ending_model_dir, out, kinds=KINDS, **{**SMALL, "num_train": 12})
    assert len(calls) == 1 and json.loads((grown / "provenance.json").read_text())["counts"]["train_prompts"] == 12


def test_the_command_line_selects_the_design(monkeypatch, tmp_path):
    called = {}
    monkeypatch.setattr(sc, "build_single_constraint_data", lambda m, o, kinds, **kw: called.update(kw, kinds=kinds))
    argv = ["--model", "m", "--out", str(tmp_path), "--design", "single_constraint", "--num-train", "7"]
    data.main([*argv, "--kinds", "punctuation:no_comma"])
    assert called == {"num_train": 7, "kinds": ["punctuation:no_comma"]}
    called.clear()
    data.main([*argv, "--temperature", "0.7", "--top-p", "0.9"])
    assert called == {"num_train": 7, "temperature": 0.7, "top_p": 0.9, "kinds": None}
    with pytest.raises(SystemExit):
        data.main(["--model", "m", "--out", str(tmp_path), "--prompts-per-kind", "3"])  # v1 has no such setting
    with pytest.raises(SystemExit):
        data.main(["--model", "m", "--out", str(tmp_path), "--top-p", "0.9"])  # nor this one


def test_a_top_p_outside_its_range_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"--top-p must be in \(0, 1\] \(mu's samples\), got 0"):
        sc.build_single_constraint_data("m", tmp_path / "data", kinds=KINDS, **{**SMALL, "top_p": 0.0})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ the sampling probe


def test_probe_summary_counts_cuts_degenerate_samples_and_prompts_that_give_a_pair():
    from benchmarks.instruction_following.probe import setting_summary

    fluent = "The cat sat on the mat and then it walked to the door to look at the rain outside."
    loop = " ".join(["yes"] * 60)  # a repetition loop (60 words, one distinct 4-gram)
    items = [
        {"responses": [fluent, fluent, loop], "rewards": [1.0, 0.0, 1.0], "cut": [False, False, True]},  # a pair
        {"responses": [fluent, loop, fluent], "rewards": [1.0, 0.0, 0.0], "cut": [False, True, True]},  # one uncut
        {"responses": [fluent, fluent, fluent], "rewards": [0.0, 0.0, 0.0], "cut": [False, False, False]},  # tied
    ]
    got = setting_summary(items, tokens=90, seconds=3.0)
    assert got == {
        "prompts": 3,
        "samples": 9,
        "cut": 3,
        "cut_share": 3 / 9,
        "mean_tokens": 10.0,
        "degenerate_share": 2 / 9,
        "prompts_with_pair": 1,
        "mean_reward_uncut": 2 / 6,
        "tokens_per_second": 30.0,
    }


def test_probe_stops_at_the_first_setting_that_passes_and_resumes_without_drawing(
    ending_model_dir, tmp_path, monkeypatch
):
    import spac_hf.generation as generation

    from benchmarks.instruction_following import probe

    real, calls = generation.generate_responses, []

    def counted(*args, **kwargs):
        calls.append((kwargs["temperature"], kwargs["top_p"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_responses", counted)
    monkeypatch.setattr(probe, "LADDER", [(1.0, 1.0), (0.7, 0.9)])
    argv = ["--model", ending_model_dir, "--out", str(tmp_path), "--prompts", "4", "--max-new-tokens", "24"]
    monkeypatch.setattr(probe, "PROBE_CUT_SHARE", -1.0)  # nothing passes: every setting drawn, and the benchmark stops
    record = probe.main(argv)
    assert calls == [(1.0, 1.0), (0.7, 0.9)] and record["status"] == "finished" and record["chosen"] is None
    assert record["decision"] == "no setting of the ladder passes: the benchmark stops at the data stage"
    assert [(r["temperature"], r["top_p"], r["samples"]) for r in record["results"]] == [
        (1.0, 1.0, 16),
        (0.7, 0.9, 16),
    ]
    assert len(set(record["prompt_ids"])) == 4
    assert json.loads((tmp_path / "sampling_probe.json").read_text()) == record
    calls.clear()
    monkeypatch.setattr(probe, "PROBE_CUT_SHARE", 1.0)  # the first setting passes: chosen, nothing drawn again
    record = probe.main(argv)
    assert calls == [] and record["status"] == "finished" and record["chosen"] == {"temperature": 1.0, "top_p": 1.0}
    assert record["decision"] == "mu samples at temperature 1.0, top-p 1.0"
    assert len(record["results"]) == 1
