"""The shipped task: short product reviews, scored by a programmatic ground-truth reward.

A prompt asks for a review of one product ("Review of the blue camera:"); a response is one to three short English
sentences (" The camera is great. I love it."). The true reward r(x, y) is a lexicon sentiment score that also checks
that the review stays on the prompt's product and penalises degenerate text. Because r is known exactly, the project
can say whether alignment worked: the mean true reward of the starting model and of each iterate on held-out prompts
(see `spac_hf.tasks.true_reward.mean_true_reward`).

Everything here is pure Python (no torch), so the reward can be used anywhere: in the data builder, in tests, in the
benchmark and in the Gradio Space. `recipes/default/build_assets.py` uses the grammar below to write the SFT corpus,
and `bradley_terry_label` to turn pairs sampled from the SFT model into the offline preference data.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence


# ---------------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------------

# 20 products x 12 colours x 4 templates = 960 distinct prompts: enough for ~800 training pairs with one pair per
# prompt and a disjoint held-out set of ~150 prompts.
PRODUCTS = (
    "camera", "phone", "laptop", "lamp", "kettle", "backpack", "jacket", "watch", "speaker", "blender",
    "chair", "desk", "mug", "bottle", "tent", "bicycle", "keyboard", "printer", "toaster", "umbrella",
)  # fmt: skip
COLOURS = ("red", "blue", "green", "black", "white", "grey", "yellow", "orange", "purple", "pink", "brown", "silver")
# Standard (not chat) prompts. Each ends with ":" so that the response, which starts with a space, begins on a token
# boundary: the tokenized prompt is then a prefix of the tokenized prompt + response (TRL's DPOTrainer relies on it).
PROMPT_TEMPLATES = (
    "Review of the {colour} {product}:",
    "Customer review of the {colour} {product}:",
    "Short review of the {colour} {product}:",
    "My review of the {colour} {product}:",
)


def all_prompts() -> list[str]:
    """Every prompt of the task, in a fixed order (template, then product, then colour)."""
    return [
        template.format(colour=colour, product=product)
        for template in PROMPT_TEMPLATES
        for product in PRODUCTS
        for colour in COLOURS
    ]


def prompt_product(prompt: str) -> str | None:
    """The product a prompt asks about: the last known product word in it, or None (e.g. a free-form Space prompt)."""
    found = [word for word in words(prompt) if word in _PRODUCT_SET]
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------------------------------
# Lexicon: the words a review is built from, by sentiment. The reward counts exactly these words.
# ---------------------------------------------------------------------------------------------------------------------

SENTIMENTS = ("positive", "neutral", "negative")
ADJECTIVES = {
    "positive": ("great", "good", "excellent", "perfect", "lovely", "solid", "superb", "wonderful"),
    "neutral": ("okay", "fine", "average", "ordinary", "acceptable", "plain", "standard", "normal"),
    "negative": ("bad", "poor", "terrible", "awful", "flimsy", "disappointing", "useless", "weak"),
}
VERBS = {  # "I {verb} this camera."
    "positive": ("love", "like", "enjoy", "recommend"),
    "neutral": ("own", "use", "have", "bought"),
    "negative": ("hate", "dislike", "regret", "returned"),
}
ADVERBS = {  # "It works {adverb}."
    "positive": ("well", "perfectly", "nicely", "beautifully"),
    "neutral": ("normally", "adequately", "reasonably", "predictably"),
    "negative": ("badly", "poorly", "terribly", "slowly"),
}
# Sentiment-free slot fillers. "very" & co. carry no score: the lexicon score does not model intensity.
ASPECTS = ("price", "design", "quality", "size", "finish", "packaging", "weight", "delivery", "manual", "colour")
INTENSIFIERS = ("very", "really", "quite", "truly")

POSITIVE_WORDS = frozenset(ADJECTIVES["positive"] + VERBS["positive"] + ADVERBS["positive"])
NEUTRAL_WORDS = frozenset(ADJECTIVES["neutral"] + VERBS["neutral"] + ADVERBS["neutral"])
NEGATIVE_WORDS = frozenset(ADJECTIVES["negative"] + VERBS["negative"] + ADVERBS["negative"])
_PRODUCT_SET = frozenset(PRODUCTS)

# ---------------------------------------------------------------------------------------------------------------------
# Grammar: sentence templates. Every slot of one sentence takes words of that sentence's sentiment.
# ---------------------------------------------------------------------------------------------------------------------

PRODUCT_SENTENCES = (  # name the product: these keep a review on topic
    "The {product} is {adjective}.",
    "This {colour} {product} is {adjective}.",
    "I {verb} this {product}.",
    "My {product} works {adverb}.",
)
GENERIC_SENTENCES = (  # name no product
    "The {aspect} is {adjective}.",
    "The {aspect} and the {aspect2} are {adjective}.",
    "I {verb} it.",
    "It works {adverb}.",
    "Overall it is {adjective}.",
)
_FILLER_WORDS = frozenset(
    "the this my is are it i and works overall of review customer short".split()
)  # every other word of the templates above


def task_vocabulary() -> frozenset[str]:
    """Every word the prompts and the grammar can produce (lower case): the words a good model of the task uses."""
    return (
        POSITIVE_WORDS | NEUTRAL_WORDS | NEGATIVE_WORDS | _PRODUCT_SET | frozenset(COLOURS)
        | frozenset(ASPECTS) | frozenset(INTENSIFIERS) | _FILLER_WORDS
    )  # fmt: skip


# How the SFT corpus mixes reviews. The mixture is what makes the SFT model mediocre under the true reward (mean about
# 0.2 to 0.3 out of a best of about 0.8), leaving clear room for preference optimisation to improve it.
SENTIMENT_MIX = {"positive": 1 / 3, "neutral": 1 / 3, "negative": 1 / 3}  # the review's overall sentiment
SENTENCE_AGREEMENT = 0.7  # chance a sentence has the review's sentiment; otherwise one of the other two, uniformly
FIRST_SENTENCE_NAMES_PRODUCT = 0.8  # chance the first sentence names the product (else the review names none)
LATER_SENTENCE_NAMES_PRODUCT = 0.3  # same, for each later sentence
INTENSIFIER_RATE = 0.25  # chance an adjective gets "very" & co. in front of it
OFF_TOPIC_RATE = 0.15  # chance a review is about another product than the prompt's
REPEAT_RATE = 0.08  # chance a review repeats one of its sentences (degenerate)
TOO_LONG_RATE = 0.08  # chance a review has 4-5 sentences instead of 1-3 (degenerate)


def sample_sentence(rng: random.Random, sentiment: str, product: str, colour: str, *, names_product: bool) -> str:
    template = rng.choice(PRODUCT_SENTENCES if names_product else GENERIC_SENTENCES)
    adjective = rng.choice(ADJECTIVES[sentiment])
    if rng.random() < INTENSIFIER_RATE:
        adjective = f"{rng.choice(INTENSIFIERS)} {adjective}"
    aspect, aspect2 = rng.sample(ASPECTS, 2)
    return template.format(
        product=product,
        colour=colour,
        adjective=adjective,
        verb=rng.choice(VERBS[sentiment]),
        adverb=rng.choice(ADVERBS[sentiment]),
        aspect=aspect,
        aspect2=aspect2,
    )


def sample_review(rng: random.Random, prompt: str) -> str:
    """One review for `prompt` from the SFT corpus distribution (mixed sentiment, sometimes off topic or degenerate).

    The review starts with a space and ends with a full stop, so that `prompt + review` is the natural text.
    """
    product = prompt_product(prompt) or rng.choice(PRODUCTS)
    colour = next((w for w in words(prompt) if w in COLOURS), rng.choice(COLOURS))
    if rng.random() < OFF_TOPIC_RATE:
        product = rng.choice([p for p in PRODUCTS if p != product])
    sentiment = rng.choices(list(SENTIMENT_MIX), weights=list(SENTIMENT_MIX.values()))[0]
    n_sentences = rng.randint(4, 5) if rng.random() < TOO_LONG_RATE else rng.randint(1, 3)
    sentences = []
    for i in range(n_sentences):
        if rng.random() < SENTENCE_AGREEMENT:
            sentence_sentiment = sentiment
        else:
            sentence_sentiment = rng.choice([s for s in SENTIMENTS if s != sentiment])
        names_product = rng.random() < (FIRST_SENTENCE_NAMES_PRODUCT if i == 0 else LATER_SENTENCE_NAMES_PRODUCT)
        sentences.append(sample_sentence(rng, sentence_sentiment, product, colour, names_product=names_product))
    if rng.random() < REPEAT_RATE:
        i = rng.randrange(len(sentences))
        sentences.insert(i + 1, sentences[i])
    return " " + " ".join(sentences)


# ---------------------------------------------------------------------------------------------------------------------
# The true reward
# ---------------------------------------------------------------------------------------------------------------------

SENTIMENT_WEIGHT = 0.7  # weight of the lexicon sentiment score, in [-1, 1]
TOPIC_WEIGHT = 0.3  # weight of the topic score: +1 on the prompt's product, 0 no product named, -1 another product
ISSUE_PENALTY = 0.5  # subtracted once per degeneracy issue found (see `degeneracy_issues`)
MAX_SENTENCES = 3  # a review is "too long" past this many sentences ...
MAX_WORDS = 30  # ... or this many words
MAX_UNKNOWN_FRACTION = 0.25  # "gibberish" when more than this fraction of the words are not in `task_vocabulary()`
REWARD_RANGE = (-1.0, 1.0)  # the reward is clipped to this range; an empty response gets the minimum

_WORD = re.compile(r"[a-z]+")
_SENTENCE_END = re.compile(r"[.!?]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def sentences(text: str) -> list[str]:
    """The sentences of `text`, normalised (lower case, single spaces, no end mark), empty pieces dropped."""
    return [" ".join(words(piece)) for piece in _SENTENCE_END.split(text) if words(piece)]


def sentiment_score(text: str) -> float:
    """(positive - negative) / (positive + negative + neutral + 1) over lexicon words, in (-1, 1).

    Neutral words dilute the score and the +1 keeps a single word from saturating it: "great" scores 0.5, "great ...
    love" 0.67, "okay" 0, "great ... okay" 0.33, "awful" -0.5.
    """
    ws = words(text)
    pos = sum(w in POSITIVE_WORDS for w in ws)
    neg = sum(w in NEGATIVE_WORDS for w in ws)
    neu = sum(w in NEUTRAL_WORDS for w in ws)
    return (pos - neg) / (pos + neg + neu + 1)


def topic_score(prompt: str, response: str) -> float:
    """+1 if the response names the prompt's product and no other, -1 if it names another product, 0 otherwise."""
    product = prompt_product(prompt)
    if product is None:
        return 0.0
    named = {w for w in words(response) if w in _PRODUCT_SET}
    if named - {product}:
        return -1.0
    return 1.0 if product in named else 0.0


