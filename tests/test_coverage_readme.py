"""Every number the top-level README quotes from the coverage benchmark comes from results/coverage/results.json:
decision lines recomputed with `benchmarks.protocol.decide` from the per-run records, arm rewards and starting
points read from its table. Regimes still running (`covered` while its runs are added) may be named, not quoted."""

import json
import re
from pathlib import Path

import pytest

from benchmarks.coverage import design
from benchmarks.protocol import decide, quote, quoted


ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "results" / "coverage" / "results.json").read_text())
REGIMES = sorted({r["regime"] for r in RESULTS["records"]} | {d["regime"] for d in RESULTS["decisions"]})


def lead() -> str:
    """README.md's coverage paragraph: from the top of "Is SPAC worth using" to the short answer."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Is SPAC worth using") :]
    return " ".join(section[: section.index("**Short answer")].split())


def summary() -> str:
    """benchmarks/README.md's coverage entry under "What they found"."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    section = text[text.index("- **coverage**") :]
    return " ".join(section[: section.index("\n- **")].split())


def recomputed_quotes() -> set[str]:
    """Each committed decision recomputed from the records (validation-chosen checkpoint), as a README quotes it."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for r in RESULTS["records"]:
        if r["checkpoint_rule"] == "validation":
            scores.setdefault((r["regime"], r["arm"]), {})[r["seed"]] = r["test_score"]
    contrasts = {c.name: c for c in design.contrasts(tuple(design.ARMS))}
    out = set()
    for d in RESULTS["decisions"]:
        a, b = scores[(d["regime"], d["a"])], scores[(d["regime"], d["b"])]
        decision = decide([a[s] - b[s] for s in d["seeds"]], contrasts[d["contrast"]])
        # The committed line is the recomputed one, with its regime in front and its arms behind.
        assert d["line"] == f"{d['regime']}: {decision.line} [{d['a']} vs {d['b']}]"
        out.add(quote({"regime": d["regime"], "checkpoint_rule": "validation", "line": decision.line}))
    return out


def complete(regime: str) -> bool:
    """Every arm of the regime's table has all the test seeds."""
    rows = [row for row in RESULTS["table"] if row["regime"] == regime]
    return bool(rows) and all(row["seeds"] == len(RESULTS["settings"]["test_seeds"]) for row in rows)


@pytest.mark.parametrize(("where", "least"), [(lead, 5), (summary, 2)])
def test_every_quoted_coverage_decision_is_recomputed_from_the_records(where, least):
    text = where()
    quotes = [q for q in quoted(text) if q[0] in REGIMES]
    assert len(quotes) >= least, f"{where.__doc__}: quotes {len(quotes)} coverage decisions"
    committed = recomputed_quotes()
    missing = [q for q in quotes if f"[{q[0]}, {q[1]} rule] {q[2]}" not in committed]
    assert not missing, missing
    # Numbers are quoted only for regimes whose every arm has all its test seeds; partial ones are named as such.
    assert all(complete(regime) for regime, _, _ in quotes)
    for regime in REGIMES:
        if not complete(regime):
            assert re.search(rf"`{regime}` [^.;]*\brunning\b", text), regime


def test_every_other_coverage_number_in_the_readme_is_in_the_committed_table():
    text = lead()
    for _, _, line in quoted(text):
        text = text.replace(line, "")
    values = {f"{row['test_reward']:.3f} ± {row['ci95']:.3f}" for row in RESULTS["table"]}
    rewards = re.findall(r"\d\.\d{3} ± \d\.\d{3}", text)
    assert len(rewards) >= 5 and set(rewards) <= values
    keys = ("mu_true_reward_train_prompts", "start_test_reward")
    starts = {f"{s[k]:.3f}" for s in RESULTS["start"] for k in keys if s[k] is not None}  # on_policy: mu is pi_1
    rest = re.findall(r"-?\d\.\d{3}", re.sub(r"\d\.\d{3} ± \d\.\d{3}", "", text))  # mu can be below 0
    assert len(rest) >= 2 and set(rest) <= starts
    # The stated design is the committed one.
    settings = RESULTS["settings"]
    assert f"{settings['budget']} optimizer steps of 16 pairs" in text
    assert f"{settings['trials']} tuning trials" in text and f"on {len(settings['test_seeds'])} test seeds" in text
