"""The metric Space's app: the `evaluate` widget for review_reward (the Hub runs it with the gradio in README.md)."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget


# Loaded from this folder, so the Space runs the metric script it ships (and so does a local copy, offline).
module = evaluate.load(str(Path(__file__).resolve().parent))
launch_gradio_widget(module)
