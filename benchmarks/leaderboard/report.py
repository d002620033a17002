"""The comparison of the evaluated models: a table (CSV, Markdown) with the change against the base, plots of every
column against the iteration, and the results as a Hub-layout dataset.

    python -m benchmarks.leaderboard.report results/leaderboard/<name>   # rebuild from the per-model JSONs

Scores are shown as the leaderboard shows them: percentages, the average being the plain mean of the columns.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from spac_hf.hub import results_dataset_rows, save_results_dataset
from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_text, recorded_path

from benchmarks.leaderboard.models import ModelSpec
from benchmarks.leaderboard.suites import SUITES, Suite, column_value


def comparison(entries: list[tuple[ModelSpec, dict]], suite: Suite, base_label: str = "base") -> list[dict]:
    """One row per model: each column and the average in percent, and their change against the base (in points)."""
    rows = []
    for spec, output in entries:
        row = {
            "label": spec.label,
            "method": spec.method,
            "iteration": spec.iteration,
            "series": spec.series,
            "model": recorded_path(spec.model),
        }
        values = [column_value(output["results"], column) for column in suite.columns]
        for column, value in zip(suite.columns, values):
            row[column.key] = None if value is None else 100 * value
        averaged = [v for c, v in zip(suite.columns, values) if c.in_average]
        row["average"] = None if None in averaged else 100 * sum(averaged) / len(averaged)
        rows.append(row)
    base = next((row for row in rows if row["label"] == base_label), None)
    for row in rows:
        for key in [column.key for column in suite.columns] + ["average"]:
            have = base is not None and row[key] is not None and base[key] is not None
            row[f"{key}_delta"] = row[key] - base[key] if have else None
    return rows


def write_csv(rows: list[dict], suite: Suite, path: Path) -> None:
    keys = [column.key for column in suite.columns] + ["average"]
    fields = ["label", "method", "iteration"] + [k for key in keys for k in (key, f"{key}_delta")] + ["model"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k in fields})
    atomic_write_text(path, buffer.getvalue())


def markdown(rows: list[dict], suite: Suite, settings: dict, base_label: str = "base") -> str:
    headers = ["Model", "Method", "Iteration"] + [_column_header(c) for c in suite.columns] + ["Average"]
    lines = [f"| {' | '.join(headers)} |", "|---" * 3 + "|---:" * (len(suite.columns) + 1) + "|"]
    for row in rows:
        cells = [f"`{row['label']}`", row["method"] or "", "" if row["iteration"] is None else str(row["iteration"])]
        for key in [c.key for c in suite.columns] + ["average"]:
            cells.append(_cell(row[key], None if row["label"] == base_label else row[f"{key}_delta"]))
        lines.append(f"| {' | '.join(cells)} |")
    notes = [
        f"# Leaderboard {suite.name}: comparison",
        "",
        f"{suite.description}. Scores in percent; in parentheses the change against `{base_label}` in points. "
        f"The average is the plain mean of {', '.join(c.label for c in suite.averaged)}.",
        "",
    ]
    if settings.get("tasks_dir"):
        notes += [f"**Not leaderboard data**: the tasks come from `{settings['tasks_dir']}` (a smoke run).", ""]
    if suite.data_note:
        notes += [suite.data_note, ""]
    if settings.get("limit") is not None:
        notes += [f"**Subsampled**: at most {settings['limit']} examples per task.", ""]
    if settings.get("tasks"):
        notes += [f"**Only some tasks** of the suite: {', '.join(f'`{t}`' for t in settings['tasks'])}.", ""]
    if settings.get("task_limit"):
        limits = ", ".join(f"`{pattern}`: {n}" for pattern, n in settings["task_limit"].items())
        notes += [
            (
                f"**Subsets**: at most N examples of each task matching a pattern, a fixed seeded subset ({limits}); "
                "`tasks.md` gives each task's number."
            ),
            "",
        ]
    if settings.get("max_gen_toks"):
        notes += [
            (
                f"**Generation capped** at {settings['max_gen_toks']} tokens (the tasks' own caps: GSM8K 256, "
                "IFEval 1280)."
            ),
            "",
        ]
    if settings.get("max_length"):
        notes += [f"Context length given to lm-eval: {settings['max_length']} tokens.", ""]
    if settings.get("apply_chat_template"):
        notes += ["Prompts formatted with each model's chat template.", ""]
    models = [f"- `{row['label']}`: `{row['model']}`" for row in rows]
    return "\n".join(notes + lines + ["", "Models:", ""] + models) + "\n"


def _column_header(column) -> str:
    metric = " + ".join(
        name if filt in ("", "none") else f"{name} {filt}"
        for name, _, filt in (m.partition(",") for m in column.metrics)
    )
    return f"{column.label} ({column.shots}-shot, {metric})" if column.shots is not None else column.label


def _cell(value: float | None, delta: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if delta is None else f"{value:.2f} ({delta:+.2f})"


def write_plots(rows: list[dict], suite: Suite, folder: Path, base_label: str = "base", note: str = "") -> list[Path]:
    """`plots/<column>.png`: score against iteration, one line per series; every line starts at the base model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    specs = [row for row in rows if row["iteration"] is not None and row["label"] != base_label]
    for row in specs:
        series.setdefault(row["series"], []).append(row)
    if not series:
        return []
    base = next((row for row in rows if row["label"] == base_label), None)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    titles = [(c.key, _column_header(c)) for c in suite.columns] + [("average", f"Average ({suite.name} columns)")]
    for key, title in titles:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for name, members in series.items():
            points = sorted((r["iteration"], r[key]) for r in members if r[key] is not None)
            if base is not None and base[key] is not None:
                points = [(0, base[key])] + points
            if points:
                ax.plot(*zip(*points), marker="o", label=name)
        ax.set_xlabel("iteration (0 = base model)")
        ax.set_ylabel("score (%)")
        ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(save_figure(fig, folder / f"{key}.png", dpi=120))
    return paths


