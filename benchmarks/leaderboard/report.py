"""The comparison of the evaluated models: a table (CSV, Markdown) with the change against the base, plots of every
column against the iteration, and the results as a Hub-layout dataset.

    python benchmarks/leaderboard/report.py results/leaderboard/<name>   # rebuild from the per-model JSONs

Scores are shown as the leaderboard shows them: percentages, the average being the plain mean of the columns.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path


if __package__ in (None, ""):  # run as a script: make `benchmarks.leaderboard` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spac_hf.hub import results_dataset_rows, save_results_dataset  # noqa: E402
from spac_hf.utils import atomic_write_text, save_figure  # noqa: E402

from benchmarks.leaderboard.models import ModelSpec  # noqa: E402
from benchmarks.leaderboard.suites import SUITES, Suite, column_value  # noqa: E402


def comparison(entries: list[tuple[ModelSpec, dict]], suite: Suite, base_label: str = "base") -> list[dict]:
    """One row per model: each column and the average in percent, and their change against the base (in points)."""
    rows = []
    for spec, output in entries:
        row = {"label": spec.label, "method": spec.method, "iteration": spec.iteration, "series": spec.series,
               "model": spec.model}
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
        "The average is the plain mean of the columns.",
        "",
    ]
    if settings.get("tasks_dir"):
        notes += [f"**Not leaderboard data**: the tasks come from `{settings['tasks_dir']}` (a smoke run).", ""]
    if settings.get("limit") is not None:
        notes += [f"**Subsampled**: at most {settings['limit']} examples per task.", ""]
    if settings.get("max_gen_toks"):
        notes += [f"**Generation capped** at {settings['max_gen_toks']} tokens (GSM8K's default is 256).", ""]
    if settings.get("apply_chat_template"):
        notes += ["Prompts formatted with each model's chat template.", ""]
    models = [f"- `{row['label']}`: `{row['model']}`" for row in rows]
    return "\n".join(notes + lines + ["", "Models:", ""] + models) + "\n"


def _column_header(column) -> str:
    metric = " + ".join(name if filt in ("", "none") else f"{name} {filt}" for name, _, filt in
                        (m.partition(",") for m in column.metrics))
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


def write_report(out: Path, suite: Suite, entries: list[tuple[ModelSpec, dict]], settings: dict) -> dict:
    """Write comparison.csv, comparison.md, plots/ and dataset/ under `out`; return the comparison rows."""
    base_label = settings.get("base_label", "base")
    rows = comparison(entries, suite, base_label)
    write_csv(rows, suite, out / "comparison.csv")
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
