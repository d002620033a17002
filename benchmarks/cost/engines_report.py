"""engines.md and engines.png, from results/cost/generation/engines.json alone (written by engines.py)."""

from __future__ import annotations

from pathlib import Path

from spac_hf.utils import atomic_write_text


BACKEND_LABELS = {
    "hf": "transformers generate (float32)",
    "ctranslate2-float32": "CTranslate2 float32 (exact mode)",
    "ctranslate2-int8": "CTranslate2 int8 (fast mode)",
}


def matmul_limit(results: dict) -> float:
    """The machine's measured matmul limit: the best GFLOP/s of any matmul run, any thread count."""
    best = 0.0
    for run in results["sections"].get("matmul", []):
        for key, shapes in run.items():
            if key.startswith("threads_"):
                best = max(best, *shapes.values())
    return best


def grid_cells(results: dict) -> dict[tuple[str, int, str], dict]:
    """(model, batch, backend) -> the row measured last for that cell."""
    return {(r["model"], r["batch"], r["backend"]): r for r in results["sections"].get("grid", {}).get("rows", [])}


def best_share(results: dict, model: str, backend: str) -> float:
    """The highest share of the matmul limit a backend reached on a model, over the batch sizes."""
    rows = [r for (m, _, k), r in grid_cells(results).items() if m == model and k == backend]
    return max(r["gflops"] for r in rows) / matmul_limit(results)


def ifeval_runs(rows: list[dict]) -> dict[str, list[dict]]:
    """The ifeval rows by run (one `engines.py --section ifeval` invocation), in order; rows written before runs were
    recorded form one run, "earlier"."""
    runs: dict[str, list[dict]] = {}
    for row in rows:
        runs.setdefault(row.get("run", "earlier"), []).append(row)
    return runs


def ifeval_ratios(rows: list[dict], baseline: str = "hf") -> dict[str, float]:
    """Each backend's tokens/s over the baseline's in the same run, for the latest run that has the baseline.
    `baseline="best hf"`: the fastest transformers layout of that run (hf, hf-t<k>, hf-p<k>)."""
    for run in reversed(list(ifeval_runs(rows).values())):
        hf = [
            r["tokens_per_s"]
            for r in run
            if r["backend"] == baseline or (baseline == "best hf" and r["backend"].startswith("hf"))
        ]
        if hf:
            return {r["backend"]: r["tokens_per_s"] / max(hf) for r in run}
    return {}


def report(results: dict) -> str:
    limit = matmul_limit(results)
    lines = ["# Generation engines side by side", ""]
    env = results.get("environment", {})
    lines += [f"Machine: {env.get('cpu', env.get('processor', 'see environment in engines.json'))}.", ""]
    if results["sections"].get("matmul"):
        lines += ["## Matmul throughput (torch)", "", "| started | load avg | threads | decode 64x576x1536 | 1024^3 |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for run in results["sections"]["matmul"]:
            for key in sorted(k for k in run if k.startswith("threads_")):
                shapes = run[key]
                lines.append(
                    f"| {run['started']} | {run['load_avg_start'][0]} | {key.split('_')[1]} | "
                    f"{shapes['decode_64x576x1536']} GFLOP/s | {shapes['square_1024']} GFLOP/s |"
                )
        lines += ["", f"The machine's measured matmul limit (best of the above): **{limit} GFLOP/s**.", ""]
    cells = grid_cells(results)
    if cells:
        grid = results["sections"]["grid"]
        lines += ["## Tokens/s by batch size (greedy, fixed answer length, one batch)", "",
                  "Rows without a workers count were measured before the engine had workers (one worker on 2 "
                  "threads).", "",
                  "| model | batch | backend | workers | tokens/s | x hf | GFLOP/s | share of limit | load avg |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for (model, batch, backend), row in sorted(cells.items()):
            hf = cells.get((model, batch, "hf"))
            ratio = f"{row['tokens_per_s'] / hf['tokens_per_s']:.1f}" if hf else ""
            share = f"{row['gflops'] / limit:.0%}" if limit else ""
            lines.append(
                f"| {model} | {batch} | {backend} | {row.get('workers', '')} | {row['tokens_per_s']} | {ratio} | "
                f"{row['gflops']} | {share} | {row['load_avg'][0]} |"
            )
        conversion = ", ".join(f"{m} {s} s" for m, s in grid.get("conversion_s", {}).items())
        lines += ["", f"Conversion of one iterate (transformers folder to CTranslate2): {conversion}.", ""]
    kl_rows = results["sections"].get("kl", {}).get("rows", [])
    if kl_rows:
        lines += ["## The fast mode's distance to float32", "",
                  "| model | prompts (source) | answer positions | mean KL(float32 ‖ int8) | max | argmax differs |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in kl_rows:
            lines.append(
                f"| {r['model']} | {r['prompts']} ({r['source']}) | {r['positions']} | {r['mean_kl']:.2e} | "
                f"{r['max_kl']:.2e} | {r['argmax_differs']:.1%} |"
            )
        lines.append("")
    for key, section in results["sections"].get("ifeval", {}).items():
        lines += [f"## IFEval prompts at their own answer lengths ({key})", "",
                  "Ratios are against transformers in the same run: `x hf` against `generate` in one process on 2 "
                  "threads, `x best hf` against the fastest transformers layout of that run (`hf-t1`: one thread, "
                  "`hf-p2`: two one-thread processes on the engine's batches).", "",
                  "| run | backend | workers x threads | tokens | seconds | tokens/s | x hf | x best hf | same as hf "
                  "| load avg |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for run, rows in ifeval_runs(section["rows"]).items():
            ratios, best = ifeval_ratios(rows), ifeval_ratios(rows, "best hf")
            for r in rows:
                ratio = f"{ratios[r['backend']]:.1f}" if r["backend"] in ratios else ""
                best_ratio = f"{best[r['backend']]:.1f}" if r["backend"] in best else ""
                same = f"{r['same_text_as_hf']} of {r['prompts']}" if "same_text_as_hf" in r else ""
                # Rows measured before workers existed ran one worker on 2 threads.
                workers, threads = r.get("workers", 1), r.get("threads", 2)
                layout = f"{workers} x {threads // workers}"
                lines.append(
                    f"| {run} | {r['backend']} | {layout} | {r['answer_tokens']} | {r['seconds']} "
                    f"| {r['tokens_per_s']} | {ratio} | {best_ratio} | {same} | {r['load_avg'][0]} |"
                )
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spac_hf.scripts.script_utils import save_figure

    cells = grid_cells(results)
    models = sorted({m for m, _, _ in cells})
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for backend, label in BACKEND_LABELS.items():
            points = sorted((b, r["tokens_per_s"]) for (m, b, k), r in cells.items() if m == model and k == backend)
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("generated tokens/s")
        ax.set_title(model)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(out: Path, results: dict) -> None:
    atomic_write_text(out / "engines.md", report(results) + "\n")
    if grid_cells(results):
        plot(results, out / "engines.png")
