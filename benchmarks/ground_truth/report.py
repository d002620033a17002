"""Write the benchmark's report next to results.json: table.md, table.csv, true_reward.png and dataset/ (Hub layout).

Every number comes from `results.json`, so the report can be rebuilt from it alone:
`python -m benchmarks.ground_truth.report results/ground_truth`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from spac_hf.hub import save_results_dataset
from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_text

from benchmarks.ground_truth.plot import plot_figure
from benchmarks.ground_truth.tables import finite, ordered_cells, table_csv, table_markdown


def dataset_rows(results: dict) -> list[dict]:
    """Results-dataset rows: one model per (method, iterate) plus the SFT model; its mean over seeds (with the
    standard error across seeds) and the half-width of its 95% CI across seeds."""
    summary, settings = results["summary"], results["settings"]
    task = f"true_reward_{settings['true_reward_task']}"
    models = [("sft", None, 0, summary["sft"])]
    models += [(f"{c['method']}-iter{c['iteration']}", c["method"], c["iteration"], c) for c in ordered_cells(summary)]
    rows = []
    for model, method, iteration, stats in models:
        common = {"model": model, "base_model": settings["base_model"], "method": method, "iteration": iteration,
                  "task": task}  # fmt: skip
        rows += over_seeds_rows(common, stats)
    return rows


def over_seeds_rows(common: dict, stats: dict) -> list[dict]:
    """One model's value on one task as results rows: its mean over seeds (with the standard error across seeds),
    the half-width of its 95% CI across seeds when there is one, and how many seeds (the Space ranks means over
    seeds apart from single runs). `stats` has `mean`, `std`, `ci95`, `count`."""
    stderr = stats["std"] / math.sqrt(stats["count"]) if finite(stats["std"]) else None
    rows = [{**common, "metric": "mean_over_seeds", "value": stats["mean"], "stderr": stderr}]
    if finite(stats["ci95"]):
        rows.append({**common, "metric": "ci95_halfwidth_over_seeds", "value": stats["ci95"]})
    return rows + [{**common, "metric": "num_seeds", "value": stats["count"]}]


def write_report(results: dict, out: Path) -> None:
    out = Path(out)
    atomic_write_text(out / "table.md", table_markdown(results))
    atomic_write_text(out / "table.csv", table_csv(results["summary"]))
    save_figure(plot_figure(results["summary"]), out / "true_reward.png")
    seeds = len(results["summary"]["seeds"])
    description = (
        "The ground-truth benchmark of spac-hf: the mean true reward of the reviews task on held-out prompts, for the "
        f"SFT model and the iterates of plain DPO, iterative DPO, SPIN and SPAC, averaged over {seeds} seeds. "
        "`stderr` is the standard error across seeds; `ci95_halfwidth_over_seeds` the half-width of the 95% "
        "Student-t interval across seeds; `num_seeds` the number of seeds. `model` is `<method>-iter<t>`: `dpo-iter1` "
        "is plain DPO (one pass over all the pairs), `iterative_dpo-iter<t>` iterative DPO."
    )
    save_results_dataset(dataset_rows(results), out / "dataset", dataset_name="spac-hf-ground-truth-results",
                         description=description)  # fmt: skip


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/ground_truth")
    write_report(json.loads((folder / "results.json").read_text(encoding="utf-8")), folder)
    print(f"rewrote table.md, table.csv, true_reward.png and dataset/ in {folder}")
