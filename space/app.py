"""SPAC vs DPO vs SPIN: a leaderboard, per-task plots across iterations, and side-by-side generation.

    python space/app.py             # local: results under outputs/ and results/, models from space/models.yaml
                                    # plus every outputs/<run>/<method>/iter_<t>/ (see space/README.md)
    python space/app.py --build     # first run the default recipes (spac-hf train --method spac, dpo, spin)

On a Hub Space the same file runs with the Space's folder alone: results from `SPAC_RESULTS_DATASET`, models from
the `repo:` entries of models.yaml.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: the Space also runs offline (and in tests)

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from build import build_default_outputs  # noqa: E402
from generation import MAX_TEMPERATURE, RequestRejected, SideBySide  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from models import ModelEntry, default_pair, has_iterates, load_allowlist  # noqa: E402
from plots import results_figure  # noqa: E402
from provenance import provenance  # noqa: E402
from rewards import describe, reward_program  # noqa: E402
from settings import REPO_ROOT, Settings, in_checkout  # noqa: E402

from results import (  # noqa: E402
    AVERAGE,
    CI_SUFFIX,
    SEEDS,
    _method_key,
    average_note,
    leaderboard,
    load_results,
    method_label,
    no_models,
    rankings,
    sources_of,
)


logger = logging.getLogger("spac_hf.space")

TITLE = "SPAC vs DPO vs SPIN"
CI_CHOICE = "± 95% CI"
INTRO = """\
# SPAC vs DPO vs SPIN

