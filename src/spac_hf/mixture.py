"""The uniform mixture of the iterates: the output policy of SPAC's Algorithm 1.

The theory's guarantee is about the policy that, for each prompt, picks one of the iterates uniformly at random and
answers with it. That is not the average of the iterates' weights (`average_iterates`), which is a single model that
none of the iterates is. Here a mixture is the list of stored iterates plus a seed: which iterate answers which prompt
is decided by the seed alone (a `torch.Generator`, so the caller's random state is untouched), and each iterate then
generates for its own prompts with `spac_hf.generation.generate_responses`.

    from spac_hf.mixture import IterateMixture

    mixture = IterateMixture.from_run("outputs/default/spac_theory", seed=0)   # iter_1 .. iter_T of a finished run
    mixture.save("outputs/default/spac_theory/iter_mixture")                   # mixture.json: iterates and seed
    texts = mixture.generate(tokenizer, prompts, max_new_tokens=48)            # one iterate sampled per prompt
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .utils import atomic_write_json, read_json


MIXTURE_FILE = "mixture.json"
ITERATE_FILE = "iterate.json"  # written by the loop when an iterate is complete


@dataclass(frozen=True)
class IterateMixture:
    """The uniform mixture of `iterates` (model paths), one sampled per prompt with `seed`."""

    iterates: tuple[str, ...]
    seed: int = 0

    def __post_init__(self):
        if not self.iterates:
            raise ValueError("A mixture needs at least one iterate.")
        object.__setattr__(self, "iterates", tuple(str(p) for p in self.iterates))

    @classmethod
    def from_run(cls, output_dir: str | Path, seed: int = 0) -> IterateMixture:
        """The finished iterates `iter_1 .. iter_T` of a `run_self_play` output folder, in order."""
        out = Path(output_dir)
        found = {}
        for path in out.glob("iter_*"):
            match = re.fullmatch(r"iter_(\d+)", path.name)
            if match and (path / ITERATE_FILE).is_file():
                found[int(match.group(1))] = str(path)
        if not found:
            raise ValueError(f"{str(out)!r} holds no finished iterate (iter_<t>/{ITERATE_FILE}).")
        missing = sorted(set(range(1, max(found) + 1)) - set(found))
        if missing:
            raise ValueError(f"{str(out)!r}: iterates {missing} are not finished; the mixture needs all of them.")
        return cls(tuple(found[t] for t in sorted(found)), seed=seed)

    @classmethod
    def load(cls, path: str | Path) -> IterateMixture:
        """A mixture saved by `save` (a folder holding `mixture.json`, or that file)."""
        path = Path(path)
        file = path / MIXTURE_FILE if path.is_dir() else path
        record = read_json(file)
        if record is None or record.get("type") != "uniform_mixture":
            raise ValueError(f"{str(file)!r} is not a saved iterate mixture.")
        return cls(tuple(record["iterates"]), seed=int(record["seed"]))

    def save(self, path: str | Path) -> Path:
        """Write `path/mixture.json` (atomically): the iterates and the seed, all a mixture is."""
        path = Path(path)
        atomic_write_json(
            path / MIXTURE_FILE, {"type": "uniform_mixture", "iterates": list(self.iterates), "seed": self.seed}
        )
        return path

    def assign(self, num_prompts: int) -> list[int]:
        """The iterate (index into `iterates`) that answers each prompt: uniform, independent, decided by the seed."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randint(len(self.iterates), (num_prompts,), generator=generator).tolist()

    def generate(
        self,
        tokenizer,
        prompts: Sequence,
        *,
        load_model: Callable[[str], torch.nn.Module] | None = None,
        seed: int | None = None,
        **generation_kwargs,
    ) -> list[str]:
        """One response per prompt, each from the iterate `assign` gives it, in the prompts' order.

        Each iterate is loaded once (`load_model(path)`, default `AutoModelForCausalLM.from_pretrained`) and generates
        for its prompts on this process alone; iterate k samples with `seed + k` (default seed: the mixture's).
        `generation_kwargs` go to `spac_hf.generation.generate_responses` (`max_new_tokens`, `temperature`, ...).
        """
        from .generation import generate_responses

        if load_model is None:
            from transformers import AutoModelForCausalLM

            load_model = AutoModelForCausalLM.from_pretrained
        seed = self.seed if seed is None else seed
        owners = self.assign(len(prompts))
        texts: list[str | None] = [None] * len(prompts)
        for k, path in enumerate(self.iterates):
            indices = [i for i, owner in enumerate(owners) if owner == k]
            if not indices:
                continue
            model = load_model(path)
            outputs = generate_responses(
                model, tokenizer, [prompts[i] for i in indices], seed=seed + k, distributed=False,
                desc=f"Mixture: iterate {k + 1}/{len(self.iterates)}", **generation_kwargs,
            )  # fmt: skip
            for i, text in zip(indices, outputs):
                texts[i] = text
            del model
        return texts  # type: ignore[return-value]


def is_mixture(path: str | Path) -> bool:
    """Whether `path` is a saved mixture (a folder with `mixture.json`) rather than a model."""
    return (Path(path) / MIXTURE_FILE).is_file()
