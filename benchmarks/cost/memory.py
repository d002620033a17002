"""Peak memory of one training step, each variant in a fresh process.

CPU: the peak resident set size (RSS) of the process during one optimizer step. A fresh process per variant
(`fresh_process.FreshProcesses`) gives every variant the same clean heap. Inside it, `probe`:

1. build the model, the data and the trainer exactly as the timing does; create the optimizer and fill its state
   with one step on zero gradients (so Adam's moments exist, as in every step after the first; no weight changes);
2. at `on_step_begin`: `malloc_trim`, read the RSS (`before`: weights, optimizer state, libraries, data), then reset
   the kernel's high-water mark (`/proc/self/clear_refs` = 5, Linux >= 4.0);
3. at `on_step_end`: read the high-water mark (`VmHWM`): the peak RSS of the step (`peak`).

`peak - before` is what the step itself adds: gradients, activations kept for backward, the LM head's tiles and
temporaries. Only part of it grows with the number of sequences (the gradients do not), so its SPAC/DPO ratio sits
between 1 and 1.5. The allocator-independent part that should scale exactly with the sequences is also counted:
`saved_bytes`, the tensors autograd saves for backward during the loss's forward (parameters excluded, each storage
once), read with `torch.autograd.graph.saved_tensors_hooks`.

CUDA: the same process layout with `torch.cuda.reset_peak_memory_stats` / `max_memory_allocated` (tensor memory, the
caching allocator's reserve excluded) in place of RSS.
"""

from __future__ import annotations

import ctypes
import re
import tempfile
from pathlib import Path

from transformers import TrainerCallback


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the RSS keeps freed heap, `before` is a little higher
        pass


class PeakMemory(TrainerCallback):
    """Records the memory in use when the step starts and the peak during it (bytes)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.before = self.peak = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            _malloc_trim()
            self.before = _status_kib("VmRSS") * 1024
            Path("/proc/self/clear_refs").write_text("5")

    def on_step_end(self, args, state, control, **kwargs):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = _status_kib("VmHWM") * 1024


def _count_saved_tensors(trainer, counter: dict) -> None:
    """Wrap `trainer.compute_loss` so the bytes of the activations it saves for backward are added to `counter`."""
    import torch

    parameters = {p.untyped_storage().data_ptr() for p in trainer.model.parameters()}
    seen: set[int] = set()

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            counter["saved_bytes"] += storage.nbytes()
        return tensor

    compute_loss = trainer.compute_loss

    def counted(*args, **kwargs):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            return compute_loss(*args, **kwargs)

    trainer.compute_loss = counted


def _prime_optimizer(trainer) -> None:
    """Create the optimizer the Trainer will reuse and allocate its state with a step on zero gradients."""
    import torch

    optimizer = trainer.create_optimizer()
    for p in trainer.model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def probe(size_name: str, variant: str, settings: dict, threads: int) -> dict:
    """Run in the child: one measured optimizer step of `variant`; returns bytes."""
    import torch

    from benchmarks.cost.models import SIZES, build_model, build_tokenizer, rows_for
    from benchmarks.cost.variants import StepSettings, build_trainer

    torch.set_num_threads(threads)
    settings = StepSettings(**{k: v for k, v in settings.items() if k != "max_length"})
    size = SIZES[size_name]
    tokenizer = build_tokenizer(size.vocab_size)
    model = build_model(size, tokenizer, seed=settings.seed)
    rows = rows_for(settings, size.vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(variant, model, tokenizer, rows, settings, tmp)
        del model  # the trainer holds its own copy
        if settings.device.startswith("cuda"):
            trainer.model.to(settings.device)
        _prime_optimizer(trainer)
        meter, saved = PeakMemory(settings.device), {"saved_bytes": 0}
        trainer.add_callback(meter)
        _count_saved_tensors(trainer, saved)
        trainer.args.max_steps = 1
        trainer.train()
    return {
        "before_bytes": meter.before,
        "peak_bytes": meter.peak,
        "step_bytes": meter.peak - meter.before,
        "saved_bytes": saved["saved_bytes"],
        "method": "cuda_max_memory_allocated" if meter.cuda else "rss_high_water_mark",
    }
