"""Rebuild the shipped default task assets: tokenizer, SFT model and offline preference data (seeded, offline, CPU).

    python recipes/default/build_assets.py    # writes src/spac_hf/default/{model,data}/, build_stats.json

Steps (the task itself, its grammar and its true reward are in `spac_hf.tasks.reviews`):
  1. split the task's 960 prompts into held-out test prompts and training prompts;
  2. write an SFT corpus of reviews sampled from the task grammar for the training prompts (mixed sentiment, some off
     topic, some degenerate), so the SFT model is mediocre under the true reward;
  3. train a byte-level BPE tokenizer and a small LlamaForCausalLM on it (plain torch loop, loss on the response);
  4. sample two responses per prompt from the SFT model (the behaviour policy mu, temperature 1) and label each pair
     by one Bradley-Terry draw from the true reward (tau = BT_TAU);
  5. score the SFT model on the test prompts and write the model card, the dataset card and build_stats.json.

Takes about 2 to 3 minutes on 2 CPU cores. The same seed and thread count give the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Must be set before torch starts its OpenMP threads. With the default (busy-waiting threads), one other busy process
# on a 2-core machine made every training step ~10x slower (6.5 s instead of 0.5 s); passive waiting costs nothing
# when the cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from cards import dataset_card, model_card  # next to this script
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from spac_hf.generation import generate_responses
from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.tasks import reviews
from spac_hf.tasks.true_reward import DEFAULT_MAX_NEW_TOKENS, mean_true_reward


NUM_TEST_PROMPTS = 150  # held-out prompts: the reward evaluation set (and one preference pair each, as an eval set)
SFT_REVIEWS_PER_PROMPT = 12  # SFT corpus: reviews per training prompt (810 prompts -> 9,720 reviews)
EOS_TOKEN, PAD_TOKEN = "<|endoftext|>", "<|pad|>"
VOCAB_SIZE = 640  # byte-level BPE: 256 bytes + 2 specials + merges; every task word ends up a single token or two
MAX_POSITIONS = 256  # prompt (~10 tokens) + response (<= 48 new tokens), with room for free-form prompts in the Space
# ~0.88M parameters, 3.5 MB in float32. Of its sampled sentences ~0.7% fall outside the grammar; at 0.39M parameters
# (width 96, 3 layers) it was ~2%.
MODEL_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}
# AdamW, linear warmup then cosine to 10%. 600 x 64 = ~4 epochs of the corpus: the loss reaches its floor (~1.2 nats a
# token, the entropy of the grammar) by ~500 steps.
SFT_STEPS, SFT_BATCH_SIZE, SFT_LR, SFT_WARMUP = 600, 64, 2e-3, 60
EVAL_SAMPLES_PER_PROMPT = 4  # samples per test prompt when scoring the SFT model
GENERATION_BATCH_SIZE = 128


_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", flush=True)


def split_prompts(rng: random.Random) -> tuple[list[str], list[str]]:
    prompts = reviews.all_prompts()
    rng.shuffle(prompts)
    return prompts[NUM_TEST_PROMPTS:], prompts[:NUM_TEST_PROMPTS]


def sft_corpus(train_prompts: list[str], rng: random.Random) -> list[dict[str, str]]:
    """Prompt-completion rows (TRL's standard format, so SFTTrainer could use them as they are)."""
    return [
        {"prompt": prompt, "completion": reviews.sample_review(rng, prompt)}
        for prompt in train_prompts
        for _ in range(SFT_REVIEWS_PER_PROMPT)
    ]


def train_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    # Byte level: any text (a free-form prompt in the Space) can be encoded, and " word" is one pre-token, so a prompt
    # ending in ":" and a response starting with " " split on a token boundary.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",  # decoder-only: batched generation continues right after each prompt
        model_max_length=MAX_POSITIONS,
    )