def degeneracy_issues(response: str) -> list[str]:
    """The ways a response is degenerate: repetition, no sentence end (e.g. cut off), too long, gibberish."""
    ws = words(response)
    issues = []
    sents = sentences(response)
    # A repeated sentence, or a word twice in a row inside a sentence ("it. It works" across sentences is fine).
    stutter = any(a == b for s in sents for a, b in zip(s.split(), s.split()[1:]))
    if len(set(sents)) < len(sents) or stutter:
        issues.append("repetition")
    if not response.rstrip().endswith((".", "!", "?")):
        issues.append("no_sentence_end")
    if len(sents) > MAX_SENTENCES or len(ws) > MAX_WORDS:
        issues.append("too_long")
    vocabulary = task_vocabulary()
    if sum(w not in vocabulary for w in ws) > MAX_UNKNOWN_FRACTION * len(ws):
        issues.append("gibberish")
    return issues


def reward_breakdown(prompt: str, response: str) -> dict:
    """The true reward and its parts, for display (the Space) and debugging."""
    if not words(response):
        return {"reward": REWARD_RANGE[0], "sentiment": 0.0, "topic": 0.0, "issues": ["empty"]}
    sentiment = sentiment_score(response)
    topic = topic_score(prompt, response)
    issues = degeneracy_issues(response)
    raw = SENTIMENT_WEIGHT * sentiment + TOPIC_WEIGHT * topic - ISSUE_PENALTY * len(issues)
    value = min(max(raw, REWARD_RANGE[0]), REWARD_RANGE[1])
    return {"reward": value, "sentiment": sentiment, "topic": topic, "issues": issues}


