"""Turn the cost benchmark's results into table.md, table.csv, ratios.png and iteration_share.png (all atomic).

python -m benchmarks.cost.report results/cost      # re-render them from an existing results.json
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib
import matplotlib.ticker


matplotlib.use("Agg")  # headless
import matplotlib.pyplot as plt

from spac_hf.scripts.script_utils import save_figure
from spac_hf.utils import atomic_write_text

from .clock import PHASES
from .variants import LABELS


MIB = 2**20
SHARE_PHASES = ("generation", "reference", "training", "setup")
SHARE_COLORS = {"generation": "tab:orange", "reference": "tab:purple", "training": "tab:blue", "setup": "tab:gray"}


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n < 1e7 else f"{n / 1e6:.0f}M"


# ---------------------------------------------------------------------- rows


def summary_rows(results: dict) -> list[dict]:
    """One flat row per model size (the CSV, and the main markdown table)."""
    rows = []
    for entry in results["sizes"]:
        time, memory = entry["time"], entry["memory"]
        rows.append({
            "size": entry["size"],
            "parameters": entry["parameters"],
            "dpo_step_s": time["dpo"]["step_seconds"],
            "spac_step_s": time["spac"]["step_seconds"],
            "spac_ref_forward_step_s": time["spac_ref_forward"]["step_seconds"],
            "time_ratio_spac_dpo": time["spac"]["ratio_to_dpo"],
            "time_ratio_spac_dpo_cpu": time["spac"]["ratio_to_dpo_cpu"],
            "time_ratio_spac_ref_forward_dpo": time["spac_ref_forward"]["ratio_to_dpo"],
            "dpo_peak_mib": memory["dpo"]["peak_bytes"] / MIB,
            "spac_peak_mib": memory["spac"]["peak_bytes"] / MIB,
            "spac_ref_forward_peak_mib": memory["spac_ref_forward"]["peak_bytes"] / MIB,
            "memory_ratio_peak": memory["ratios"]["spac"]["peak"],
            "memory_ratio_step": memory["ratios"]["spac"]["step"],
            "memory_ratio_saved": memory["ratios"]["spac"]["saved"],
            "memory_ratio_peak_ref_forward": memory["ratios"]["spac_ref_forward"]["peak"],
            "generation_tokens_per_s": entry["generation"]["tokens_per_second"],
            "measured_steps": time["spac"]["steps"],
        })  # fmt: skip
    return rows


def table_csv(results: dict) -> str:
    rows = summary_rows(results)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["size"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return out.getvalue()


def table_markdown(results: dict) -> str:
    settings = results["settings"]
    step = settings["step"]
    lines = [
        "# Cost benchmark: SPACTrainer against TRL's DPOTrainer",
        "",
        f"Batch {step['batch_size']}, prompt {step['prompt_tokens']} + response {step['response_tokens']} tokens; "
        f"device {step['device']}, {settings['threads']} torch thread(s), gradient checkpointing "
        f"{'on' if step['gradient_checkpointing'] else 'off'} (TRL's default is on), "
        f"{'bf16' if step['bf16'] else 'fp32'}. DPO trains on {2 * step['batch_size']} sequences a step, SPAC on "
        f"{3 * step['batch_size']}. Times: median step (fetch + forward + backward + clip + optimizer), ratios per "
        "round (interleaved) then median over rounds; `cpu` = the same from process CPU time. Memory: peak of one "
        "step in a fresh process (RSS on CPU); `step` = peak minus the memory in use before the step; `saved` = "
        "activations autograd keeps for backward.",
        "",
        "| params | DPO s/step | SPAC s/step | SPAC/DPO time | (cpu) | SPAC+ref fwd/DPO | DPO peak MiB "
        "| SPAC peak MiB | SPAC/DPO peak | step | saved | gen tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        lines.append(
            f"| {_params(row['parameters'])} | {row['dpo_step_s']:.3f} | {row['spac_step_s']:.3f} "
            f"| **{row['time_ratio_spac_dpo']:.2f}** | {row['time_ratio_spac_dpo_cpu']:.2f} "
            f"| {row['time_ratio_spac_ref_forward_dpo']:.2f} | {row['dpo_peak_mib']:.0f} | {row['spac_peak_mib']:.0f} "
            f"| **{row['memory_ratio_peak']:.2f}** | {row['memory_ratio_step']:.2f} | {row['memory_ratio_saved']:.2f} "
            f"| {row['generation_tokens_per_s']:.0f} |"
        )
    lines += ["", "## Where a step's time goes (median ms per phase)", ""]
    header = "| params | trainer | " + " | ".join(PHASES) + " | total | page faults |"
    lines += [header, "|" + "---|" * (len(PHASES) + 4)]
    for entry in results["sizes"]:
        for variant, label in ((v, LABELS[v]) for v in entry["time"]):
            t = entry["time"][variant]
            cells = " | ".join(f"{1e3 * t['phases_seconds'][p]:.1f}" for p in PHASES)
            lines.append(
                f"| {_params(entry['parameters'])} | {label} | {cells} | {1e3 * t['step_seconds']:.1f} "
                f"| {t['page_faults_per_step']:.0f} |"
            )
    if results.get("iteration_share"):
        lines += [
            "",
            "## One SPAC iteration: share of the wall time",
            "",
            "| params | prompts | epochs | steps | generation | reference log-probs | training | setup | total s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for share in results["iteration_share"]:
            cells = " | ".join(f"{100 * share['share'][p]:.0f}% ({share['seconds'][p]:.1f} s)" for p in SHARE_PHASES)
            lines.append(
                f"| {_params(share['parameters'])} | {share['prompts']} | {share['epochs']:g} "
                f"| {share['optimizer_steps']} | {cells} | {share['total_seconds']:.1f} |"
            )
    env = results["environment"]
    lines += [
        "",
        f"Machine: {env.get('processor')}, {env.get('cpu_count')} CPUs, {env.get('memory_gib')} GiB, "
        f"{', '.join(env.get('gpus', [])) or 'no GPU'}; torch {env['packages'].get('torch')}, transformers "
        f"{env['packages'].get('transformers')}, trl {env['packages'].get('trl')}. Run time "
        f"{results['runtime_seconds']:.0f} s. Command: `{results['command']}`",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- plots


def ratios_figure(results: dict):
    rows = summary_rows(results)
    x = [row["parameters"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for axis in (left, right):
        axis.axhline(1.5, color="black", linestyle="--", linewidth=1, label="1.5 (3 sequences / 2)")
        axis.axhline(1.0, color="gray", linestyle=":", linewidth=1)
        axis.set_xscale("log")
        axis.set_xlabel("parameters")
        axis.grid(alpha=0.3)
    left.plot(x, [r["time_ratio_spac_dpo"] for r in rows], "o-", color="tab:blue", label="SPAC / DPO (wall)")
    left.plot(x, [r["time_ratio_spac_dpo_cpu"] for r in rows], "s--", color="tab:cyan", label="SPAC / DPO (CPU time)")
    left.plot(
        x,
        [r["time_ratio_spac_ref_forward_dpo"] for r in rows],
        "^-",
        color="tab:red",
        label="SPAC, ref forward each step / DPO",
    )
    for entry, xi in zip(results["sizes"], x):  # the per-round spread of the main ratio
        per_round = entry["time"]["spac"]["ratio_per_round"]
        left.vlines(xi, min(per_round), max(per_round), color="tab:blue", alpha=0.4, linewidth=3)
    left.set_ylabel("time per training step, ratio to DPO")
    left.set_title("Step time")
    right.plot(x, [r["memory_ratio_peak"] for r in rows], "o-", color="tab:green", label="SPAC / DPO, peak")
    right.plot(
        x,
        [r["memory_ratio_step"] for r in rows],
        "s--",
        color="tab:olive",
        label="SPAC / DPO, peak - memory before step",
    )
    right.plot(
        x,
        [r["memory_ratio_saved"] for r in rows],
        "d:",
        color="tab:brown",
        label="SPAC / DPO, activations saved for backward",
    )
    right.plot(
        x,
        [r["memory_ratio_peak_ref_forward"] for r in rows],
        "^-",
        color="tab:red",
        label="SPAC, ref forward each step / DPO, peak",
    )
    right.set_ylabel("peak memory of a step, ratio to DPO")
    right.set_title("Memory (" + results["sizes"][0]["memory"]["dpo"]["method"].replace("_", " ") + ")")
    for axis in (left, right):
        axis.legend(fontsize=8, loc="best")
        axis.set_ylim(bottom=0.8)
        axis.set_xticks(x, [_params(n) for n in x], rotation=45)  # label the measured sizes, not powers of ten
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    step = results["settings"]["step"]
    fig.suptitle(
        f"SPACTrainer vs TRL DPOTrainer, batch {step['batch_size']}, "
        f"{step['prompt_tokens']}+{step['response_tokens']} tokens, {step['device']}, "
        f"{results['settings']['threads']} thread(s)",
        fontsize=10,
    )
    return fig


def share_figure(results: dict):
    shares = results.get("iteration_share") or []
    fig, axis = plt.subplots(figsize=(8, 1.2 + 0.6 * max(1, len(shares))))
    labels = [f"{_params(s['parameters'])}\n{s['prompts']} prompts, {s['epochs']:g} ep." for s in shares]
    left = [0.0] * len(shares)
    for phase in SHARE_PHASES:
        widths = [100 * s["share"][phase] for s in shares]
        axis.barh(labels, widths, left=left, color=SHARE_COLORS[phase], label=phase)
        for i, (w, l0) in enumerate(zip(widths, left)):
            if w >= 6:
                axis.text(l0 + w / 2, i, f"{w:.0f}%", ha="center", va="center", color="white", fontsize=8)
        left = [a + b for a, b in zip(left, widths)]
    axis.invert_yaxis()  # the first size on top
    axis.set_xlim(0, 100)
    axis.set_xlabel("% of one SPAC iteration's wall time")
    axis.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35 if shares else 0.5))
    axis.set_title("Where one SPAC iteration goes (self-play generation, reference log-probs, training)", fontsize=10)
    return fig


def write_report(results: dict, out: Path) -> None:
    atomic_write_text(out / "table.md", table_markdown(results))
    atomic_write_text(out / "table.csv", table_csv(results))
    save_figure(ratios_figure(results), out / "ratios.png", dpi=120, bbox_inches="tight")
    save_figure(share_figure(results), out / "iteration_share.png", dpi=120, bbox_inches="tight")


if __name__ == "__main__":  # re-render the tables and plots of an existing run: python -m benchmarks.cost.report DIR
    import json
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/cost")
    write_report(json.loads((folder / "results.json").read_text()), folder)
