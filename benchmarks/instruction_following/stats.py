"""Seed statistics of the instruction-following benchmark: per method, each metric of its final iterate with a 95%
Student-t interval across seeds, and the paired difference against DPO (same seed = same data order and self-play
seed). The data set is built once (seed 0), so the intervals cover the training randomness, not the choice of prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.theory.stats import mean_ci95


IFEVAL_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")
IFEVAL_EXTRA = ("mean_length_tokens", "degenerate_fraction", "truncated_fraction")
IN_DIST_METRICS = ("true_reward", "prompt_level_strict", "mean_length_tokens", "degenerate_fraction")
BASELINE = "dpo"


def _with_ci(values: Sequence[float]) -> dict:
    stats = mean_ci95(list(values))
    return {**stats, "ci_low": stats["mean"] - stats["ci95"], "ci_high": stats["mean"] + stats["ci95"]}


def final_metrics(run: dict, ifeval: dict | None) -> dict:
    """One run's final-iterate numbers: the in-distribution ones (prefixed `in_dist_`) and IFEval's, when scored."""
    last = run["iterations"][-1]
    values = {f"in_dist_{k}": last.get(k) for k in IN_DIST_METRICS}
    if ifeval is not None:
        values.update({f"ifeval_{k}": ifeval[k] for k in (*IFEVAL_METRICS, *IFEVAL_EXTRA)})
    return {k: v for k, v in values.items() if v is not None}


def sft_metrics(runs: Sequence[dict], sft_ifeval: dict | None) -> dict:
    """The starting model: iteration 0 of any run (greedy scoring: every run's iteration 0 is the same number) and its
    IFEval record."""
    values = {}
    if runs:
        first = runs[0]["iterations"][0]
        values.update({f"in_dist_{k}": first.get(k) for k in IN_DIST_METRICS})
    if sft_ifeval is not None:
        values.update({f"ifeval_{k}": sft_ifeval[k] for k in (*IFEVAL_METRICS, *IFEVAL_EXTRA)})
    return {k: v for k, v in values.items() if v is not None}


def summarise(finals: dict[str, dict[int, dict]]) -> dict:
    """`finals[method][seed]` = final_metrics -> per method and metric: per-seed values and mean, CI across seeds."""
    cells = {}
    for method, by_seed in finals.items():
        metrics = sorted({k for values in by_seed.values() for k in values})
        cells[method] = {
            metric: {"values": {str(s): v[metric] for s, v in sorted(by_seed.items()) if metric in v},
                     **_with_ci([v[metric] for _, v in sorted(by_seed.items()) if metric in v])}
            for metric in metrics
        }  # fmt: skip
    return cells


def paired_against(finals: dict[str, dict[int, dict]], baseline: str = BASELINE) -> dict:
    """Each method minus `baseline`, seed by seed, on every metric both have for a seed."""
    out = {}
    base = finals.get(baseline, {})
    for method, by_seed in finals.items():
        if method == baseline:
            continue
        rows = {}
        metrics = sorted({k for values in by_seed.values() for k in values})
        for metric in metrics:
            diffs = {str(s): v[metric] - base[s][metric] for s, v in sorted(by_seed.items())
                     if metric in v and s in base and metric in base[s]}  # fmt: skip
            if diffs:
                rows[metric] = {"differences": diffs, **_with_ci(list(diffs.values()))}
        out[method] = rows
    return out


def curves(runs: Sequence[dict]) -> dict:
    """In-distribution reward by iteration (keyed by pairs seen), mean and CI across seeds, per method."""
    grouped: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        for entry in run["iterations"]:
            grouped.setdefault(run["method"], {}).setdefault(entry["examples_seen"], []).append(entry["true_reward"])
    return {method: [{"examples_seen": n, **_with_ci(values)} for n, values in sorted(points.items())]
            for method, points in grouped.items()}  # fmt: skip