def reward(prompt: str, response: str) -> float:
    """The ground-truth reward r(x, y) in [-1, 1]: higher for positive, on-topic, well-formed reviews.

    >>> reward("Review of the blue camera:", " The camera is great. I love it.")  # 0.7 * 2/3 + 0.3
    0.7666666666666666
    """
    return reward_breakdown(prompt, response)["reward"]


# ---------------------------------------------------------------------------------------------------------------------
# Bradley-Terry labels
# ---------------------------------------------------------------------------------------------------------------------

# Temperature of the Bradley-Terry labeller: P(y1 > y2) = sigmoid((r(y1) - r(y2)) / tau); the paper's r* is r / tau.
# With tau = 0.25 a reward gap of 0.3 (positive vs neutral sentence) is labelled right 77% of the time, a gap of 0.1
# only 60%: noisy like human preferences, yet with enough signal for ~800 pairs to move a small model.
BT_TAU = 0.25


def preference_probability(reward_a: float, reward_b: float, tau: float = BT_TAU) -> float:
    """Bradley-Terry: the probability that a response with `reward_a` is preferred to one with `reward_b`."""
    if not tau > 0:
        raise ValueError(f"`tau` must be > 0, got {tau}.")
    z = (reward_a - reward_b) / tau
    # Written so that exp never overflows, whichever the sign of z.
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def bradley_terry_label(
    prompt: str, response_a: str, response_b: str, rng: random.Random, tau: float = BT_TAU
) -> dict[str, str]:
    """Label a pair by one draw from the Bradley-Terry model of the true reward: a TRL preference row.

    Returns {"prompt", "chosen", "rejected"}; the better response is chosen with probability
    sigmoid((r(a) - r(b)) / tau), so some labels are wrong, as in real preference data.
    """
    p_a = preference_probability(reward(prompt, response_a), reward(prompt, response_b), tau)
    chosen, rejected = (response_a, response_b) if rng.random() < p_a else (response_b, response_a)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and its standard error (sample std / sqrt(n)); the error is NaN for fewer than two values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)
