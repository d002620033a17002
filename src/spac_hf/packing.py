"""Shared-prompt and padding-free batches: the row layout, the attention mask, and when a model can take them.

SPAC scores three responses of one prompt. Padded like DPO's batches, the prompt goes through the model once per
response. With `share_prompt`, an example is one row

    [prompt[:-1] | prompt[-1], chosen | prompt[-1], rejected | prompt[-1], generated]

in which each response *block* starts with a copy of the prompt's last token (at the same position, P - 1). The
block's copy sees the same tokens at the same positions as the prompt's last token does in an unshared sequence, so
its hidden state, and the log-prob it gives the response's first token, are the same; every later token of a block sees
the prompt and the earlier tokens of its own block only, at positions continuing from the prompt's end. So every
per-sequence log-prob equals the unshared forward's, for P - 1 + 3 (R + 1) tokens instead of 3 (P + R). (Sharing the
last prompt token itself would need one position to predict three different next tokens.)

With `padding_free`, the units above (one row per example when sharing, one row per sequence otherwise) are
concatenated into a single row with no padding, each starting again at position 0.

Both are expressed with four integer tensors per token, from which the attention mask is built on the device:
`document_ids` (which unit; -1 for padding), `branch_ids` (0 for shared prompt tokens, k for the k-th response block),
`position_ids`, and `sequence_ids` (which of the `n * batch` sequences the token's label belongs to, in the order
[chosen; rejected; generated], or -1 where nothing is scored). A query token attends to a key token of the same
document that is not after it and is either a prompt token or in the same block (and itself, always, so that no row of
the mask is empty: a padding token only sees itself).

transformers 5 takes a 4D `attention_mask` as given (`masking_utils._preprocess_mask_arguments` returns it
untouched, for full and sliding-window layers alike): boolean for `sdpa` (True = attend), additive float for `eager`,
a `BlockMask` for `flex_attention`. Other implementations (flash attention, paged or kernel-hub ones) build their own
masks and cannot take this one.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch


MASKED_IMPLEMENTATIONS = ("eager", "sdpa")  # take a dense 4D mask on any device
FLEX_IMPLEMENTATIONS = ("flex_attention",)  # take a BlockMask; CUDA only here (untested until it runs on a GPU)


def _response_keep(prompt_len: int, response_len: int, max_length: int | None) -> int:
    """Tokens of a response kept under `max_length` with keep_start truncation of prompt + response."""
    if max_length is None:
        return response_len
    return max(min(prompt_len + response_len, max_length) - prompt_len, 0)


# One sequence or shared-prompt block of a row: tokens, positions, branch ids, shift labels, sequence ids.
Unit = tuple[list[int], list[int], list[int], list[int], list[int]]


def pack_examples(
    examples: list[dict[str, Any]],
    responses: tuple[str, ...],
    pad_token_id: int,
    *,
    share_prompt: bool,
    padding_free: bool,
    max_length: int | None = None,
    truncation_mode: str = "keep_start",
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Lay tokenized examples out as shared-prompt and/or padding-free rows (see the module docstring).

    Returns `input_ids`, `position_ids`, `shift_labels` (the token each position predicts, -100 where nothing is
    scored), `sequence_ids`, `document_ids`, `branch_ids` (all `[rows, length]`) and `completion_lengths`
    (`[n * batch]`, scored tokens per sequence; its size is the number of sequences).
    """
    if truncation_mode not in ("keep_start", "keep_end"):
        raise ValueError(f"Unsupported truncation mode: {truncation_mode!r}.")
    if share_prompt and truncation_mode != "keep_start":
        raise ValueError(
            "share_prompt needs truncation_mode='keep_start': keep_end cuts each sequence's prompt apart."
        )
    batch = len(examples)
    units: list[Unit] = []
    lengths = np.zeros(len(responses) * batch, dtype=np.int64)
    for i, example in enumerate(examples):
        if share_prompt:
            units.append(_shared_prompt_unit(example, responses, i, batch, max_length, lengths))
        else:
            units += _separate_units(example, responses, i, batch, max_length, truncation_mode, lengths)
    rows = [units] if padding_free else [[unit] for unit in units]
    out = {**_lay_out(rows, pad_token_id, pad_to_multiple_of), "completion_lengths": lengths}
    return {key: torch.from_numpy(value) for key, value in out.items()}


