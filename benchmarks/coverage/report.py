"""The report of a coverage result folder, rebuilt from its per-run files alone.

    python -m benchmarks.coverage.report results/coverage

Writes `results.json` (the protocol's records: one per regime, arm, test seed and checkpoint rule; every tuning
trial; the decision per regime and contrast; `partial`), `table.md`, `table.csv`, `reward_<regime>.png` (test reward
per arm, 95% CI) and `curves_<regime>.png` (validation reward against optimizer steps per arm).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
from pathlib import Path

from spac_hf.utils import atomic_write_json, atomic_write_text, environment_info, read_json

from . import design
from .data import REGIMES
from benchmarks.protocol import check_spent, decide, group_arm, record, tune


def _ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of the 95% Student-t interval across seeds (NaN for one seed)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def load_runs(out: Path) -> list[dict]:
    runs = []
    for path in sorted((out / "runs").glob("*/*/*.json")):
        run = read_json(path)
        run["tag"] = path.stem
        runs.append(run)
    return runs


def collect(out: Path) -> dict:
    """Everything the report needs, per regime: trials, tuned trial per arm, test runs per arm and seed."""
    from spac_hf.variants import get_variant

    settings = read_json(out / "settings.json", {})
    runs = load_runs(out)
    trials, regimes = [], {}
    for run in runs:
        ident = run["identity"]
        regime, arm = ident["regime"], ident["arm"]
        entry = regimes.setdefault(regime, {"trial_runs": {}, "tests": {}})
        if run["tag"].startswith("tune_"):
            entry["trial_runs"].setdefault(arm, {}).setdefault(run["trial"], []).append(run)
        else:
            entry["tests"].setdefault(arm, {})[ident["seed"]] = run
    n_tuning = len(settings.get("tuning_seeds", design.TUNING_SEEDS))
    for regime, entry in regimes.items():
        entry["tuned"] = {}
        for arm, by_trial in entry["trial_runs"].items():
            rows = []
            for k, rs in sorted(by_trial.items()):
                row = {
                    "regime": regime,
                    "arm": arm,
                    "trial": k,
                    "params": rs[0]["identity"]["params"],
                    "seeds": [r["identity"]["seed"] for r in rs],
                    "val_score": statistics.fmean(r["curve"][str(r["chosen"])] for r in rs),
                    "chosen_checkpoints": [r["chosen"] for r in rs],
                    "complete": len(rs) == n_tuning,
                }
                rows.append(row)
            trials += rows
            complete = [r for r in rows if r["complete"]]
            if complete and len(complete) == len(rows):
                entry["tuned"][arm] = tune(design.ARMS[arm], complete, "val_score")
    records, extras = [], []
    for regime, entry in regimes.items():
        for arm, by_seed in entry["tests"].items():
            variant = get_variant(design.ARMS[arm].variant)
            for seed, run in sorted(by_seed.items()):
                for rule, step in (("validation", run["chosen"]), ("last", run["last"])):
                    test = run["test"][str(step)]
                    records.append(
                        record(
                            benchmark=design.BENCHMARK,
                            regime=regime,
                            arm=arm,
                            variant=variant.name,
                            method=variant.method,
                            seed=seed,
                            **run["spent"],
                            data_sha256=run["data_sha256"],
                            trial=run["trial"],
                            params=run["identity"]["params"],
                            checkpoint=step,
                            checkpoint_rule=rule,
                            val_score=run["curve"][str(step)],
                            test_score=test["reward"],
                            config_hash=run["config_hash"],
                        )
                    )
                    extras.append(
                        {
                            "regime": regime,
                            "arm": arm,
                            "seed": seed,
                            "checkpoint_rule": rule,
                            "degenerate_fraction": test["degenerate_fraction"],
                            "mean_words": test["mean_words"],
                        }
                    )
    return {"settings": settings, "regimes": regimes, "trials": trials, "records": records, "extras": extras}


def decisions(regime: str, entry: dict, arms: list[str]) -> list[dict]:
    """Each declared contrast on the seeds every arm it needs has finished; a group side is its arm with the best
    tuning validation score."""
    validation = {arm: entry["tuned"][arm]["val_score"] for arm in arms if arm in entry["tuned"]}
    out = []
    for contrast in design.contrasts(tuple(arms)):
        try:
            a, b = group_arm(contrast.a, validation), group_arm(contrast.b, validation)
        except Exception:  # an arm of the group is not tuned yet
            continue
        tests = entry["tests"]
        seeds = sorted(set(tests.get(a, {})) & set(tests.get(b, {})))
        if len(seeds) < 2:
            continue
        diffs = [_test(tests[a][s]) - _test(tests[b][s]) for s in seeds]
        decision = decide(diffs, contrast)
        out.append(
            {
                "regime": regime,
                "a": a,
                "b": b,
                "seeds": seeds,
                **decision.__dict__,
                "line": f"{regime}: {decision.line} [{a} vs {b}]",
            }
        )
    return out


def _test(run: dict, rule: str = "validation") -> float:
    return run["test"][str(run["chosen"] if rule == "validation" else run["last"])]["reward"]


def _metric(run: dict, name: str) -> float:
    return run["test"][str(run["chosen"])][name]


def table_rows(collected: dict) -> list[dict]:
    from spac_hf.variants import get_variant

    rows = []
    for regime in [r for r in REGIMES if r in collected["regimes"]]:
        entry = collected["regimes"][regime]
        for arm in [a for a in design.ARMS if a in entry["tests"]]:
            runs = list(entry["tests"][arm].values())
            chosen_mean, chosen_ci = _ci([_test(r) for r in runs])
            last_mean, last_ci = _ci([_test(r, "last") for r in runs])
            rows.append(
                {
                    "regime": regime,
                    "arm": arm,
                    "label": get_variant(design.ARMS[arm].variant).label,
                    "params": entry["tuned"].get(arm, {}).get("params"),
                    "seeds": len(runs),
                    "test_reward": chosen_mean,
                    "ci95": chosen_ci,
                    "test_reward_last": last_mean,
                    "ci95_last": last_ci,
                    "degenerate_fraction": statistics.fmean(_metric(r, "degenerate_fraction") for r in runs),
                    "mean_words": statistics.fmean(_metric(r, "mean_words") for r in runs),
                    "checkpoint_median": statistics.median(r["chosen"] for r in runs),
                    "tuning_val_score": entry["tuned"].get(arm, {}).get("val_score"),
                    "optimizer_steps": runs[0]["spent"]["optimizer_steps"],
                    "pairs_seen": runs[0]["spent"]["pairs_seen"],
                    "self_play_samples": runs[0]["spent"]["self_play_samples"],
                    "wall_s_mean": statistics.fmean(r["wall_s_total"] for r in runs),
                }
            )
    return rows


def start_rows(collected: dict, out: Path) -> list[dict]:
    """pi_1 and mu, per regime: what imitation alone could reach. pi_1's test reward per seed is
    `<out>/start/<regime>/seed<s>.json` (the first runs kept it inside each test run, `start_scores`)."""
    rows = []
    for regime in [r for r in REGIMES if r in collected["regimes"]]:
        runs = [r for by_seed in collected["regimes"][regime]["tests"].values() for r in by_seed.values()]
        if not runs:
            continue
        by_seed = {r["identity"]["seed"]: r for r in runs}
        mu = [r["data_stats"].get("mu_true_reward") for r in by_seed.values()]
        scores = {r["identity"]["seed"]: r["start_scores"]["test"]["reward"] for r in runs if "start_scores" in r}
        for path in sorted((out / "start" / regime).glob("seed*.json")):
            record = read_json(path)
            scores[record["seed"]] = record["test"]["reward"]
        start = list(scores.values())
        rows.append(
            {
                "regime": regime,
                "mu_true_reward_train_prompts": statistics.fmean(mu) if None not in mu else None,
                "start_test_reward": statistics.fmean(start) if start else None,
                "seeds": len(by_seed),
            }
        )
    return rows


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def write_tables(out: Path, rows: list[dict], starts: list[dict], lines: list[str], partial: bool) -> None:
    head = "**PARTIAL**: not every selected run has finished; the numbers below are from the finished seeds.\n\n"
    md = [
        head if partial else "",
        "| regime | arm | tuned | seeds | test reward (val. checkpoint) | last checkpoint | degenerate | words | "
        "median checkpoint |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = ", ".join(f"{k} {v:g}" for k, v in (r["params"] or {}).items())
        md.append(
            f"| {r['regime']} | {r['label']} | {params} | {r['seeds']} | {_fmt(r['test_reward'])} ± "
            f"{_fmt(r['ci95'])} | {_fmt(r['test_reward_last'])} ± {_fmt(r['ci95_last'])} | "
            f"{_fmt(r['degenerate_fraction'], 3)} | {_fmt(r['mean_words'], 1)} | "
            f"{r['checkpoint_median']:g} |"
        )
    md += [
        "",
        "Starting points: mu's expected true reward (exact, training prompts) and pi_1's test reward.",
        "",
        "| regime | mu | pi_1 (test) |",
        "|---|---|---|",
    ]
    md += [
        f"| {s['regime']} | {_fmt(s['mu_true_reward_train_prompts'])} | {_fmt(s['start_test_reward'])} |"
        for s in starts
    ]
    md += [
        "",
        "Decision lines (paired per-seed differences of the test reward at the validation-chosen checkpoint):",
        "",
    ] + [f"- {line}" for line in lines]
    atomic_write_text(out / "table.md", "\n".join(md) + "\n")
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "params": ";".join(f"{k}={v}" for k, v in (r["params"] or {}).items())})
    atomic_write_text(out / "table.csv", buffer.getvalue())


def write_plots(out: Path, collected: dict, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for regime, entry in collected["regimes"].items():
        mine = [r for r in rows if r["regime"] == regime]
        if mine:
            fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=120)
            ys = range(len(mine))
            ax.errorbar(
                [r["test_reward"] for r in mine],
                ys,
                xerr=[0 if math.isnan(r["ci95"]) else r["ci95"] for r in mine],
                fmt="o",
                capsize=4,
                color="#1f77b4",
            )
            for y, r in zip(ys, mine):
                values = [_test(run) for run in entry["tests"][r["arm"]].values()]
                ax.scatter(values, [y] * len(values), s=9, alpha=0.35, color="black", linewidth=0)
            ax.set_yticks(list(ys), [r["label"] for r in mine], fontsize=8)
            ax.set_xlabel("true reward on the 150 test prompts (validation-chosen checkpoint)")
            ax.set_title(f"{regime}: mean over seeds, 95% CI; dots = seeds", fontsize=10)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / f"reward_{regime}.png")
            plt.close(fig)
        fig, ax = plt.subplots(figsize=(7.2, 4.0), dpi=120)
        drawn = False
        for arm, by_seed in entry["tests"].items():
            runs = list(by_seed.values())
            steps = sorted(int(s) for s in runs[0]["curve"])
            ax.plot(
                steps,
                [statistics.fmean(r["curve"][str(s)] for r in runs) for s in steps],
                marker="o",
                label=f"{arm} ({len(runs)} seeds)",
            )
            drawn = True
        if drawn:
            ax.set_xlabel("optimizer steps")
            ax.set_ylabel("validation true reward (mean over test seeds)")
            ax.set_title(f"{regime}: learning curves", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(out / f"curves_{regime}.png")
        plt.close(fig)


def build_report(out: Path, command: str | None = None, readme: Path | None = None) -> str:
    """Rebuild every output of `out` from its runs; returns a one-line summary (for logs and commit messages)."""
    out = Path(out)
    collected = collect(out)
    settings = collected["settings"]
    lines, all_decisions = [], []
    for regime, entry in collected["regimes"].items():
        arms = [a for a in design.ARMS if a in entry["trial_runs"]]
        for decision in decisions(regime, entry, arms):
            all_decisions.append(decision)
            lines.append(decision["line"])
    rows = table_rows(collected)
    starts = start_rows(collected, out)
    expected = len(settings.get("test_seeds", design.TEST_SEEDS))
    # Complete only when every arm that has runs in a regime has every test seed there (and some regime has runs).
    partial = not rows or any(
        len(entry["tests"].get(arm, {})) < expected
        for entry in collected["regimes"].values()
        for arm in set(entry["trial_runs"]) | set(entry["tests"])
    )
    from benchmarks.protocol import Budget, Comparison

    steps = settings.get("budget", design.DEFAULT_BUDGET)
    comparison = design.comparison(
        steps, tuple(a for a in design.ARMS if any(r["arm"] == a for r in rows)) or design.DEFAULT_ARMS
    )
    if settings.get("budget") and settings["budget"] < design.CHECKPOINTS_PER_RUN:  # the quick mode's tiny budget
        comparison = Comparison(**{**comparison.__dict__, "budget": Budget(steps, steps * 16, (1, 2))})
    previous = read_json(out / "results.json", {})
    results = {
        "benchmark": design.BENCHMARK,
        "partial": partial,
        "command": command or previous.get("command"),
        "settings": settings,
        "comparison": comparison.to_dict(),
        "environment": previous.get("environment") or environment_info(),
        "budget_flags": check_spent(comparison, collected["records"]),
        "records": collected["records"],
        "metrics": collected["extras"],
        "trials": collected["trials"],
        "decisions": all_decisions,
        "start": starts,
        "table": rows,
    }
    atomic_write_json(out / "results.json", results)
    write_tables(out, rows, starts, lines, partial)
    write_plots(out, collected, rows)
    if readme is not None:
        update_readme(readme, results)
    done = sum(r["seeds"] for r in rows)
    return f"{done} test runs, {len(collected['trials'])} tuning trials" + (" (PARTIAL)" if partial else "")


README_START, README_END = "<!-- results:start (written by report.py) -->", "<!-- results:end -->"
_VERDICT = {
    "better": "the first is better",
    "worse": "the first is worse",
    "no worse than": "the first is no worse (non-inferiority)",
    "undecided": "no decision",
}


def results_block(results: dict) -> str:
    """The README's results section, in words per regime, from `results.json` alone (a test rebuilds it)."""
    from spac_hf.variants import get_variant

    lines = []
    if results["partial"]:
        lines += [
            "**PARTIAL**: the run is still going (or was stopped); each line says how many test seeds it has. Resume "
            "with the two commands under Commands below (finished runs are kept).",
            "",
        ]
    expected = len(results["settings"].get("test_seeds", design.TEST_SEEDS))
    starts = {s["regime"]: s for s in results["start"]}
    for regime in [r for r in REGIMES if any(row["regime"] == r for row in results["table"])]:
        rows = sorted((r for r in results["table"] if r["regime"] == regime), key=lambda r: -r["test_reward"])
        start = starts.get(regime, {})
        mu, pi1 = start.get("mu_true_reward_train_prompts"), _fmt(start.get("start_test_reward"))
        # mu's reward is known for the synthetic data; on-policy data are pi_1's own samples (mu = pi_1).
        rewards = f"mu's true reward {_fmt(mu)}, pi_1's {pi1}" if mu is not None else f"pi_1's true reward {pi1}"
        lines.append(
            f"**{regime}** ({REGIMES[regime].description}; {rewards}). Test "
            "reward at the validation-chosen checkpoint, mean over seeds ± 95% CI:"
        )
        lines.append("")
        for r in rows:
            seeds = f"{r['seeds']} of {expected} seeds"
            lines.append(
                f"- {get_variant(design.ARMS[r['arm']].variant).label}: {_fmt(r['test_reward'])} ± "
                f"{_fmt(r['ci95'])} ({seeds}; {100 * r['degenerate_fraction']:.1f}% degenerate, "
                f"{r['mean_words']:.1f} words)"
            )
        decisions = [d for d in results["decisions"] if d["regime"] == regime]
        lines += ["", _plain_words(rows, decisions)]
        if decisions:
            lines += ["", "Decisions:", ""]
            lines += [f"- {d['line'].split(': ', 1)[1]} ({_VERDICT[d['verdict']]})" for d in decisions]
        lines.append("")
    if not lines:
        lines = ["No finished test run yet.", ""]
    return "\n".join(lines)