def dataset_rows(entries: list[tuple[ModelSpec, dict]], suite: Suite, base_model: str | None) -> list[dict]:
    """Results-dataset rows: each column's metrics as lm-eval reported them (0..1), plus the suite average."""
    rows = []
    for spec, output in entries:
        headline, values = {}, []
        for column in suite.columns:
            metrics = output["results"].get(column.task, {})
            for metric in column.metrics:
                if metric in metrics:
                    name, _, filter_name = metric.partition(",")
                    stderr_key = f"{name}_stderr,{filter_name}"
                    headline.setdefault(column.task, {})[metric] = metrics[metric]
                    headline[column.task][stderr_key] = metrics.get(stderr_key)
            if column.in_average:
                values.append(column_value(output["results"], column))
        if None not in values:
            headline[suite.group] = {"average,none": sum(values) / len(values)}
        shots = {task: output.get("n-shot", {}).get(task) for task in headline}
        rows += results_dataset_rows(
            {"results": headline, "n-shot": {k: v for k, v in shots.items() if v is not None}},
            model=spec.label,
            method=spec.method,
            iteration=spec.iteration,
            base_model=base_model,
        )
    return rows


def task_rows(entries: list[tuple[ModelSpec, dict]]) -> list[dict]:
    """Every task and group of every model's output: each metric with its standard error and number of examples."""
    rows = []
    for spec, output in entries:
        counts = output.get("n-samples", {})
        for task, metrics in sorted(output["results"].items()):
            for key, value in metrics.items():
                name, _, filter_name = key.partition(",")
                if not _ or "_stderr" in name or not isinstance(value, (int, float)):
                    continue
                stderr = metrics.get(f"{name}_stderr,{filter_name}")
                rows.append(
                    {
                        "label": spec.label,
                        "task": task,
                        "metric": key,
                        "value": value,
                        "stderr": stderr if isinstance(stderr, (int, float)) else None,
                        "n": counts.get(task, {}).get("effective"),
                        "n_original": counts.get(task, {}).get("original"),
                    }
                )
    return rows


