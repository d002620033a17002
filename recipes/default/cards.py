"""The model card and the dataset card of the shipped default task, filled in with the numbers of a build."""

from __future__ import annotations

from spac_hf.tasks import reviews


REBUILD = "python recipes/default/build_assets.py"


def _examples_table(examples: list[dict]) -> str:
    rows = ["| prompt | sampled response | true reward |", "|---|---|---|"]
    for e in examples:
        response = e["response"].replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {e['prompt']} | {response} | {e['reward']:.2f} |")
    return "\n".join(rows)


def _reward_summary() -> str:
    return f"""\
r(x, y) = {reviews.SENTIMENT_WEIGHT} * sentiment + {reviews.TOPIC_WEIGHT} * topic - {reviews.ISSUE_PENALTY} * (number of \
degeneracy issues), clipped to {list(reviews.REWARD_RANGE)} (`spac_hf.tasks.reviews.reward`):

- sentiment = (positive - negative) / (positive + negative + neutral + 1), counting lexicon words;
- topic = +1 if the review names the prompt's product and no other, -1 if it names another product, 0 if none;
- issues: a repeated sentence or word, no sentence end (e.g. cut off), more than {reviews.MAX_SENTENCES} sentences or \
{reviews.MAX_WORDS} words, more than {reviews.MAX_UNKNOWN_FRACTION:.0%} of the words outside the task vocabulary;
- an empty response scores {reviews.REWARD_RANGE[0]}.

"The camera is great. I love it." scores 0.77 for "Review of the blue camera:"; "The camera is okay." 0.30; \
"The camera is terrible." -0.05; "The lamp is great." 0.05 (off topic)."""


def model_card(stats: dict) -> str:
    return f"""\
---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [spac-hf, toy, sft]
---

# spac-hf default SFT model: short product reviews

A tiny `LlamaForCausalLM` ({stats["parameters"]:,} parameters, float32) with a byte-level BPE tokenizer \
({stats["vocab_size"]} tokens), trained from scratch on a synthetic corpus of short product reviews. It is the starting \
model (pi_1 = pi_ref) of the shipped SPAC task: `accelerate launch -m spac_hf.scripts.spac` aligns it on CPU in minutes, and its \
quality is measured exactly by the task's programmatic true reward. It is a test and demonstration model, nothing else.

- Format: standard text, no chat template. Prompt "Review of the blue camera:", response " The camera is great.", \
then the EOS token `<|endoftext|>`. Pad token `<|pad|>`, left padding, no BOS.
- Default decoding (`generation_config.json`): sampling at temperature 1 with top_k 0 and top_p 1, i.e. y ~ pi, at \
most {stats["max_new_tokens"]} new tokens.
- Training: {stats["sft_reviews"]:,} reviews from the task grammar, loss on the response and EOS, AdamW, seed \
{stats["seed"]}; final training loss {stats["sft_final_loss"]:.3f} nats a token.
- The corpus mixes positive, neutral and negative reviews, some off topic and some degenerate, so the model is \
mediocre by design: its mean true reward on the {stats["held_out_prompts"]} held-out prompts is \
**{stats["sft_model_mean_true_reward"]:.3f} ± {stats["sft_model_stderr"]:.3f}** (standard error, \
{stats["eval_samples_per_prompt"]} samples a prompt), where a perfect review scores about 0.8.

## True reward

{_reward_summary()}

## Samples (temperature 1)

{_examples_table(stats["examples"])}

## Rebuild

`{REBUILD}` rebuilds the tokenizer, this model and the preference data from the seed (about {stats["build_seconds"] / 60:.0f} \
minutes on 2 CPU cores).
"""


def dataset_card(stats: dict) -> str:
    train, test = stats["train"], stats["test"]
    return f"""\
---
license: apache-2.0
task_categories: [text-generation]
tags: [spac-hf, preference, dpo, synthetic]
configs:
  - config_name: default
    data_files:
      - split: train
        path: train.jsonl
      - split: test
        path: test.jsonl
  - config_name: sft
    data_files:
      - split: train
        path: sft.jsonl
---

# spac-hf default preference data: short product reviews

Offline preference data for the shipped SPAC task, in TRL's standard preference format (`prompt`, `chosen`, \
`rejected`, non-empty strings; responses start with a space and carry no EOS: TRL adds it). `DPOTrainer` and \
`SPACTrainer` accept it as it is.

| file | rows | what |
|---|---|---|
| `train.jsonl` | {train["pairs"]} | preference pairs on the training prompts (one pair a prompt) |
| `test.jsonl` | {test["pairs"]} | held-out prompts, one preference pair each: the prompts of the true-reward evaluation and an eval set |
| `sft.jsonl` | {stats["sft_reviews"]:,} | `prompt`, `completion`: the corpus the SFT model was trained on (training prompts only) |

## How it was made

1. The task has 960 prompts ("Review of the blue camera:", {len(reviews.PRODUCTS)} products x {len(reviews.COLOURS)} \
colours x {len(reviews.PROMPT_TEMPLATES)} templates); {stats["held_out_prompts"]} of them, chosen at random, are held out.
2. Behaviour policy mu = the shipped SFT model (`../model`). For each prompt two responses are sampled from it at \
temperature 1 (top_k 0, top_p 1, at most {stats["max_new_tokens"]} new tokens); an identical pair is sampled again.
3. Each pair is labelled by one draw from a Bradley-Terry model of the true reward: \
P(y1 preferred to y2) = sigmoid((r(x, y1) - r(x, y2)) / tau) with **tau = {stats["bt_tau"]}**. Labels are therefore \
noisy, like human preferences: the chosen response has the higher true reward in {train["label_agreement"]:.0%} of the \
training pairs whose rewards differ ({train["tied_pairs"]} pairs are exact ties, labelled by a coin flip).

| split | pairs | mean r(chosen) | mean r(rejected) | labels agreeing with r |
|---|---|---|---|---|
| train | {train["pairs"]} | {train["mean_reward_chosen"]:.3f} | {train["mean_reward_rejected"]:.3f} | \
{train["label_agreement"]:.1%} |
| test | {test["pairs"]} | {test["mean_reward_chosen"]:.3f} | {test["mean_reward_rejected"]:.3f} | \
{test["label_agreement"]:.1%} |

The SFT model's mean true reward on the held-out prompts is **{stats["sft_model_mean_true_reward"]:.3f} ± \
{stats["sft_model_stderr"]:.3f}** ({stats["eval_samples_per_prompt"]} samples a prompt; the SFT corpus itself averages \
{stats["sft_corpus_mean_reward"]:.3f}); a perfect review scores about 0.8. Alignment worked if an iterate's mean true \
reward on the test prompts rises clearly above that (`spac_hf.tasks.mean_true_reward`).

The data carry that signal: on the seed-0 build, one epoch of TRL's `DPOTrainer` from the SFT model on `train.jsonl` \
(learning rate 5e-4, beta 0.1, batch 16, max_length 64, about 15 s on 2 CPU cores) raised the mean true reward on the \
test prompts from 0.12 to about 0.35 (standard error about 0.015), and iterative DPO on the three thirds (reference = \
previous iterate) raised it at every iteration.

## True reward

{_reward_summary()}

## Rebuild

`{REBUILD}` (seed {stats["seed"]}, {stats["torch_threads"]} torch threads; the same seed and thread count give the \
same files).
"""