def _plain_words(rows: list[dict], decisions: list[dict]) -> str:
    """One sentence per regime: who scores highest, and what the two SPAC contrasts decided."""
    from spac_hf.variants import get_variant

    def label(arm: str) -> str:
        return get_variant(design.ARMS[arm].variant).label

    def verdict(d: dict) -> str:
        if d["verdict"] == "undecided":
            return f"no decision on {d['n']} seeds (smallest detectable difference {d['mdd']:.3f})"
        if d["verdict"] == "no worse than":
            return f"no worse than -{d['delta']:g} on {d['n']} seeds"
        return f"{d['verdict']} on {d['n']} seeds ({d['mean']:+.3f})"

    text = f"In plain words: {label(rows[0]['arm'])} scores highest here."
    by_name = {d["contrast"]: d for d in decisions}
    best = by_name.get("best SPAC arm minus best non-SPAC arm")
    if best:
        a, b = label(best["a"]), label(best["b"])
        text += f" The best SPAC arm ({a}) against the best other arm ({b}): {verdict(best)}."
    ablation = by_name.get("theory preset minus pessimism off")
    if ablation:
        text += f" Pessimism alone (the preset minus its ablation): {verdict(ablation)}."
    return text


def update_readme(readme: Path, results: dict) -> None:
    text = readme.read_text()
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    if not rest:
        raise ValueError(f"{readme} has no {README_START!r} marker")
    atomic_write_text(readme, f"{head}{README_START}\n{results_block(results)}{README_END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--readme", action="store_true", help="also rewrite the results section of the README")
    args = parser.parse_args(argv)
    readme = Path(__file__).parent / "README.md" if args.readme else None
    print(build_report(args.out, readme=readme))
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
