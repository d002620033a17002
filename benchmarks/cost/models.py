"""The models, tokenizer and data of the cost benchmark: Llama models from ~0.1M to ~100M parameters, built offline.

The tokenizer is a word-level vocabulary built locally ("<pad>", "<eos>", "<unk>", then the words "w3", "w4", ...): one
word is exactly one token, so a prompt of 64 words is 64 tokens and every sequence of a batch has the same length,
whatever the sizes. Its vocabulary is the model's, so every sampled token decodes to a word and re-tokenizes to the
same id (generation round-trips), and the LM head pays for a realistic vocabulary at the larger sizes.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


SPECIALS = ("<pad>", "<eos>", "<unk>")


@dataclass(frozen=True)
class ModelSize:
    """A Llama shape. Embeddings are tied, as in the small Llama-family models (SmolLM2, TinyLlama-like configs)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int

    def as_dict(self) -> dict:
        return asdict(self)


# The vocabulary grows with the model, as it does for real models: at ~100M parameters the tied embedding/LM head is a
# quarter of the weights and the LM head a sizeable share of the step (as in SmolLM2-135M, GPT-2 small).
SIZES = {
    size.name: size
    for size in (
        #         name    hidden layers heads kv  intermediate vocab
        ModelSize("0.1M", 64, 2, 4, 2, 172, 512),
        ModelSize("10M", 384, 5, 6, 2, 1024, 8192),
        ModelSize("50M", 640, 10, 10, 2, 1728, 16384),
        ModelSize("100M", 768, 12, 12, 4, 2048, 32768),
        # GPU sizes (scripts/gpu_check.sh): the shapes of Qwen2.5-0.5B and -1.5B (tied embeddings, 151,936 tokens).
        ModelSize("0.5B", 896, 24, 14, 2, 4864, 151936),
        ModelSize("1.5B", 1536, 28, 12, 2, 8960, 151936),
    )
}


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer whose ids are exactly the model's vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIALS), vocab_size)})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def build_model(size: ModelSize, tokenizer, seed: int = 0):
    """A randomly initialised LlamaForCausalLM in float32 (the same weights for a given seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=size.vocab_size,
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        num_key_value_heads=size.num_kv_heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _words(rng: random.Random, n: int, vocab_size: int) -> str:
    return " ".join(f"w{rng.randrange(len(SPECIALS), vocab_size)}" for _ in range(n))


def preference_rows(
    n: int, vocab_size: int, prompt_tokens: int, response_tokens: int, seed: int = 0, with_generated: bool = True
) -> list[dict]:
    """Rows of exactly `prompt_tokens` prompt tokens and `response_tokens` tokens per response (EOS included).

    The trainers append the EOS to each response, so a response holds `response_tokens - 1` words.
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {"prompt": _words(rng, prompt_tokens, vocab_size)}
        for response in ("chosen", "rejected", "generated") if with_generated else ("chosen", "rejected"):
            row[response] = " " + _words(rng, response_tokens - 1, vocab_size)
        rows.append(row)
    return rows


# UltraFeedback-like lengths (`--lengths ultrafeedback`). Shape: log-normal, right-skewed lengths, drawn independently
# for the prompt and for each response (chosen, rejected and generated differ in length, as they do in the data).
# Scale: UltraFeedback's prompts and responses run to hundreds of tokens (HuggingFaceH4/ultrafeedback_binarized:
# prompts from UltraChat, ShareGPT, Evol-Instruct, FLAN, ...; completions of 4 chat models); this benchmark cannot
# download it (no Hub here), so the medians are set so that prompts are about a third of an example's tokens, the
# share the issue gives for UltraFeedback, at a quarter of its absolute lengths so a CPU step stays in seconds.
# `--length-scale 4` gives UltraFeedback's order of magnitude on a GPU. The sampled lengths and the resulting FLOP
# floor are written to results.json.
ULTRAFEEDBACK_LIKE = {
    "prompt": {"median": 36, "sigma": 0.7, "min": 8, "max": 192},
    "response": {"median": 80, "sigma": 0.6, "min": 4, "max": 320},
}


def ultrafeedback_like_lengths(n: int, seed: int = 0, scale: float = 1.0) -> list[dict[str, int]]:
    """Per row: prompt tokens and tokens per response (EOS included), from `ULTRAFEEDBACK_LIKE` times `scale`."""
    import math

    rng = random.Random(seed)

    def draw(spec: dict) -> int:
        value = rng.lognormvariate(math.log(spec["median"] * scale), spec["sigma"])
        return int(min(max(round(value), spec["min"] * scale), spec["max"] * scale))

    return [
        {"prompt": draw(ULTRAFEEDBACK_LIKE["prompt"]),
         **{r: max(draw(ULTRAFEEDBACK_LIKE["response"]), 2) for r in ("chosen", "rejected", "generated")}}
        for _ in range(n)
    ]  # fmt: skip


def rows_with_lengths(
    lengths: list[dict[str, int]], vocab_size: int, seed: int = 0, with_generated: bool = True
) -> list[dict]:
    """Rows of exactly the given token counts (responses: EOS included, as in `preference_rows`)."""
    rng = random.Random(seed)
    rows = []
    for counts in lengths:
        row = {"prompt": _words(rng, counts["prompt"], vocab_size)}
        for response in ("chosen", "rejected", "generated") if with_generated else ("chosen", "rejected"):
            row[response] = " " + _words(rng, counts[response] - 1, vocab_size)
        rows.append(row)
    return rows


def length_table(settings) -> list[dict[str, int]]:
    """The token counts of each row of a benchmark's data set, for `settings` (a `StepSettings`)."""
    if settings.lengths == "fixed":
        return [
            {"prompt": settings.prompt_tokens, "chosen": settings.response_tokens,
             "rejected": settings.response_tokens, "generated": settings.response_tokens}
        ] * settings.rows  # fmt: skip
    return ultrafeedback_like_lengths(settings.rows, seed=settings.seed, scale=settings.length_scale)


def rows_for(settings, vocab_size: int) -> list[dict]:
    """The benchmark's data set for `settings`: fixed lengths (`preference_rows`) or UltraFeedback-like ones."""
    if settings.lengths == "fixed":
        return preference_rows(
            settings.rows, vocab_size, settings.prompt_tokens, settings.response_tokens, seed=settings.seed
        )
    return rows_with_lengths(length_table(settings), vocab_size, seed=settings.seed)


def flop_floor(lengths: list[dict[str, int]]) -> float:
    """(P + 3R) / (2 (P + R)) over a data set: tokens of SPAC with the prompt once over DPO's tokens (no padding)."""
    spac = sum(c["prompt"] + c["chosen"] + c["rejected"] + c["generated"] for c in lengths)
    dpo = sum(2 * c["prompt"] + c["chosen"] + c["rejected"] for c in lengths)
    return spac / dpo
