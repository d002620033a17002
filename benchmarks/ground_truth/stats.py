"""Seed statistics: mean true reward per method and budget point with a 95% t-interval across seeds, and paired
differences, SPAC minus each baseline and each method minus the SFT model (same seed = same data split and
evaluation seed).

The interval is computed from the spread of the per-seed means, so it covers everything that changes with the seed:
the data split, the training order, the self-play samples and the evaluation samples (evaluation noise included). It
does not cover the choice of the 150 held-out prompts, which is the same for every seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from benchmarks.theory.stats import mean_ci95  # the Student-t interval, shared with the theory benchmark


__all__ = [
    "mean_ci95", "sft_by_seed", "method_cells", "paired_differences", "final_paired_differences", "gains_over_sft",
]  # fmt: skip


def _with_ci(values: Sequence[float]) -> dict:
    stats = mean_ci95(list(values))
    return {**stats, "ci_low": stats["mean"] - stats["ci95"], "ci_high": stats["mean"] + stats["ci95"]}


def sft_by_seed(runs: Iterable[dict]) -> dict:
    """The starting model's true reward per seed (iteration 0 of each of that seed's runs) and across seeds.

    `max_discrepancy` is the largest difference between two runs' iteration 0 within a seed: it should be 0, since
    they evaluate the same model with the same seed; anything else means the evaluation is not reproducible."""
    per_seed: dict[str, list[float]] = {}
    for run in runs:
        per_seed.setdefault(str(run["seed"]), []).append(run["iterations"][0]["true_reward"])
    # The first run's score: the runs agree (max_discrepancy says how well); a mean of equal floats may not be equal.
    values = {seed: v[0] for seed, v in sorted(per_seed.items(), key=lambda item: int(item[0]))}
    discrepancy = max((max(v) - min(v) for v in per_seed.values()), default=0.0)
    return {"values": values, "max_discrepancy": discrepancy, **_with_ci(list(values.values()))}


def method_cells(runs: Iterable[dict]) -> list[dict]:
    """One cell per (method, model after N training examples): the per-seed true rewards and their mean and CI.

    Cells are keyed by examples seen, not by the loop's iteration number, so that plain DPO's one iterate (all 810
    pairs) lands on the same budget point as the iterative methods' last iterate."""
    grouped: dict[tuple[str, int], dict] = {}
    for run in runs:
        for record in run["iterations"][1:]:  # iteration 0 is the SFT model: see sft_by_seed
            key = (run["method"], record["examples_seen"])
            cell = grouped.setdefault(
                key,
                {
                    "method": run["method"],
                    "examples_seen": record["examples_seen"],
                    "iteration": record["iteration"],
                    "optimizer_steps": set(),
                    "values": {},
                },
            )
            cell["optimizer_steps"].add(record["optimizer_steps"])
            cell["values"][str(run["seed"])] = record["true_reward"]  # str: the keys survive a JSON round trip
    cells = []
    for cell in grouped.values():
        steps = sorted(cell.pop("optimizer_steps"))
        values = dict(sorted(cell["values"].items(), key=lambda item: int(item[0])))
        cells.append(
            {
                **cell,
                "optimizer_steps": steps[0] if len(steps) == 1 else steps,
                "values": values,
                **_with_ci(list(values.values())),
            }
        )
    return sorted(cells, key=lambda c: (c["method"], c["examples_seen"]))


def paired_differences(cells: Sequence[dict], subject: str, baselines: Sequence[str]) -> list[dict]:
    """`subject` minus each baseline at every budget point both have, seed by seed (only seeds both ran)."""
    by_key = {(c["method"], c["examples_seen"]): c for c in cells}
    rows = []
    for baseline in baselines:
        for (method, examples), cell in sorted(by_key.items(), key=lambda item: item[0][1]):
            other = by_key.get((baseline, examples))
            if method != subject or other is None:
                continue
            seeds = sorted(set(cell["values"]) & set(other["values"]), key=int)
            if not seeds:
                continue
            differences = {seed: cell["values"][seed] - other["values"][seed] for seed in seeds}
            rows.append(
                {
                    "subject": subject,
                    "baseline": baseline,
                    "examples_seen": examples,
                    "differences": differences,
                    **_with_ci(list(differences.values())),
                }
            )
    return rows


def final_paired_differences(runs: Iterable[dict], subject: str, baselines: Sequence[str]) -> list[dict]:
    """`subject`'s last iterate minus each baseline's last iterate, seed by seed: the output of each method's own
    budget (used where the budgets differ, e.g. the theory preset's 10 passes)."""
    final: dict[str, dict[str, float]] = {}
    for run in runs:
        final.setdefault(run["method"], {})[str(run["seed"])] = run["iterations"][-1]["true_reward"]
    rows = []
    for baseline in baselines:
        if subject not in final or baseline not in final or baseline == subject:
            continue
        seeds = sorted(set(final[subject]) & set(final[baseline]), key=int)
        differences = {seed: final[subject][seed] - final[baseline][seed] for seed in seeds}
        if differences:
            rows.append({"subject": subject, "baseline": baseline, "differences": differences,
                         **_with_ci(list(differences.values()))})  # fmt: skip
    return rows


def gains_over_sft(cells: Sequence[dict], sft: dict) -> list[dict]:
    """Each cell minus the SFT model, seed by seed: did the method improve on its starting model at all?"""
    rows = []
    for cell in cells:
        seeds = sorted(set(cell["values"]) & set(sft["values"]), key=int)
        differences = {seed: cell["values"][seed] - sft["values"][seed] for seed in seeds}
        rows.append({"method": cell["method"], "examples_seen": cell["examples_seen"], "differences": differences,
                     **_with_ci(list(differences.values()))})  # fmt: skip
    return rows