Models trained with [spac-hf](https://github.com/spac-hf/spac-hf): SPAC (Self-Play with Adversarial Critic,
[arXiv 2406.04274](https://arxiv.org/abs/2406.04274)) against iterative DPO and SPIN, all from the same SFT model.
"""
NO_ITERATES_NOTE = """\
**Only the SFT model is here: no trained iterates were found.** Produce them with
`spac-hf train --method spac` (and `--method dpo`, `--method spin`), or restart with
`python space/app.py --build`, which runs all three.
"""


def rejected(err: RequestRejected) -> gr.Error:
    """The message a rejected request shows, logged as one line: a rejection is not a server fault, so no traceback."""
    logger.info("Rejected a generation request: %s", err)
    return gr.Error(str(err), print_exception=False)


def read_results(settings: Settings) -> tuple[dict[str, pd.DataFrame], str]:
    """The rankings (one per number of seeds: single runs are never ranked with means over seeds) and a line on
    where the rows came from, freshly read."""
    frame, notes = load_results(settings.results_dirs, settings.results_dataset, settings.results_revision)
    sources = " ".join(notes) or "No results source is configured (set `SPAC_RESULTS_DATASET`)."
    if frame.empty:
        sources = "**No results rows yet.** " + sources
    return rankings(frame), sources


def optional_columns(models: pd.DataFrame) -> list[str]:
    """What the column chooser offers: the info columns, the intervals, and each task column."""
    return ["iteration", SEEDS, CI_CHOICE, *dict.fromkeys(models["column"])] if not models.empty else []


def ranking_view(
    ranks: dict[str, pd.DataFrame], ranking: str | None, methods: list[str] | None, shown: list[str] | None
) -> tuple[pd.DataFrame, str, Figure]:
    """The table of one ranking with the chosen methods and columns, what its Average is over, and its figure."""
    models = ranks.get(ranking, no_models())
    keys = None if methods is None else [m for m in models["method"].unique() if method_label(m) in methods]
    table = leaderboard(models, keys)
    note = average_note(table) if len(table) else "No models in this ranking."
    where = provenance(sources_of(models))
    note = f"{note}\n\n{where}" if where else note
    if shown is not None:
        keep = [
            c
            for c in table.columns
            if c in ("model", "method", AVERAGE)
            or c in shown
            or (c.endswith(CI_SUFFIX) and CI_CHOICE in shown and c[: -len(CI_SUFFIX)] in shown)
        ]
        table = table[keep]
    kept = models if keys is None else models[models["method"].isin([*keys, "sft"])]
    return table, note, results_figure(kept, title=ranking[:1].upper() + ranking[1:] if ranking else None)


def _ranking_controls(ranks: dict[str, pd.DataFrame], ranking: str):
    models = ranks.get(ranking, no_models())
    methods = [method_label(m) for m in sorted(models["method"].unique(), key=_method_key) if m != "sft"]
    columns = optional_columns(models)
    return (gr.CheckboxGroup(methods, value=methods), gr.CheckboxGroup(columns, value=columns),
            *ranking_view(ranks, ranking, None, None))  # fmt: skip


def leaderboard_tab(settings: Settings):
    ranks, initial_sources = read_results(settings)
    names = list(ranks)
    first = names[-1] if names else None  # the headline source's means over the most seeds (`rankings`)
    models = ranks.get(first, no_models())
    method_choices = [method_label(m) for m in sorted(models["method"].unique(), key=_method_key) if m != "sft"]
    column_choices = optional_columns(models)
    table, note, figure = ranking_view(ranks, first, None, None)
    state = gr.State(ranks)
    with gr.Tab("Leaderboard"):
        sources = gr.Markdown(initial_sources)
        with gr.Row():
            ranking = gr.Radio(names, value=first, label="Ranking (single runs and means over seeds are never mixed)",
                               elem_id="ranking")  # fmt: skip
            method_filter = gr.CheckboxGroup(method_choices, value=method_choices, label="Methods",
                                             elem_id="method-filter")  # fmt: skip
        columns = gr.CheckboxGroup(column_choices, value=column_choices, label="Columns", elem_id="column-chooser")
        average = gr.Markdown(note, elem_id="average-note")
        # Click a header to sort; the search box filters rows; the model column stays in view when scrolling right.
        table_view = gr.Dataframe(
            value=table,
            interactive=False,
            show_search="search",
            pinned_columns=1,
            wrap=True,
            elem_id="leaderboard",
            label="Leaderboard: one row per model, best Average first",
        )
        refresh = gr.Button("Reload results", size="sm")
    with gr.Tab("Plots"):
        gr.Markdown("Each task across iterations for the ranking chosen on the Leaderboard tab: one line per method, "
                    "error bars = 95% CI, all starting from the SFT model.")  # fmt: skip
        plot = gr.Plot(value=figure, show_label=False, elem_id="plots")
    controls = (state, sources, ranking, method_filter, columns)
    return controls, (table_view, average, plot), refresh


def side_by_side_tab(settings: Settings, allowlist: dict[str, ModelEntry]):
    labels = list(allowlist)
    left, right = default_pair(allowlist)
    with gr.Tab("Side by side"):
        if not labels:
            gr.Markdown("**No models are configured.** List Hub repos in `models.yaml` (see the README).")
        prompt = gr.Textbox(
            label=f"Prompt (at most {settings.max_prompt_chars} characters, {settings.max_prompt_tokens} tokens)",
            placeholder=settings.example_prompts[0] if settings.example_prompts else "",
            # No `max_length`: the textbox would cut a longer prompt silently and generation would run on the cut
            # text. The handler rejects it with a message instead.
            elem_id="prompt",
        )
        with gr.Row():
            left_choice = gr.Dropdown(labels, value=left, label="Left model", elem_id="left-model")
            right_choice = gr.Dropdown(labels, value=right, label="Right model", elem_id="right-model")
        with gr.Row():
            new_tokens = gr.Slider(
                1, settings.max_new_tokens, value=min(settings.default_new_tokens, settings.max_new_tokens), step=1,
                label="Max new tokens",
            )  # fmt: skip
            temperature = gr.Slider(
                0, MAX_TEMPERATURE, value=1.0, step=0.05,
                label="Temperature (0 = greedy; the results were measured at 1)",
            )  # fmt: skip
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            # The same prompt and settings again: a new sample at temperature > 0.
            regenerate = gr.Button("Regenerate", elem_id="regenerate")
        with gr.Row():
            with gr.Column():
                left_text = gr.Textbox(label=left or "Left", lines=6, interactive=False, elem_id="left-output")
                left_reward = gr.Markdown(elem_id="left-reward")
            with gr.Column():
                right_text = gr.Textbox(label=right or "Right", lines=6, interactive=False, elem_id="right-output")
                right_reward = gr.Markdown(elem_id="right-reward")
        if settings.example_prompts:
            gr.Examples([[p] for p in settings.example_prompts], inputs=[prompt], label="Held-out prompts")
    # The answer boxes are titled with the model that writes them.
    left_choice.change(lambda label: gr.Textbox(label=label), left_choice, left_text, api_visibility="private")
    right_choice.change(lambda label: gr.Textbox(label=label), right_choice, right_text, api_visibility="private")
    inputs = (prompt, left_choice, right_choice, new_tokens, temperature)
    return inputs, (generate, regenerate), (left_text, right_text, left_reward, right_reward)


def build_demo(settings: Settings, allowlist: dict[str, ModelEntry] | None = None) -> gr.Blocks:
    if allowlist is None:
        allowlist = load_allowlist(settings.models_file, settings.discover_root)
    side_by_side = SideBySide(allowlist, settings)

    reward = reward_program(settings.reward_task)

    def reload(ranking):
        """Re-read the results; keep the ranking shown if it is still there, show every method and column."""
        ranks, sources = read_results(settings)
        names = list(ranks)
        ranking = ranking if ranking in names else (names[-1] if names else None)
        return (ranks, sources, gr.Radio(names, value=ranking), *_ranking_controls(ranks, ranking))

    def scored(prompt, texts: tuple[str, str]) -> tuple[str, str]:
        if reward is None:
            return describe(None, settings.reward_task), describe(None, settings.reward_task)
        prompt = prompt.strip() if isinstance(prompt, str) else ""
        if not prompt:  # nothing was asked (the metric scores an answer to its prompt)
            return "", ""
        return tuple(describe(reward(prompt, text), settings.reward_task) for text in texts)

    def generate_pair(prompt, left, right, max_new_tokens, temperature) -> Iterator[tuple[str, str, str, str]]:
        texts = ("", "")
        # The previous answers go first: a rejected prompt must not leave them on screen as if they answered it.
        yield "", "", "", ""
        try:
            for texts in side_by_side.run(prompt, left, right, max_new_tokens, temperature):
                yield (*texts, "", "")  # the reward of an answer still being written would be meaningless
        except RequestRejected as err:
            raise rejected(err) from None
        yield (*texts, *scored(prompt, texts))

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        if not has_iterates(allowlist) and settings.discover_root is not None:
            gr.Markdown(NO_ITERATES_NOTE, elem_id="no-iterates")
        controls, views, refresh = leaderboard_tab(settings)
        state, sources, ranking, method_filter, columns = controls
        inputs, (generate, regenerate), outputs = side_by_side_tab(settings, allowlist)
        gr.on([demo.load, refresh.click], reload, inputs=[ranking],
              outputs=[state, sources, ranking, method_filter, columns, *views], api_name="results")  # fmt: skip
        # A new ranking shows all its methods and columns; the filters then narrow what is shown.
        ranking.input(_ranking_controls, [state, ranking], [method_filter, columns, *views], api_visibility="private")
        gr.on([method_filter.input, columns.input], ranking_view, [state, ranking, method_filter, columns],
              list(views), api_name="ranking")  # fmt: skip
        gr.on(
            [generate.click, regenerate.click, inputs[0].submit],
            generate_pair,
            inputs=list(inputs),
            outputs=list(outputs),
            api_name="generate",
            concurrency_limit=settings.generation_concurrency,
            concurrency_id="generate",
        )
    # Requests beyond `queue_size` are refused at once instead of waiting behind a long line of generations.
    demo.queue(max_size=settings.queue_size)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="run the default recipes first (minutes; checkout only)")
    parser.add_argument("--results", action="append", metavar="DIR", help="folder with **/data/results.jsonl")
    parser.add_argument("--models", metavar="YAML", help="model allowlist (default: space/models.yaml)")
    parser.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT or the first free from 7860)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.build:
        if not in_checkout():
            raise SystemExit("--build runs the recipes of a spac-hf checkout; this folder is not in one.")
        build_default_outputs(REPO_ROOT)
    settings = Settings.from_env(results_dirs=args.results, models_file=args.models)
    demo = build_demo(settings)
    # Gradio prints "* Running on local URL: http://127.0.0.1:7860".
    demo.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
