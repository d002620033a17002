"""Self-play generation throughput: tokens per second of `spac_hf.generation.generate_responses` (the HF backend).

The prompts are the benchmark's prompts (`prompt_tokens` each, already tokenized), sampled at temperature 1 as the
trainer does (y ~ pi_t). Tokens are counted from the returned texts: with the word-level vocabulary one word is one
token, plus the EOS of a response that stopped early (a random model rarely does). A sampled special token decodes
to nothing and is not counted, so the count can only err low, by about 3/vocab of the tokens.
"""

from __future__ import annotations

import time

from .timing import median


def count_generated_tokens(texts: list[str], tokenizer, max_new_tokens: int) -> int:
    total = 0
    for text in texts:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        total += n + (1 if n < max_new_tokens else 0)  # the EOS that ended it
    return total


def measure_generation(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    repeats: int,
    device: str = "cpu",
    seed: int = 0,
) -> dict:
    """Median tokens/s over `repeats` calls, after a short warm-up call."""
    from spac_hf.generation import generate_responses

    model = model.to(device)
    kwargs = dict(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, batch_size=batch_size, seed=seed)
    generate_responses(model, tokenizer, prompt_ids[:1], **{**kwargs, "max_new_tokens": 2}, desc="warm-up")
    seconds, tokens = [], []
    for r in range(repeats):
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        start = time.perf_counter()
        texts = generate_responses(model, tokenizer, prompt_ids, **{**kwargs, "seed": seed + r}, desc="generation")
        seconds.append(time.perf_counter() - start)
        tokens.append(count_generated_tokens(texts, tokenizer, max_new_tokens))
    rates = [t / s for t, s in zip(tokens, seconds)]
    return {
        "prompts": len(prompt_ids),
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "tokens_per_call": tokens,
        "seconds_per_call": [round(s, 4) for s in seconds],
        "tokens_per_second": median(rates),
    }
