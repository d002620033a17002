"""`DataCollatorForSPAC`: tokenized preference examples into one batch of response blocks (or a packed layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.data.data_collator import DataCollatorMixin

from .data import RESPONSES
from .packing import pack_examples


@dataclass
class DataCollatorForSPAC(DataCollatorMixin):
    """Pads tokenized preference examples into one batch of blocks [chosen; rejected; generated].

    Each example holds `prompt_ids` and `<response>_ids` for every response in `responses` (and optionally
    `ref_<response>_logps`). The batch has `input_ids`, `attention_mask` and `completion_mask` of shape
    [len(responses) * batch, length], right-padded, plus the reference log-probs of each response when present.
    With `share_prompt` and/or `padding_free` the batch is laid out by `spac_hf.packing.pack_examples` instead (one row
    per example holding its prompt once; or everything in one unpadded row), with the same per-sequence log-probs.
    """

    pad_token_id: int
    responses: tuple[str, ...] = RESPONSES
    max_length: int | None = None
    truncation_mode: str = "keep_start"
    pad_to_multiple_of: int | None = None
    share_prompt: bool = False
    padding_free: bool = False
    return_tensors: str = "pt"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.truncation_mode not in ("keep_start", "keep_end"):
            raise ValueError(f"Unsupported truncation mode: {self.truncation_mode!r}.")
        if self.share_prompt or self.padding_free:
            batch = pack_examples(
                examples,
                self.responses,
                self.pad_token_id,
                share_prompt=self.share_prompt,
                padding_free=self.padding_free,
                max_length=self.max_length,
                truncation_mode=self.truncation_mode,
                pad_to_multiple_of=self.pad_to_multiple_of,
            )
            return self._add_ref_logps(batch, examples)
        # Written straight into three preallocated arrays: the same batch as building a tensor per sequence and
        # padding them (TRL's `pad`), ~7x faster at batch 4 (benchmarks/cost), and this runs inside every step.
        rows = [(ex["prompt_ids"], ex[f"{response}_ids"]) for response in self.responses for ex in examples]
        lengths = [len(prompt) + len(completion) for prompt, completion in rows]
        kept = lengths if self.max_length is None else [min(n, self.max_length) for n in lengths]
        width = max(kept)
        if self.pad_to_multiple_of is not None and width % self.pad_to_multiple_of != 0:
            width += self.pad_to_multiple_of - width % self.pad_to_multiple_of
        input_ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        completion_mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, ((prompt, completion), n, k) in enumerate(zip(rows, lengths, kept)):
            start = n - k if self.truncation_mode == "keep_end" else 0  # first kept token of prompt + completion
            input_ids[row, :k] = (prompt + completion)[start : start + k]
            attention_mask[row, :k] = 1
            completion_mask[row, max(len(prompt) - start, 0) : k] = 1
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "completion_mask": torch.from_numpy(completion_mask),
        }
        return self._add_ref_logps(batch, examples)

    def _add_ref_logps(self, batch: dict[str, Any], examples: list[dict[str, Any]]) -> dict[str, Any]:
        for response in self.responses:
            key = f"ref_{response}_logps"
            if key in examples[0]:
                batch[key] = torch.tensor([example[key] for example in examples])
        return batch