def _shared_prompt_unit(example, responses, i: int, batch: int, max_length: int | None, lengths) -> Unit:
    """Example `i`'s prompt once (but its last token), then each response as a branch starting from that token."""
    prompt = list(example["prompt_ids"])
    tokens, positions = prompt[:-1], list(range(len(prompt) - 1))
    branch, labels, seq = [0] * len(tokens), [-100] * len(tokens), [-1] * len(tokens)
    start = max(len(prompt) - 1, 0)
    for k, response in enumerate(responses):
        ids = list(example[f"{response}_ids"])
        block = prompt[-1:] + ids[: _response_keep(len(prompt), len(ids), max_length)]
        s = k * batch + i
        tokens += block
        positions += range(start, start + len(block))
        branch += [k + 1] * len(block)
        labels += block[1:] + [-100]
        seq += [s] * (len(block) - 1) + [-1]
        lengths[s] = len(block) - 1
    return tokens, positions, branch, labels, seq


def _separate_units(
    example, responses, i: int, batch: int, max_length: int | None, truncation_mode: str, lengths
) -> list[Unit]:
    """Example `i` as one (prompt + response) sequence per response, truncated as `truncation_mode` says."""
    prompt = list(example["prompt_ids"])
    units = []
    for k, response in enumerate(responses):
        full = prompt + list(example[f"{response}_ids"])
        n = len(full)
        kept = n if max_length is None else min(n, max_length)
        start = n - kept if truncation_mode == "keep_end" else 0
        tokens = full[start : start + kept]
        first = max(len(prompt) - start, 0)  # first completion token within `tokens`
        s = k * batch + i
        # Position t predicts token t + 1, scored when that token is a completion token.
        labels = [tokens[t + 1] if t + 1 >= first else -100 for t in range(kept - 1)] + [-100]
        seq = [s if t + 1 >= first else -1 for t in range(kept - 1)] + [-1]
        lengths[s] = sum(1 for x in seq if x >= 0)
        units.append((tokens, list(range(kept)), [0] * kept, labels, seq))
    return units


def _lay_out(rows: list[list[Unit]], pad_token_id: int, pad_to_multiple_of: int | None) -> dict[str, np.ndarray]:
    """The units of each row side by side, padded to one width; each unit is a document of its own."""
    width = max(sum(len(unit[0]) for unit in row) for row in rows)
    if pad_to_multiple_of is not None and width % pad_to_multiple_of != 0:
        width += pad_to_multiple_of - width % pad_to_multiple_of
    shape = (len(rows), width)
    out = {
        "input_ids": np.full(shape, pad_token_id, dtype=np.int64),
        "position_ids": np.zeros(shape, dtype=np.int64),
        "shift_labels": np.full(shape, -100, dtype=np.int64),
        "sequence_ids": np.full(shape, -1, dtype=np.int64),
        "document_ids": np.full(shape, -1, dtype=np.int64),
        "branch_ids": np.zeros(shape, dtype=np.int64),
    }
    document = 0
    for r, row in enumerate(rows):
        offset = 0
        for tokens, positions, branch, labels, seq in row:
            end = offset + len(tokens)
            out["input_ids"][r, offset:end] = tokens
            out["position_ids"][r, offset:end] = positions
            out["branch_ids"][r, offset:end] = branch
            out["shift_labels"][r, offset:end] = labels
            out["sequence_ids"][r, offset:end] = seq
            out["document_ids"][r, offset:end] = document
            document += 1
            offset = end
    return out


def allowed_attention(
    document_ids: torch.Tensor, branch_ids: torch.Tensor, position_ids: torch.Tensor, sliding_window: int | None = None
) -> torch.Tensor:
    """Boolean `[rows, 1, length, length]`: may query token q attend to key token k (see the module docstring)."""
    length = document_ids.size(1)
    index = torch.arange(length, device=document_ids.device)
    doc_q, doc_k = document_ids[:, :, None], document_ids[:, None, :]
    branch_q, branch_k = branch_ids[:, :, None], branch_ids[:, None, :]
    allowed = (doc_q == doc_k) & (doc_q >= 0) & (index[None, None, :] <= index[None, :, None])
    allowed &= (branch_k == 0) | (branch_k == branch_q)
    if sliding_window is not None:  # as transformers' sliding_window_overlay, in positions: q - k < window
        allowed &= (position_ids[:, :, None] - position_ids[:, None, :]) < sliding_window
    allowed |= torch.eye(length, dtype=torch.bool, device=document_ids.device)[None]
    return allowed[:, None]