def new_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=None,  # no BOS: the text format is just prompt + response + EOS
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,  # halves the embedding cost of a tiny model
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    # Default decoding = sampling from the policy itself (y ~ pi), the way SPAC and the true-reward score sample.
    model.generation_config.update(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    return model


def tokenize_for_sft(tokenizer, rows: list[dict[str, str]]) -> list[tuple[list[int], int]]:
    """(ids of prompt + completion + EOS, number of prompt tokens): the loss is on the completion and EOS only."""
    examples = []
    for row in rows:
        prompt_ids = tokenizer(row["prompt"])["input_ids"]
        ids = tokenizer(row["prompt"] + row["completion"] + EOS_TOKEN)["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids, "the prompt must end on a token boundary"
        examples.append((ids, len(prompt_ids)))
    return examples


def collate(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(examples):  # right padding for training
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
        attention_mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_sft(model, tokenizer, rows: list[dict[str, str]], seed: int) -> float:
    examples = tokenize_for_sft(tokenizer, rows)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=SFT_LR, weight_decay=0.0, betas=(0.9, 0.98))

    def lr_factor(step: int) -> float:
        if step < SFT_WARMUP:
            return (step + 1) / SFT_WARMUP
        progress = (step - SFT_WARMUP) / max(1, SFT_STEPS - SFT_WARMUP)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model.train()
    order, cursor, running = torch.randperm(len(examples), generator=generator).tolist(), 0, None
    for step in range(SFT_STEPS):
        if cursor + SFT_BATCH_SIZE > len(order):  # a new epoch: reshuffle
            order, cursor = torch.randperm(len(examples), generator=generator).tolist(), 0
        batch = collate([examples[i] for i in order[cursor : cursor + SFT_BATCH_SIZE]], tokenizer.pad_token_id)
        cursor += SFT_BATCH_SIZE
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % 100 == 0 or step == 0:
            log(f"  SFT step {step + 1}/{SFT_STEPS}  loss {running:.3f}  lr {scheduler.get_last_lr()[0]:.1e}")
    model.eval()
    return running


def behaviour_pairs(model, tokenizer, prompts: list[str], rng: random.Random, seed: int) -> list[dict[str, str]]:
    """Two responses per prompt from mu (the SFT model, temperature 1), labelled by a Bradley-Terry draw.

    Like a cleaned real data set, it has no pair of identical responses (no preference to learn) and no empty response
    (the SFT model sometimes ends at once): those responses are sampled again, for a few rounds.
    """

    def usable(a: str, b: str) -> bool:
        return a != b and bool(a.strip()) and bool(b.strip())

    def sample_responses(prompts: list[str], seed: int) -> list[str]:
        return generate_responses(
            model,
            tokenizer,
            prompts,
            max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
            seed=seed,
            batch_size=GENERATION_BATCH_SIZE,
            distributed=False,
            desc="Sampling behaviour responses",
        )

    first = sample_responses(prompts, seed)
    second = sample_responses(prompts, seed + 1)
    for round_ in range(5):
        redo = [i for i in range(len(prompts)) if not usable(first[i], second[i])]
        if not redo:
            break
        again = sample_responses([prompts[i] for i in redo] * 2, seed + 2 + round_)
        for k, i in enumerate(redo):
            if not first[i].strip():
                first[i] = again[k]
            if not second[i].strip() or first[i] == second[i]:
                second[i] = again[len(redo) + k]
    return [reviews.bradley_terry_label(p, a, b, rng) for p, a, b in zip(prompts, first, second) if usable(a, b)]


def pair_stats(rows: list[dict[str, str]]) -> dict:
    chosen = [reviews.reward(r["prompt"], r["chosen"]) for r in rows]
    rejected = [reviews.reward(r["prompt"], r["rejected"]) for r in rows]
    agreeing = sum(c > r for c, r in zip(chosen, rejected))
    tied = sum(c == r for c, r in zip(chosen, rejected))
    return {
        "pairs": len(rows),
        "mean_reward_chosen": sum(chosen) / len(rows),
        "mean_reward_rejected": sum(rejected) / len(rows),
        # How often the label agrees with the true reward, over pairs whose rewards differ (ties are coin flips).
        "label_agreement": agreeing / max(1, len(rows) - tied),
        "tied_pairs": tied,
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=EMBEDDED_DEFAULT,
        help="where model/ and data/ go (default: the package's embedded default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out, seed = args.output_dir, args.seed
    started = time.perf_counter()
    random.seed(seed)
    torch.manual_seed(seed)

    train_prompts, test_prompts = split_prompts(random.Random(seed))
    corpus = sft_corpus(train_prompts, random.Random(seed + 1))
    log(f"prompts: {len(train_prompts)} train, {len(test_prompts)} held out; SFT corpus: {len(corpus)} reviews")

    tokenizer = train_tokenizer([r["prompt"] + r["completion"] for r in corpus])
    model = new_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tokenizer: {len(tokenizer)} tokens; model: LlamaForCausalLM, {n_params / 1e6:.2f}M parameters")

    sft_loss = train_sft(model, tokenizer, corpus, seed)
    model_dir = out / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    log(f"saved the SFT model to {model_dir}")

    label_rng = random.Random(seed + 2)
    train_rows = behaviour_pairs(model, tokenizer, train_prompts, label_rng, seed=seed + 10)
    log(f"train pairs: {len(train_rows)}")
    test_rows = behaviour_pairs(model, tokenizer, test_prompts, label_rng, seed=seed + 20)
    log(f"test pairs: {len(test_rows)}")
    write_jsonl(out / "data" / "sft.jsonl", corpus)
    write_jsonl(out / "data" / "train.jsonl", train_rows)
    write_jsonl(out / "data" / "test.jsonl", test_rows)

    score = mean_true_reward(
        model, tokenizer, test_prompts, num_samples=EVAL_SAMPLES_PER_PROMPT, seed=seed + 30,
        batch_size=GENERATION_BATCH_SIZE, num_examples=8,
    )  # fmt: skip
    log(f"SFT model mean true reward on the held-out prompts: {score['mean']:.3f} ± {score['stderr']:.3f}")
    for example in score["examples"]:
        log(f"  {example['prompt']}{example['response']!r}  r={example['reward']:.2f}")

    stats = {
        "seed": seed,
        "held_out_prompts": len(test_prompts),
        "torch_threads": torch.get_num_threads(),
        "bt_tau": reviews.BT_TAU,
        "parameters": n_params,
        "vocab_size": len(tokenizer),
        "sft_reviews": len(corpus),
        "sft_final_loss": sft_loss,
        "sft_corpus_mean_reward": sum(reviews.reward(r["prompt"], r["completion"]) for r in corpus) / len(corpus),
        "sft_model_mean_true_reward": score["mean"],
        "sft_model_stderr": score["stderr"],
        "eval_samples_per_prompt": EVAL_SAMPLES_PER_PROMPT,
        "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
        "train": pair_stats(train_rows),
        "test": pair_stats(test_rows),
        "examples": score["examples"],
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "build_stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (model_dir / "README.md").write_text(model_card(stats), encoding="utf-8")
    (out / "data" / "README.md").write_text(dataset_card(stats), encoding="utf-8")
    log(f"done: {json.dumps({k: v for k, v in stats.items() if k != 'examples'})}")


if __name__ == "__main__":
    main()
