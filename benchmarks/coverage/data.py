"""The regimes' data: which responses the preference data can show, and the starting model pi_1.

Prompts. The task has 960 prompts: the 150 shipped test prompts (scored only once a checkpoint is chosen) and the 810
training prompts. `VALIDATION_PROMPTS` of the training prompts (a fixed draw, the same for every regime and seed) are
held out as the validation split that tuning and checkpoint selection score on; the other 720 carry the training
pairs, one pair each (720 / 16 = 45 optimizer steps per epoch, no partial batch).

Regimes (`REGIMES`):
- `on_policy`: the shipped pairs of the 720 training prompts, sampled from the SFT model itself (mu = pi_1). Not
  synthetic: the same pairs for every seed (the seed changes the training order, the self-play and evaluation
  samples).
- `covered`: the theory's regime. Per prompt, mu puts mass `GOOD_MASS` on the best of `CANDIDATES` reviews drawn from
  the task grammar and spreads the rest over `RARE` other grammar reviews (`benchmarks.ground_truth.coverage`, the same
  knob). One pair per prompt, y1, y2 ~ mu, labelled by the task's Bradley-Terry model. Redrawn per seed.
- `uncovered`: the same shape, but the covered response is the median of the candidates by true reward, and the rare
  ones are grammar reviews that score strictly below it: better reviews exist (the best candidate is one), the data
  never show one. Redrawn per seed.
- `covered_mu`, `uncovered_mu`: the same data, and the starting model is the SFT model fine-tuned on `MU_SAMPLES`
  responses per training prompt drawn from that seed's mu (`mu_start_model`), so pi_1 is close to mu, as the theory
  assumes, and a gain cannot come from imitating data better than the starting model.

Everything except the mu fine-tuning is pure Python and seeded: the same seed gives the same pairs.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.tasks import reviews


REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DATA = EMBEDDED_DEFAULT / "data"
SHIPPED_MODEL = EMBEDDED_DEFAULT / "model"

VALIDATION_PROMPTS = 90
VALIDATION_DRAW_SEED = 24  # fixed: the validation split is the same for every regime, arm and seed
GOOD_MASS = 0.5
RARE = 29
CANDIDATES = 16
MU_SAMPLES = 4  # responses per training prompt the mu fine-tuning imitates (720 x 4 = 2880 rows)


@dataclass(frozen=True)
class Regime:
    name: str
    covered: str | None  # None: the shipped on-policy pairs; "best" or "median": which candidate mu covers
    start: str  # "sft": the shipped SFT model; "mu": the SFT model fine-tuned on mu's samples
    description: str


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in (
        Regime("covered_mu", "best", "mu", "the optimum covered, pi_1 = mu (the theory's assumption)"),
        Regime("covered", "best", "sft", "the optimum covered, pi_1 = the SFT model (worse than mu)"),
        Regime("on_policy", None, "sft", "the shipped pairs sampled from the SFT model (mu = pi_1)"),
        Regime("uncovered", "median", "sft", "only a middling response covered, pi_1 = the SFT model"),
        Regime("uncovered_mu", "median", "mu", "only a middling response covered, pi_1 = mu"),
    )
}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prompt_splits() -> tuple[list[str], list[str], list[str]]:
    """(training prompts, validation prompts, test prompts), each in a fixed order."""
    train = [row["prompt"] for row in _read_jsonl(SHIPPED_DATA / "train.jsonl")]
    validation = set(random.Random(VALIDATION_DRAW_SEED).sample(train, VALIDATION_PROMPTS))
    test = list(dict.fromkeys(row["prompt"] for row in _read_jsonl(SHIPPED_DATA / "test.jsonl")))
    return [p for p in train if p not in validation], [p for p in train if p in validation], test


def behaviour_policy(prompt: str, covered: str, rng: random.Random) -> tuple[list[str], list[float], float]:
    """mu(.|x): responses, probabilities (the covered one first) and the best candidate's true reward."""
    candidates = sorted(
        (reviews.sample_review(rng, prompt) for _ in range(CANDIDATES)), key=lambda text: reviews.reward(prompt, text)
    )
    best = reviews.reward(prompt, candidates[-1])
    if covered == "best":
        good = candidates[-1]
        others = [reviews.sample_review(rng, prompt) for _ in range(RARE)]
    elif covered == "median":
        good = candidates[len(candidates) // 2]
        ceiling, others = reviews.reward(prompt, good), []
        while len(others) < RARE:  # only reviews worse than the covered one: nothing better ever reaches the data
            text = reviews.sample_review(rng, prompt)
            if reviews.reward(prompt, text) < ceiling:
                others.append(text)
    else:
        raise ValueError(f"`covered` must be 'best' or 'median', got {covered!r}.")
    return [good, *others], [GOOD_MASS, *[(1 - GOOD_MASS) / RARE] * RARE], best


@dataclass(frozen=True)
class RegimeData:
    pairs: list[dict]  # {"prompt", "chosen", "rejected"}
    mu_samples: list[dict]  # {"prompt", "completion"}: what the pi_1 = mu fine-tuning imitates (empty: on_policy)
    stats: dict  # mu's expected true reward, the best candidate's, how often the covered response is in a pair

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.pairs, sort_keys=True).encode()).hexdigest()


def regime_data(regime: str, seed: int) -> RegimeData:
    """The training pairs (and mu's samples) of `regime` for `seed`; the same arguments give the same data."""
    spec = REGIMES[regime]
    train, _, _ = prompt_splits()
    if spec.covered is None:
        keep = set(train)
        pairs = [row for row in _read_jsonl(SHIPPED_DATA / "train.jsonl") if row["prompt"] in keep]
        return RegimeData(pairs, [], {"pairs": len(pairs)})
    # Distinct streams per regime shape and seed; covered and covered_mu share their data on purpose.
    rng = random.Random(f"{spec.covered}-{seed}")
    pairs, samples, mu_reward, best_reward, covered_in_pair = [], [], 0.0, 0.0, 0
    for prompt in train:
        responses, probs, best = behaviour_policy(prompt, spec.covered, rng)
        i, j = rng.choices(range(len(responses)), weights=probs, k=2)
        pairs.append(reviews.bradley_terry_label(prompt, responses[i], responses[j], rng))
        covered_in_pair += 0 in (i, j)
        for k in rng.choices(range(len(responses)), weights=probs, k=MU_SAMPLES):
            samples.append({"prompt": prompt, "completion": responses[k]})
        mu_reward += sum(p * reviews.reward(prompt, text) for p, text in zip(probs, responses))
        best_reward += best
    stats = {
        "pairs": len(pairs),
        "mu_true_reward": mu_reward / len(train),  # exact expectation over mu, mean over training prompts
        "best_candidate_true_reward": best_reward / len(train),
        "pairs_with_the_covered_response": covered_in_pair,
    }
    return RegimeData(pairs, samples, stats)
