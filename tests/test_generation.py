"""Self-play generation: batching with left padding changes nothing, order is kept, formats are accepted."""

import random

import pytest
import torch

from spac_hf.data import tokenize_prompt
from spac_hf.generation import add_generated_column, generate_responses

from helpers import sentence


@pytest.fixture
def sharp_model(model):
    """The tiny model with larger weights, so greedy decoding has clear winners (no float near-ties)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    return model


def prompts(n=7, seed=0):
    rng = random.Random(seed)
    return [sentence(rng, 1, 9) + ":" for _ in range(n)]  # lengths differ, so batches need padding


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(sharp_model, tokenizer):
    texts = prompts()
    batched = generate_responses(sharp_model, tokenizer, texts, temperature=0.0, max_new_tokens=6, batch_size=4)
    single = generate_responses(sharp_model, tokenizer, texts, temperature=0.0, max_new_tokens=6, batch_size=1)
    assert batched == single
    # ...and equal to a plain `generate` call on each prompt alone.
    for text, response in zip(texts, batched):
        ids = torch.tensor([tokenize_prompt(tokenizer, {"prompt": text})])
        out = sharp_model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert response == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_sampling_is_reproducible_with_the_seed(sharp_model, tokenizer):
    texts = prompts(6)
    first = generate_responses(sharp_model, tokenizer, texts, max_new_tokens=6, seed=3)
    again = generate_responses(sharp_model, tokenizer, texts, max_new_tokens=6, seed=3)
    other = generate_responses(sharp_model, tokenizer, texts, max_new_tokens=6, seed=4)
    assert first == again
    assert first != other


def test_conversational_and_tokenized_prompts(sharp_model, tokenizer):
    messages = [[{"role": "user", "content": p}] for p in prompts(3)]
    from_messages = generate_responses(sharp_model, tokenizer, messages, temperature=0.0, max_new_tokens=5)
    token_ids = [tokenize_prompt(tokenizer, {"prompt": m}) for m in messages]
    from_ids = generate_responses(sharp_model, tokenizer, token_ids, temperature=0.0, max_new_tokens=5)
    assert from_messages == from_ids


def test_add_generated_column_keeps_the_format(sharp_model, tokenizer):
    from datasets import Dataset

    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": "yes"}]}
        for p in prompts(3)
    ]
    dataset = add_generated_column(
        Dataset.from_list(rows), sharp_model, tokenizer, conversational=True, max_new_tokens=4
    )
    assert len(dataset) == 3
    assert all(g[0]["role"] == "assistant" and isinstance(g[0]["content"], str) for g in dataset["generated"])


def test_vllm_backend_needs_a_path(sharp_model, tokenizer):
    with pytest.raises(TypeError, match="path"):
        generate_responses(sharp_model, tokenizer, prompts(1), backend="vllm")
    with pytest.raises(ValueError, match="backend"):
        generate_responses(sharp_model, tokenizer, prompts(1), backend="tgi")