def write_task_tables(out: Path, entries: list[tuple[ModelSpec, dict]]) -> None:
    """`tasks.csv` (long form) and `tasks.md` (one row per task and metric, one column per model): percent ± stderr."""
    rows = task_rows(entries)
    buffer = io.StringIO()
    fields = ["label", "task", "metric", "value", "stderr", "n", "n_original"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_text(out / "tasks.csv", buffer.getvalue())
    labels = [spec.label for spec, _ in entries]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    sizes: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["task"], row["metric"])
        stderr = f" ± {100 * row['stderr']:.1f}" if row["stderr"] is not None else ""
        cells.setdefault(key, {})[row["label"]] = f"{100 * row['value']:.1f}{stderr}"
        if row["n"] is not None:
            sizes[key] = f"{row['n']}" + (f" of {row['n_original']}" if row["n_original"] != row["n"] else "")
    lines = [
        "# Per task: score (%) ± standard error",
        "",
        "n: the examples evaluated (of the task's test set, when a subset was evaluated); groups have none.",
        "",
        f"| task | metric | n | {' | '.join(f'`{label}`' for label in labels)} |",
        "|---|---|---:|" + "---:|" * len(labels),
    ]
    for (task, metric), values in cells.items():
        cols = " | ".join(values.get(label, "") for label in labels)
        lines.append(f"| {task} | {metric.partition(',')[0]} | {sizes.get((task, metric), '')} | {cols} |")
    atomic_write_text(out / "tasks.md", "\n".join(lines) + "\n")
    plot_tasks(rows, labels, out / "plots" / "tasks.png")


def plot_tasks(rows: list[dict], labels: list[str], path: Path) -> Path | None:
    """Every task's scores (not the groups'), one bar per model, with the standard error: `plots/tasks.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r["task"], r["metric"]) for r in rows if r["n"] is not None))
    if not keys:
        return None
    values = {(r["label"], r["task"], r["metric"]): r for r in rows}
    height = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(keys) * max(1, len(labels) / 2) + 1.5))
    for i, label in enumerate(labels):
        found = [values.get((label, *key)) for key in keys]
        ax.barh(
            [k + i * height for k in range(len(keys))],
            [100 * r["value"] if r else 0 for r in found],
            height,
            xerr=[100 * r["stderr"] if r and r["stderr"] is not None else 0 for r in found],
            label=label,
            error_kw={"elinewidth": 0.6},
        )
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(keys))])
    sizes = {(r["task"], r["metric"]): r["n"] for r in rows if r["n"] is not None}
    ax.set_yticklabels([f"{t} ({m.partition(',')[0]}, n={sizes[(t, m)]})" for t, m in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("score (%) ± standard error")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_report(out: Path, suite: Suite, entries: list[tuple[ModelSpec, dict]], settings: dict) -> dict:
    """Write comparison.csv, comparison.md, plots/ and dataset/ under `out`; return the comparison rows."""
    base_label = settings.get("base_label", "base")
    rows = comparison(entries, suite, base_label)
    write_csv(rows, suite, out / "comparison.csv")
    write_task_tables(out, entries)
    atomic_write_text(out / "comparison.md", markdown(rows, suite, settings, base_label))
    note = f"smoke run: tasks from {settings['tasks_dir']}" if settings.get("tasks_dir") else ""
    write_plots(rows, suite, out / "plots", base_label, note)
    base = next((spec.model for spec, _ in entries if spec.label == base_label), None)
    save_results_dataset(
        dataset_rows(entries, suite, base),
        out / "dataset",
        repo_id=settings.get("hub_dataset_id"),
        **dataset_card(suite, out, settings),
    )
    return rows


def dataset_card(suite: Suite, out: Path, settings: dict) -> dict:
    """Name and description of the results dataset (the same whether saved locally or pushed)."""
    description = f"{suite.description}. Evaluated with lm-eval by `benchmarks/leaderboard/run.py` of spac-hf."
    if settings.get("tasks_dir"):
        description += f" Tasks from `{settings['tasks_dir']}`: a smoke run, not leaderboard data."
    return {"dataset_name": f"spac-hf leaderboard {suite.name}: {out.name}", "description": description}


def load_entries(out: Path, specs: list[ModelSpec]) -> list[tuple[ModelSpec, dict]]:
    return [(spec, json.loads((out / f"{spec.label}.json").read_text(encoding="utf-8"))) for spec in specs]


def main(argv: list[str] | None = None) -> None:
    """Rebuild the report of a finished (or partly finished) benchmark folder from its JSON files."""
    out = Path((argv or sys.argv[1:])[0])
    record = json.loads((out / "environment.json").read_text(encoding="utf-8"))
    specs = [ModelSpec(**spec) for spec in record["models"] if (out / f"{spec['label']}.json").exists()]
    write_report(out, SUITES[record["settings"]["suite"]], load_entries(out, specs), record["settings"])
    print(f"Wrote {out}/comparison.md, comparison.csv, plots/, dataset/")


if __name__ == "__main__":
    main()
