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
from spac_hf.variants import VARIANTS

from benchmarks.ground_truth.methods import METHODS
from benchmarks.ground_truth.plot import plot_figure
from benchmarks.ground_truth.protocol_view import Pair, protocol_view, write_protocol_view
from benchmarks.ground_truth.tables import finite, ordered_cells, table_csv, table_markdown


def dataset_rows(results: dict) -> list[dict]:
    """Results-dataset rows: one model per (arm, iterate) plus the SFT model, with its `variant`; its mean over seeds
    (with the standard error across seeds) and the half-width of its 95% CI across seeds."""
    summary, settings = results["summary"], results["settings"]
    task = f"true_reward_{settings['true_reward_task']}"
    models = [("sft", None, 0, summary["sft"])]
    models += [(f"{c['method']}-iter{c['iteration']}", c["method"], c["iteration"], c) for c in ordered_cells(summary)]
    rows = []
    for model, variant, iteration, stats in models:
        # An arm is a variant (spac_hf.variants); `method` is the library method it runs (the theory preset: spac).
        method = VARIANTS[variant].method if variant else None
        common = {
            "model": model,
            "base_model": settings["base_model"],
            "method": method,
            "variant": variant,
            "iteration": iteration,
            "task": task,
        }
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


def search_tuning(search_path: Path) -> dict:
    """arm -> {"trials", "how"} from a default-tuning search (benchmarks/default_tuning: recipes/default/tuning)."""
    search = json.loads(Path(search_path).read_text(encoding="utf-8"))
    how = (
        f"joint search: {len(search['candidates'])} candidates (learning rate, epochs, beta) x seeds {search['seeds']}"
        " "
        f"on a validation split of the training pairs ({search['split']['validation']} prompts), each candidate run "
        f"for every arm; one setting chosen for all arms by the worst case over arms ({search.get('chosen')}), not "
        f"each arm at its own best ({Path(search_path).as_posix()})"
    )
    return {arm: {"trials": len(search["candidates"]), "how": how} for arm in search["methods"]}


def regime_of(results: dict) -> str:
    coverage = results["settings"].get("coverage")
    pairs = max(r["iterations"][-1]["examples_seen"] for r in results["runs"] if r["method"] != "spac_theory")
    name = f"reviews, coverage data g{coverage['good_mass']:g} k{coverage['rare']}" if coverage else "reviews"
    return f"{name}, {pairs} pairs"


def protocol_pairs(methods: list[str]) -> list[Pair]:
    """SPAC (paper settings) minus each other arm, then the theory preset minus each arm but SPAC's paper settings."""
    pairs = [Pair("spac", m) for m in methods if m not in ("spac", "spac_theory")] if "spac" in methods else []
    if "spac_theory" in methods:
        pairs += [Pair("spac_theory", m) for m in methods if m != "spac_theory"]
    return pairs


def write_protocol(results: dict, out: Path, tuning: dict | None = None, written_by: str = "") -> Path:
    """protocol.json: the protocol's view of this run (benchmarks/ground_truth/protocol_view.py)."""
    from benchmarks.ground_truth.runs import config_hash

    methods = results["settings"]["methods"]
    view = protocol_view(
        results,
        regime=regime_of(results),
        score_name="true_reward: the mean true reward on the held-out test prompts",
        pairs=protocol_pairs(methods),
        tuning=tuning or results["settings"].get("tuning"),
        config_hashes_now={m: config_hash(METHODS[m]) for m in methods if m in METHODS},
        written_by=written_by or "python -m benchmarks.ground_truth.report " + Path(out).as_posix(),
    )
    return write_protocol_view(view, out)


def write_report(results: dict, out: Path, tuning: dict | None = None, written_by: str = "") -> None:
    out = Path(out)
    write_protocol(results, out, tuning, written_by)
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
    # python -m benchmarks.ground_truth.report FOLDER [--tuning-search SEARCH_JSON]
    argv = sys.argv[1:]
    search = argv[argv.index("--tuning-search") + 1] if "--tuning-search" in argv else None
    argv = [a for a in argv if a not in ("--tuning-search", search)]
    folder = Path(argv[0] if argv else "results/ground_truth")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    written_by = " ".join(["python -m benchmarks.ground_truth.report", *sys.argv[1:]])
    write_report(results, folder, search_tuning(Path(search)) if search else None, written_by)
    print(f"rewrote table.md, table.csv, true_reward.png, dataset/ and protocol.json in {folder}")