def attention_mask_for(
    implementation: str,
    inputs: dict[str, torch.Tensor],
    dtype: torch.dtype,
    sliding_window: int | None = None,
):
    """The 4D mask `implementation` takes for a packed batch: bool (sdpa), additive float (eager), BlockMask (flex)."""
    document_ids, branch_ids, position_ids = inputs["document_ids"], inputs["branch_ids"], inputs["position_ids"]
    if implementation in FLEX_IMPLEMENTATIONS:
        return _block_mask(document_ids, branch_ids, position_ids, sliding_window)
    allowed = allowed_attention(document_ids, branch_ids, position_ids, sliding_window)
    if implementation == "sdpa":
        return allowed
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def _block_mask(document_ids, branch_ids, position_ids, sliding_window):  # GPU only, untested until it runs on one
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, k):
        same = (document_ids[b, q] == document_ids[b, k]) & (document_ids[b, q] >= 0) & (k <= q)
        same = same & ((branch_ids[b, k] == 0) | (branch_ids[b, k] == branch_ids[b, q]))
        if sliding_window is not None:
            same = same & (position_ids[b, q] - position_ids[b, k] < sliding_window)
        return same | (q == k)

    rows, length = document_ids.shape
    return create_block_mask(mask_mod, rows, None, length, length, device=document_ids.device)


def sliding_window_of(config) -> tuple[int | None, str | None]:
    """(the window every attention layer uses or None, or the reason one 4D mask cannot serve all the layers)."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if window is None or (layer_types is not None and "sliding_attention" not in layer_types):
        return None, None
    if layer_types is not None and len(set(layer_types)) > 1:
        return None, (
            f"its layers mix attention types ({sorted(set(layer_types))}), and a custom 4D mask is given to every "
            "layer alike"
        )
    return int(window), None


def packing_unsupported_reason(model, device: torch.device, truncation_mode: str, share_prompt: bool) -> str | None:
    """Why this model cannot run shared-prompt / padding-free batches (None when it can)."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model):
        config = model.peft_config[model.active_adapter]
        if getattr(config, "is_prompt_learning", False):
            return f"the PEFT method {config.peft_type} prepends virtual tokens, which a custom 4D mask does not cover"
        model = model.get_base_model()
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation in FLEX_IMPLEMENTATIONS:
        if device.type != "cuda":
            return "flex_attention block masks are only used on CUDA here"
    elif implementation not in MASKED_IMPLEMENTATIONS:
        return (
            f"attn_implementation={implementation!r} builds its own mask and cannot take a custom 4D one (supported: "
            f"{', '.join(MASKED_IMPLEMENTATIONS + FLEX_IMPLEMENTATIONS)})"
        )
    _, reason = sliding_window_of(model.config)
    if reason:
        return reason
    if share_prompt and truncation_mode != "keep_start":
        return f"truncation_mode={truncation_mode!r} truncates each sequence's prompt differently"
    return None


def warn_fallback(option: str, reason: str) -> None:
    warnings.warn(f"`{option}=True` is not used: {reason}. Falling back to padded batches.", stacklevel=3)


def usable_layout(
    share_prompt: bool, padding_free: bool, models: list, model_name: str, device: torch.device, truncation_mode: str
) -> tuple[bool, bool]:
    """(share_prompt, padding_free) as a trainer uses them: the options asked for, less what `models` (policy and
    reference) cannot take, with one warning naming the option and why."""
    if not (share_prompt or padding_free):
        return share_prompt, padding_free
    reason = next((r for m in models if (r := packing_unsupported_reason(m, device, truncation_mode, False))), None)
    if reason:
        asked = [option for option, on in [("share_prompt", share_prompt), ("padding_free", padding_free)] if on]
        warn_fallback(" / ".join(asked), f"{model_name}: {reason}")
        return False, False
    if share_prompt and (reason := packing_unsupported_reason(models[0], device, truncation_mode, True)):
        warn_fallback("share_prompt", reason)
        return False, padding_free
    return share_prompt, padding_free
