"""`DataCollatorForSPAC` against its specification: a tensor per sequence, truncated, then padded with TRL's `pad`.

The collator writes the batch into preallocated arrays for speed (see benchmarks/cost/README.md); the batch must be
exactly the one the straightforward construction gives.
"""

from __future__ import annotations

import random

import pytest
import torch

from spac_hf.collator import DataCollatorForSPAC


def _reference_collate(examples, responses, pad_token_id, max_length, truncation_mode, pad_to_multiple_of):
    """The collator's specification: a tensor per sequence, truncated, then padded with TRL's `pad`."""
    from trl.trainer.utils import pad

    ids, masks = [], []
    for response in responses:
        for example in examples:
            prompt, completion = example["prompt_ids"], example[f"{response}_ids"]
            sequence, mask = prompt + completion, [0] * len(prompt) + [1] * len(completion)
            if max_length is not None:
                cut = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
                sequence, mask = sequence[cut], mask[cut]
            ids.append(torch.tensor(sequence, dtype=torch.long))
            masks.append(torch.tensor(mask, dtype=torch.long))
    kwargs = {"padding_side": "right", "pad_to_multiple_of": pad_to_multiple_of}
    batch = {
        "input_ids": pad(ids, padding_value=pad_token_id, **kwargs),
        "attention_mask": pad([torch.ones_like(s) for s in ids], padding_value=0, **kwargs),
        "completion_mask": pad(masks, padding_value=0, **kwargs),
    }
    for response in responses:
        if f"ref_{response}_logps" in examples[0]:
            batch[f"ref_{response}_logps"] = torch.tensor([e[f"ref_{response}_logps"] for e in examples])
    return batch


@pytest.mark.parametrize("seed", range(40))
def test_the_array_collator_builds_the_reference_batch(seed):
    rng = random.Random(seed)
    responses = ("chosen", "rejected", "generated") if seed % 4 else ("chosen", "rejected")
    examples = []
    for _ in range(rng.randint(1, 4)):
        example = {"prompt_ids": [rng.randrange(1, 50) for _ in range(rng.randint(1, 12))]}
        for response in responses:
            example[f"{response}_ids"] = [rng.randrange(1, 50) for _ in range(rng.randint(0, 10))]
            if seed % 3:
                example[f"ref_{response}_logps"] = -rng.random() * 10
        examples.append(example)
    options = {
        "pad_token_id": rng.choice([0, 99]),
        "max_length": rng.choice([None, 4, 9, 15, 40]),
        "truncation_mode": rng.choice(["keep_start", "keep_end"]),
        "pad_to_multiple_of": rng.choice([None, 1, 8]),
    }
    batch = DataCollatorForSPAC(responses=responses, **options)(examples)
    expected = _reference_collate(examples, responses, **options)
    assert batch.keys() == expected.keys()
    for key in expected:
        assert batch[key].dtype == expected[key].dtype, key
        torch.testing.assert_close(batch[key], expected[key], rtol=0, atol=0, msg=key)
