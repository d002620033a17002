"""What the tests share besides fixtures: a tiny Llama and its tokenizer, small preference data, CPU training options.

Imported by the tests and by the scripts they start (`run_tiny_loop.py`); the fixtures in conftest.py build on it.
"""

from __future__ import annotations

import random

import torch


WORDS = (
    "the a cat dog bird sun moon tree river stone house road car book song light dark happy sad quick slow "
    "red blue green small big old new good bad warm cold runs sits sings reads walks sees finds keeps likes "
    "and but with under over near far today night morning yes no maybe because very really"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def sentence(rng: random.Random, n_min: int = 2, n_max: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(n_min, n_max)))


def build_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def preference_rows(n: int, seed: int = 0, conversational: bool = False) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt, chosen, rejected = sentence(rng), sentence(rng), sentence(rng)
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            rows.append({"prompt": prompt + ":", "chosen": " " + chosen, "rejected": " " + rejected})
    return rows


CPU_TRAINING = dict(
    use_cpu=True,
    bf16=False,
    report_to=[],
    logging_steps=1,
    save_strategy="no",
    max_length=64,
    max_new_tokens=8,
    per_device_train_batch_size=4,
    per_device_eval_batch_size=4,
    disable_tqdm=True,
)


def rows_with_generated(n=8, seed=0, conversational=False):
    rng = random.Random(seed + 100)
    rows = preference_rows(n, seed=seed, conversational=conversational)
    for row in rows:
        text = " " + sentence(rng)
        row["generated"] = [{"role": "assistant", "content": text.strip()}] if conversational else text
    return rows


def perturb(model, seed=0, scale=0.05):
    """Move the policy away from the reference (where every log-ratio, hence every comparison, is trivially 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def batch_loss(trainer, n=4):
    examples = [trainer.train_dataset[i] for i in range(n)]
    inputs = trainer.data_collator(examples)
    trainer.model.train()  # dropout is disabled by the config; train mode files the metrics under "train"
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return loss.detach(), grads
