"""A coverage knob for the shipped task: preference data from a behaviour policy whose coverage we set.

The shipped pairs come from the SFT model itself (mu = pi_1), which covers every response it produces about equally.
The theory's regime is different: mu covers one good response well and everything else sparsely. This module builds
that regime on the review task, the way `benchmarks/theory` builds it in a bandit. For each training prompt x:

- the good response g(x): the best, by true reward, of `candidates` reviews drawn from the task grammar (the
  distribution the SFT corpus was drawn from), with mass `good_mass` under mu;
- `rare` other reviews drawn from the same grammar, sharing the other 1 - good_mass equally (each is rare when
  `rare` is large: the theory's sparse actions);
- one pair per prompt, y1, y2 ~ mu(.|x) independently (identical pairs kept, as in the bandit), labelled by the
  task's Bradley-Terry model of the true reward (`reviews.bradley_terry_label`, tau = reviews.BT_TAU).

The test split (the 150 held-out prompts of the true-reward evaluation) is the shipped one, unchanged, so scores are
comparable across coverage settings. Everything is pure Python and seeded: the same arguments give the same files.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.tasks import reviews
from spac_hf.utils import atomic_directory


SHIPPED_DATA = EMBEDDED_DEFAULT / "data"
CANDIDATES = 16  # reviews drawn per prompt to pick the good one


def coverage_name(good_mass: float, rare: int) -> str:
    return f"coverage_g{good_mass:g}_k{rare}"


def behaviour_policy(prompt: str, good_mass: float, rare: int, rng: random.Random) -> tuple[list[str], list[float]]:
    """mu(.|x): the responses and their probabilities; the first one is the good response g(x)."""
    candidates = [reviews.sample_review(rng, prompt) for _ in range(CANDIDATES)]
    good = max(candidates, key=lambda text: reviews.reward(prompt, text))
    others = [reviews.sample_review(rng, prompt) for _ in range(rare)]
    return [good, *others], [good_mass, *[(1.0 - good_mass) / rare] * rare]


def build_coverage_data(out: Path, good_mass: float, rare: int, seed: int = 0) -> dict:
    """Write `out/train.jsonl` (one pair per shipped training prompt, from the mu above), the shipped `test.jsonl`
    and a README with the data card's configs; return the statistics (also in `out/coverage.json`)."""
    if not 0 < good_mass <= 1:
        raise ValueError(f"`good_mass` must be in (0, 1], got {good_mass}.")
    if rare < 1:
        raise ValueError(f"`rare` (the number of rare responses per prompt) must be >= 1, got {rare}.")
    prompts = [json.loads(line)["prompt"] for line in (SHIPPED_DATA / "train.jsonl").read_text().splitlines()]
    rng = random.Random(seed)
    rows, good_in_pair, good_rewards, rare_rewards = [], 0, [], []
    for prompt in prompts:
        responses, probs = behaviour_policy(prompt, good_mass, rare, rng)
        y1, y2 = rng.choices(range(len(responses)), weights=probs, k=2)
        rows.append(reviews.bradley_terry_label(prompt, responses[y1], responses[y2], rng))
        good_in_pair += 0 in (y1, y2)
        good_rewards.append(reviews.reward(prompt, responses[0]))
        rare_rewards += [reviews.reward(prompt, text) for text in responses[1:]]
    stats = {
        "good_mass": good_mass,
        "rare": rare,
        "seed": seed,
        "pairs": len(rows),
        "pairs_with_the_good_response": good_in_pair,
        "mean_reward_good": sum(good_rewards) / len(good_rewards),
        "mean_reward_rare": sum(rare_rewards) / len(rare_rewards),
        "mean_reward_mu": good_mass * sum(good_rewards) / len(good_rewards)
        + (1 - good_mass) * sum(rare_rewards) / len(rare_rewards),
        "rare_better_than_good": sum(
            r > g for g, chunk in zip(good_rewards, _chunks(rare_rewards, rare)) for r in chunk
        ) / len(rare_rewards),
    }  # fmt: skip
    with atomic_directory(out) as tmp:
        (tmp / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        shutil.copy(SHIPPED_DATA / "test.jsonl", tmp / "test.jsonl")
        (tmp / "coverage.json").write_text(json.dumps(stats, indent=2) + "\n")
        (tmp / "README.md").write_text(_card(stats))
    return stats


def _chunks(values: list[float], size: int) -> list[list[float]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _card(stats: dict) -> str:
    return (
        "---\nconfigs:\n  - config_name: default\n    data_files:\n      - split: train\n        path: train.jsonl\n"
        "      - split: test\n        path: test.jsonl\n---\n\n"
        f"# Review pairs from a behaviour policy with set coverage (good_mass {stats['good_mass']:g}, "
        f"{stats['rare']} rare responses a prompt)\n\nBuilt by `benchmarks/ground_truth/coverage.py`; statistics in "
        "`coverage.json`. The test split is the shipped one.\n"
    )


def ensure_coverage_data(work_dir: Path, good_mass: float, rare: int, seed: int = 0) -> Path:
    """The coverage data set under `work_dir` (built once; rebuilt only if missing)."""
    out = Path(work_dir).resolve() / "data" / coverage_name(good_mass, rare)
    if not (out / "coverage.json").is_file():
        build_coverage_data(out, good_mass, rare, seed)
    return out
