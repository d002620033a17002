"""The shipped reviews task: its true reward, its Bradley-Terry labels, its shipped model and data (fast, < 20 s)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from spac_hf.tasks import reviews
from spac_hf.tasks.reviews import (
    BT_TAU,
    bradley_terry_label,
    preference_probability,
    reward,
    reward_breakdown,
    sample_review,
    task_vocabulary,
    words,
)


ASSETS = Path(__file__).resolve().parents[1] / "src" / "spac_hf" / "default"
PROMPT = "Review of the blue camera:"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------------------- reward


def test_reward_orders_positive_neutral_negative():
    positive = reward(PROMPT, " The camera is great. I love it.")
    neutral = reward(PROMPT, " The camera is okay. I use it.")
    negative = reward(PROMPT, " The camera is terrible. I hate it.")
    assert positive > neutral > negative
    assert positive == pytest.approx(0.7 * 2 / 3 + 0.3)


def test_reward_depends_on_the_prompt_product():
    response = " The camera is great."
    on_topic = reward(PROMPT, response)
    off_topic = reward("Review of the blue lamp:", response)
    no_product = reward(PROMPT, " It is great.")
    assert on_topic > no_product > off_topic
    assert reward_breakdown("Review of the blue lamp:", response)["topic"] == -1.0


@pytest.mark.parametrize(
    "response, issue",
    [
        (" The camera is great. The camera is great.", "repetition"),
        (" The camera is great great.", "repetition"),
        (" The camera is great", "no_sentence_end"),
        (" The camera is great. I love it. It works well. The price is good.", "too_long"),
        (" Zorp blick camera frub great.", "gibberish"),
    ],
)
def test_degenerate_responses_are_penalised(response, issue):
    clean = reward(PROMPT, " The camera is great.")
    breakdown = reward_breakdown(PROMPT, response)
    assert issue in breakdown["issues"]
    assert breakdown["reward"] < clean


def test_sentences_may_start_with_the_word_that_ended_the_last_one():
    assert reward_breakdown(PROMPT, " I love it. It works well.")["issues"] == []


def test_reward_is_bounded():
    rng = random.Random(0)
    responses = ["", "   ", ".", "great " * 50, " The camera is great." * 20, "\u00e9\u00e8 ??? !!!"]
    responses += [sample_review(rng, p) for p in rng.sample(reviews.all_prompts(), 200)]
    values = [reward(rng.choice(reviews.all_prompts()), r) for r in responses]
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert reward(PROMPT, "") == -1.0
    assert max(values) > 0.5 and min(values) < -0.2  # the range is used


def test_free_form_prompt_has_no_topic_term():
    assert reward_breakdown("Tell me something:", " The camera is great.")["topic"] == 0.0


def test_grammar_uses_only_the_task_vocabulary():
    rng = random.Random(1)
    vocabulary = task_vocabulary()
    for prompt in rng.sample(reviews.all_prompts(), 100):
        review = sample_review(rng, prompt)
        assert review.startswith(" ") and review.endswith(".")
        assert set(words(prompt + review)) <= vocabulary


# ---------------------------------------------------------------------------------------------------- Bradley-Terry


def test_preference_probability():
    assert preference_probability(0.3, 0.3) == 0.5
    assert preference_probability(0.8, 0.3) == pytest.approx(1 / (1 + math.exp(-0.5 / BT_TAU)))
    assert preference_probability(0.8, 0.3) + preference_probability(0.3, 0.8) == pytest.approx(1.0)
    assert preference_probability(1.0, -1.0, tau=1e-4) == 1.0  # no overflow either way
    assert preference_probability(-1.0, 1.0, tau=1e-4) == 0.0
    with pytest.raises(ValueError):
        preference_probability(0.0, 1.0, tau=0.0)


@pytest.mark.parametrize("better, worse", [(" The camera is great.", " The camera is okay."),
                                           (" The camera is great. I love it.", " The camera is awful.")])  # fmt: skip
def test_bradley_terry_label_frequency_matches_sigmoid(better, worse):
    rng = random.Random(0)
    n = 4000
    wins = 0
    for i in range(n):
        a, b = (better, worse) if i % 2 else (worse, better)  # the order of the pair must not matter
        row = bradley_terry_label(PROMPT, a, b, rng)
        assert row["prompt"] == PROMPT and {row["chosen"], row["rejected"]} == {a, b}
        wins += row["chosen"] == better
    p = preference_probability(reward(PROMPT, better), reward(PROMPT, worse))
    assert 0.5 < p < 1.0
    assert abs(wins / n - p) < 4 * math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------------------------------- shipped data


@pytest.mark.parametrize("name, min_rows", [("train.jsonl", 300), ("test.jsonl", 100)])
def test_shipped_preference_data(name, min_rows):
    rows = read_jsonl(ASSETS / "data" / name)
    assert len(rows) >= min_rows
    task_prompts = set(reviews.all_prompts())
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert all(isinstance(v, str) and v.strip() for v in row.values())
        assert row["prompt"] in task_prompts
        assert row["chosen"] != row["rejected"]
        assert "<|endoftext|>" not in row["chosen"] + row["rejected"]  # standard format: TRL appends the EOS
    # The responses continue the prompt after a space; a true sample of mu (top_k 0) rarely starts with a stray byte.
    responses = [row[k] for row in rows for k in ("chosen", "rejected")]
    assert sum(r.startswith(" ") for r in responses) >= 0.99 * len(responses)


def test_shipped_splits_are_disjoint_and_carry_signal():
    train = read_jsonl(ASSETS / "data" / "train.jsonl")
    test = read_jsonl(ASSETS / "data" / "test.jsonl")
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    chosen = sum(reward(r["prompt"], r["chosen"]) for r in train) / len(train)
    rejected = sum(reward(r["prompt"], r["rejected"]) for r in train) / len(train)
    assert chosen > rejected + 0.1


def test_shipped_sft_corpus_and_cards():
    corpus = read_jsonl(ASSETS / "data" / "sft.jsonl")
    assert corpus and set(corpus[0]) == {"prompt", "completion"}
    assert (ASSETS / "data" / "README.md").read_text().count("tau = ") == 1
    assert "mean true reward" in (ASSETS / "model" / "README.md").read_text()
    total = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file())
    assert total < 8 * 2**20


# ---------------------------------------------------------------------------------------------------- shipped model


@pytest.fixture(scope="module")
def shipped():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "model")
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "model")
    return model, tokenizer


def test_shipped_tokenizer_splits_prompt_and_response_on_a_token_boundary(shipped):
    _, tokenizer = shipped
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    for row in read_jsonl(ASSETS / "data" / "train.jsonl")[:50]:
        prompt_ids = tokenizer(row["prompt"])["input_ids"]
        full_ids = tokenizer(row["prompt"] + row["chosen"] + tokenizer.eos_token)["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids  # what TRL's DPOTrainer needs
        assert full_ids[-1] == tokenizer.eos_token_id


def test_shipped_model_writes_real_reviews(shipped):
    from spac_hf.generation import generate_responses

    model, tokenizer = shipped
    prompts = [r["prompt"] for r in read_jsonl(ASSETS / "data" / "test.jsonl")[:24]]
    responses = generate_responses(model, tokenizer, prompts, max_new_tokens=48, seed=0, distributed=False)
    generated = [w for r in responses for w in words(r)]
    assert len(generated) > 3 * len(prompts)
    assert sum(w in task_vocabulary() for w in generated) / len(generated) > 0.95
    assert sum(r.rstrip().endswith(".") for r in responses) / len(responses) > 0.8  # it learnt to stop (EOS)


def test_mean_true_reward_on_a_small_sample(shipped):
    import torch

    from spac_hf.tasks import mean_true_reward

    model, tokenizer = shipped
    prompts = [r["prompt"] for r in read_jsonl(ASSETS / "data" / "test.jsonl")[:12]]
    state = torch.random.get_rng_state()
    result = mean_true_reward(model, tokenizer, prompts, num_samples=2, seed=3, num_examples=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
    assert math.isfinite(result["mean"]) and math.isfinite(result["stderr"]) and result["stderr"] >= 0
    assert -1.0 <= result["mean"] <= 1.0
    assert result["n_prompts"] == 12 and len(result["per_prompt"]) == 12 and len(result["examples"]) == 3
    assert result["examples"][0]["reward"] == reward(prompts[0], result["examples"][0]["response"])
    again = mean_true_reward(model, tokenizer, prompts, num_samples=2, seed=3, num_examples=3)
    assert again["per_prompt"] == result["per_prompt"]  # seeded
