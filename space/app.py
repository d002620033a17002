"""SPAC vs DPO vs SPIN: a leaderboard, per-task plots across iterations, and side-by-side generation.

    python space/app.py             # local: results under outputs/ and results/, models from space/models.yaml
                                    # plus every outputs/<run>/<method>/iter_<t>/ (see space/README.md)
    python space/app.py --build     # first run the default recipes (accelerate launch recipes/{spac,dpo,spin}.py)

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
from matplotlib.figure import Figure  # noqa: E402

from build import build_default_outputs  # noqa: E402
from generation import MAX_TEMPERATURE, RequestRejected, SideBySide  # noqa: E402
from models import ModelEntry, default_pair, has_iterates, load_allowlist  # noqa: E402
from plots import results_figure  # noqa: E402
from results import leaderboard, load_results  # noqa: E402
from settings import REPO_ROOT, Settings, in_checkout  # noqa: E402


logger = logging.getLogger("spac_hf.space")

TITLE = "SPAC vs DPO vs SPIN"
INTRO = """\
# SPAC vs DPO vs SPIN

Models trained with [spac-hf](https://github.com/spac-hf/spac-hf): SPAC (Self-Play with Adversarial Critic,
[arXiv 2406.04274](https://arxiv.org/abs/2406.04274)) against iterative DPO and SPIN, all from the same SFT model.
"""
NO_ITERATES_NOTE = """\
**Only the SFT model is here: no trained iterates were found.** Produce them with
`accelerate launch recipes/spac.py` (and `recipes/dpo.py`, `recipes/spin.py`), or restart with
`python space/app.py --build`, which runs all three.
"""


def rejected(err: RequestRejected) -> gr.Error:
    """The message a rejected request shows, logged as one line: a rejection is not a server fault, so no traceback."""
    logger.info("Rejected a generation request: %s", err)
    return gr.Error(str(err), print_exception=False)


def results_view(settings: Settings) -> tuple[pd.DataFrame, str, Figure]:
    """The leaderboard table, a line on where the rows came from, and the per-task figure, freshly read."""
    frame, notes = load_results(settings.results_dirs, settings.results_dataset, settings.results_revision)
    sources = " ".join(notes) or "No results source is configured (set `SPAC_RESULTS_DATASET`)."
    if frame.empty:
        sources = "**No results rows yet.** " + sources
    return leaderboard(frame), sources, results_figure(frame)


def leaderboard_tab(settings: Settings) -> tuple[gr.Dataframe, gr.Markdown, gr.Plot, gr.Button]:
    initial_table, initial_sources, initial_figure = results_view(settings)
    with gr.Tab("Leaderboard"):
        sources = gr.Markdown(initial_sources)
        # Click a header to sort; the search box filters rows; the model column stays in view when scrolling right.
        # One datatype for all columns: the columns change with the tasks found, and the table sorts JSON numbers as
        # numbers whatever the datatype says.
        table = gr.Dataframe(
            value=initial_table,
            interactive=False,
            show_search="search",
            pinned_columns=1,
            wrap=True,
            elem_id="leaderboard",
            label="Leaderboard (average = plain mean of the task columns a model has)",
        )
        refresh = gr.Button("Reload results", size="sm")
    with gr.Tab("Plots"):
        plot = gr.Plot(value=initial_figure, label="Each task across iterations, one line per method")
    return table, sources, plot, refresh


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
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            left_text = gr.Textbox(label=left or "Left", lines=6, interactive=False, elem_id="left-output")
            right_text = gr.Textbox(label=right or "Right", lines=6, interactive=False, elem_id="right-output")
        if settings.example_prompts:
            gr.Examples([[p] for p in settings.example_prompts], inputs=[prompt], label="Held-out prompts")
    # The answer boxes are titled with the model that writes them.
    left_choice.change(lambda label: gr.Textbox(label=label), left_choice, left_text, api_visibility="private")
    right_choice.change(lambda label: gr.Textbox(label=label), right_choice, right_text, api_visibility="private")
    return (prompt, left_choice, right_choice, new_tokens, temperature), generate, (left_text, right_text)


def build_demo(settings: Settings, allowlist: dict[str, ModelEntry] | None = None) -> gr.Blocks:
    if allowlist is None:
        allowlist = load_allowlist(settings.models_file, settings.discover_root)
    side_by_side = SideBySide(allowlist, settings)

    def refresh_results():
        return results_view(settings)

    def generate_pair(prompt, left, right, max_new_tokens, temperature) -> Iterator[tuple[str, str]]:
        try:
            yield from side_by_side.run(prompt, left, right, max_new_tokens, temperature)
        except RequestRejected as err:
            raise rejected(err) from None

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        if not has_iterates(allowlist) and settings.discover_root is not None:
            gr.Markdown(NO_ITERATES_NOTE, elem_id="no-iterates")
        table, sources, plot, refresh = leaderboard_tab(settings)
        inputs, generate, outputs = side_by_side_tab(settings, allowlist)
        gr.on([demo.load, refresh.click], refresh_results, outputs=[table, sources, plot], api_name="results")
        gr.on(
            [generate.click, inputs[0].submit],
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
