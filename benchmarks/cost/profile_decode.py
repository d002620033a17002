"""Where one long-answer decode step of transformers spends its time: torch's profiler over a few steps at batch B
with a KV cache of L tokens (SmolLM2-135M-Instruct, float32, 2 threads).

    python -m benchmarks.cost.profile_decode --batch 16 --length 400 \\
        --out results/cost/generation/profile_hf_decode_b16_l400.txt
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from spac_hf.utils import atomic_write_text, torch_threads


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/smollm2/model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=400, help="tokens already in the KV cache")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, model.config.vocab_size, (args.batch, args.length), generator=generator)
    with torch_threads(args.threads), torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        mask = torch.ones(args.batch, args.length + 1, dtype=torch.long)

        def step(past, token, mask):
            out = model(input_ids=token, past_key_values=past, attention_mask=mask, use_cache=True)
            grown = torch.cat([mask, torch.ones(args.batch, 1, dtype=torch.long)], 1)
            return out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True), grown

        for _ in range(2):  # warm-up
            past, token, mask = step(past, token, mask)
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                past, token, mask = step(past, token, mask)
        seconds = (time.perf_counter() - start) / args.steps
    text = (
        f"batch {args.batch}, KV length {args.length}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}: "
        f"{seconds * 1000:.1f} ms per step ({args.batch / seconds:.1f} tokens/s, profiled)\n\n"
        + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    )
    if args.out:
        atomic_write_text(args.out, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
