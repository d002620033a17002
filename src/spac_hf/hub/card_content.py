"""What a model card tells a reader beyond the metadata: what the model was trained on and for, how to run it (the
snippet runs as written: messages only for a model with a chat template), and a few of its answers beside the
starting model's on the same prompts. Kept apart from `cards.py`, which assembles the card."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..utils import recorded_path
from ._values import cell as card_cell


DEFAULT_PROMPT = "Write one sentence about self-play."


def local_card_metadata(path: str) -> dict[str, Any]:
    """The YAML front matter of a local model's or data set's `README.md` ({} when there is none)."""
    readme = Path(path) / "README.md"
    if not readme.is_file():
        return {}
    match = re.match(r"^---\n(.*?)\n---\n", readme.read_text(encoding="utf-8"), flags=re.S)
    try:
        return (yaml.safe_load(match.group(1)) or {}) if match else {}
    except yaml.YAMLError:
        return {}


def card_title(path: str) -> str | None:
    """The first `# ` heading of a local `README.md`: how a shipped data set describes itself."""
    readme = Path(path) / "README.md"
    if not readme.is_file():
        return None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def trained_for_sentence(method_label: str, datasets: Sequence[str], base_model: str) -> str:
    """One sentence: what the model was trained on and to do."""
    parts = [f"`{recorded_path(name)}`" + (f" ({card_title(name)})" if card_title(name) else "") for name in datasets]
    data = ", ".join(parts) or "its preference data"
    return (
        f"**Trained on** {data}, **to** answer its prompts the way the preferred responses do: {method_label} "
        f"turns pairs of (preferred, rejected) answers into a model that gives the better kind, starting from "
        f"`{recorded_path(base_model)}`."
    )


def usage_section(model_ref: str, chat: bool, prompt: str | None, max_new_tokens: int = 48) -> str:
    """A snippet that runs as written against `model_ref`: messages through the chat template, or plain text."""
    prompt, model_ref = json.dumps(prompt or DEFAULT_PROMPT), json.dumps(model_ref)  # Python string literals
    options = f"max_new_tokens={max_new_tokens}, return_full_text=False"
    if chat:
        call = (
            f'messages = [{{"role": "user", "content": {prompt}}}]\n'
            f'print(generator(messages, {options})[0]["generated_text"])'
        )
    else:
        call = (
            "# A plain text model (no chat template): give it the prompt as text.\n"
            f'print(generator({prompt}, {options})[0]["generated_text"])'
        )
    return f"""\
## How to use

```python
from transformers import pipeline

generator = pipeline("text-generation", model={model_ref})
{call}
```"""


def samples_section(samples: Sequence[Mapping[str, Any]] | None) -> str:
    """Rows {prompt, response, reward, sft_response, sft_reward} as a table: this model beside the starting model."""
    if not samples:
        return ""
    lines = [
        "## Sample outputs",
        "",
        "Sampled at temperature 1 on held-out prompts, beside the starting model's answer to the same prompt "
        "(true reward in brackets when the task has one).",
        "",
        "| prompt | starting model | this model |",
        "|---|---|---|",
    ]
    for sample in samples:

        def answer(text, reward):
            shown = card_cell(" ".join(str(text).split()))
            return f"{shown} ({reward:+.2f})" if isinstance(reward, (int, float)) else shown

        lines.append(
            f"| {card_cell(sample['prompt'])} | {answer(sample['sft_response'], sample.get('sft_reward'))} | "
            f"{answer(sample['response'], sample.get('reward'))} |"
        )
    return "\n".join(lines)


def paired_samples(base: Mapping[str, Any] | None, this: Mapping[str, Any] | None, count: int = 3) -> list[dict]:
    """The first `count` prompts both evaluations sampled (the evaluator scores every model on the same prompts)."""
    if not base or not this:
        return []
    sft = {str(e["prompt"]): e for e in base.get("examples", [])}
    rows = []
    for example in this.get("examples", []):
        match = sft.get(str(example["prompt"]))
        if match is None or not isinstance(example["prompt"], str):
            continue
        rows.append({"prompt": example["prompt"], "response": example["response"], "reward": example.get("reward"),
                     "sft_response": match["response"], "sft_reward": match.get("reward")})  # fmt: skip
    # Prompts where the two models answered differently first: they show what training changed.
    rows.sort(key=lambda row: row["response"] == row["sft_response"])
    return rows[:count]
