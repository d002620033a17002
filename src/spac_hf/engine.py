"""CTranslate2, the CPU inference engine behind `generation_backend="ctranslate2"` and the lm-eval model `spac-ct2`.

Why this engine (benchmarks/cost/README.md has the measurements): it installs from one wheel beside transformers 5.23,
converts a saved transformers model in seconds, drops finished sequences from the batch, decodes greedily exactly
like `generate` in float32, samples with temperature / top-k / top-p and a seed, and scores sequences (for lm-eval's
loglikelihood). Two precisions of the same converted folder: `float32` (the exact mode) and `int8` (weights quantized
when the model is loaded; the fast mode, whose distance to float32 is measured in results/cost/generation/).

A converted model is a cache: it is written atomically beside the model it came from (or in the run folder), with a
manifest naming its source and the sha256 of its weights; a damaged or stale copy is discarded and converted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .utils import atomic_directory, atomic_write_json, cache_root, file_sha256
from .utils import discard_damaged as _discard


logger = logging.getLogger(__name__)

ENGINE = "ctranslate2"
EXTRA = "pip install spac-hf[fast]"
# The mode the user names -> CTranslate2's compute type. int8 keeps activations in float32 (int8_float32): this CPU
# refuses CTranslate2's bfloat16 types.
PRECISIONS = {"float32": "float32", "int8": "int8_float32"}
MANIFEST = "spac_hf_engine.json"
_WEIGHTS = "model.bin"


def import_engine():
    """The `ctranslate2` module, or an ImportError naming the extra and the alternative."""
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError(
            f"generation_backend='{ENGINE}' needs CTranslate2: `{EXTRA}`; or use generation_backend='hf'."
        ) from error
    return ctranslate2


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"`generation_precision` must be one of {tuple(PRECISIONS)}, got {precision!r}.")
    return PRECISIONS[precision]


def check_sampling(*, temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> dict[str, Any]:
    """CTranslate2's sampling arguments for the run's settings; an option it cannot honour is refused, named.

    `temperature=0` is greedy (top-k 1). Otherwise CTranslate2 applies the temperature, then top-k (0 = the whole
    vocabulary), then top-p, like transformers' `generate`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1, got {max_new_tokens}.")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(
            f"{ENGINE} cannot sample with temperature={temperature}, top_p={top_p}, top_k={top_k}: temperature "
            "must be >= 0, top_p in (0, 1], top_k >= 0."
        )
    if temperature == 0:
        return {"sampling_topk": 1, "max_length": max_new_tokens}
    return {
        "sampling_topk": top_k,
        "sampling_topp": top_p,
        "sampling_temperature": temperature,
        "max_length": max_new_tokens,
    }


def check_convertible(model_path: str | os.PathLike) -> None:
    """Refuse, before any work, a model CTranslate2 cannot convert (named with the alternative)."""
    ctranslate2 = import_engine()
    from ctranslate2.converters.transformers import _MODEL_LOADERS

    config_file = Path(model_path) / "config.json"
    if not config_file.exists():
        raise ValueError(
            f"generation_backend='{ENGINE}' converts a saved transformers model: {str(model_path)!r} has no "
            "config.json. Save the model with `save_pretrained`, or use generation_backend='hf'."
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "model_type" not in config:
        raise ValueError(
            f"{str(model_path)!r} is not a transformers model (its config.json has no model_type); "
            f"generation_backend='{ENGINE}' converts a saved transformers model."
        )
    from transformers import AutoConfig

    name = type(AutoConfig.for_model(**config)).__name__
    if name not in _MODEL_LOADERS:
        raise ValueError(
            f"CTranslate2 {ctranslate2.__version__} cannot convert {config.get('model_type')!r} models ({name}); use "
            "generation_backend='hf'."
        )


def path_key(model_path: str | os.PathLike) -> str:
    """A folder name for the conversion of the model at `model_path`: its name and a hash of its absolute path."""
    resolved = Path(model_path).resolve()
    return f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:10]}"


def _source_fingerprint(model_path: Path) -> dict[str, Any]:
    """What identifies the model a conversion came from: every file's name, size and modification time."""
    files = sorted(p for p in model_path.iterdir() if p.is_file())
    return {
        "path": str(model_path.resolve()),
        "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files},
    }


def _valid_cache(folder: Path, source: dict[str, Any]) -> bool:
    """Whether `folder` holds an intact conversion of `source` (a damaged or stale one is discarded, warned about)."""
    if not folder.exists():
        return False
    import ctranslate2

    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest["source"] != source or manifest["ctranslate2"] != ctranslate2.__version__:
            raise ValueError("it was converted from another model or by another CTranslate2 version")
        if file_sha256(folder / _WEIGHTS) != manifest["sha256"]:
            raise ValueError(f"{_WEIGHTS} does not match its recorded sha256")
    except (OSError, KeyError, ValueError) as err:
        _discard(folder, "the converted model", err)
        return False
    return True


def converted_model(model_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The CTranslate2 conversion of the transformers model saved at `model_path`, made once and cached.

    `cache_dir` defaults to a folder of spac-hf's cache root (`utils.cache_root`) named after the model's absolute
    path (never inside the model folder, which may be read-only or pushed to the Hub). The float32 weights are kept;
    `int8` quantizes them when the model is loaded.
    """
    ctranslate2 = import_engine()
    model_path = Path(model_path)
    check_convertible(model_path)
    if cache_dir is None:
        cache_dir = cache_root() / ENGINE / path_key(model_path)
    folder = Path(cache_dir)
    source = _source_fingerprint(model_path)
    if _valid_cache(folder, source):
        return folder
    logger.info("Converting %s for CTranslate2 into %s", model_path, folder)
    with atomic_directory(folder) as tmp:
        converter = ctranslate2.converters.TransformersConverter(str(model_path), low_cpu_mem_usage=True)
        converter.convert(str(tmp), force=True)
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        if config.get("bos_token") is None:
            # CTranslate2 cannot load a model without a BOS token; prompts arrive tokenized, so it is never used.
            config["bos_token"] = config["eos_token"]
            atomic_write_json(tmp / "config.json", config)
        vocabulary = json.loads((tmp / "vocabulary.json").read_text(encoding="utf-8"))
        if len(set(vocabulary)) != len(vocabulary):
            # Prompts travel to CTranslate2 as token strings: two ids with one string could not be told apart.
            raise ValueError(
                f"{model_path}: the tokenizer's vocabulary has duplicate tokens; use generation_backend='hf'."
            )
        atomic_write_json(
            tmp / MANIFEST,
            {"source": source, "ctranslate2": ctranslate2.__version__, "sha256": file_sha256(tmp / _WEIGHTS)},
        )
    return folder


def _stop_string_callback(stop_strings: Sequence[str], decode: Callable[[list[int]], str] | None):
    """A per-token callback that ends a sequence once the text of its last tokens contains a stop string."""
    if decode is None:
        raise ValueError("stop_strings needs `decode` (token ids to text).")
    # Every token decodes to at least one character (or a byte of one): this many tokens cover any stop string.
    window = max(len(s) for s in stop_strings) + 4
    generated: dict[int, list[int]] = {}

    def callback(step) -> bool:
        ids = generated.setdefault(step.batch_id, [])
        ids.append(step.token_id)
        tail = decode(ids[-window:])
        return any(s in tail for s in stop_strings)

    return callback


def length_sorted_batches(prompt_ids: Sequence[Sequence[int]], batch_size: int, workers: int) -> list[list[int]]:
    """Prompt indices sorted by length, cut into batches of at most `batch_size` (fewer, so that every worker gets
    one). `Engine.stream` says which worker runs which batch."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    size = max(1, min(batch_size, -(-len(order) // workers)))
    return [order[start : start + size] for start in range(0, len(order), size)]


class Engine:
    """A converted model loaded in CTranslate2: batched generation and scoring on token ids.

    `workers` generators (default: one per thread) each decode their own batches on `threads // workers` threads.
    Why: on the CPUs measured here a decode step's matrices are small, so one batch on two threads is slower than
    one batch on one thread, while two batches on two one-thread workers nearly double the rate
    (results/cost/generation/, `workers`). The batches go to the workers in a fixed order and each worker samples
    with its own seed, so the texts depend on the seed, the batch size and the number of workers, never on timing.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        precision: str = "float32",
        threads: int | None = None,
        workers: int | None = None,
    ):
        import_engine()
        compute_type = check_precision(precision)
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        workers = threads if workers is None else workers
        if not 1 <= workers <= threads:
            raise ValueError(f"`workers` must be between 1 and threads={threads}, got {workers}.")
        self.folder = Path(folder)
        self.precision = precision
        self.workers = workers
        self._options = {
            "device": "cpu",
            "compute_type": compute_type,
            "intra_threads": threads // workers,
            "inter_threads": 1,
        }
        self.generators = [self._load() for _ in range(workers)]
        self.vocabulary = json.loads((self.folder / "vocabulary.json").read_text(encoding="utf-8"))

    def _load(self, seed: int | None = None):
        import ctranslate2

        if seed is not None:
            # CTranslate2's worker thread seeds its sampler when the generator is created: seed, then load.
            ctranslate2.set_random_seed(seed)
        return ctranslate2.Generator(str(self.folder), **self._options)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.vocabulary[i] for i in ids]

    def generate(self, prompt_ids: Sequence[Sequence[int]], **options) -> list[list[int]]:
        """One continuation per prompt (token ids, without the stop token), in the prompts' order; `options` as
        `stream`'s."""
        results: list[list[int]] = [[] for _ in prompt_ids]
        for batch, outputs in self.stream(prompt_ids, **options):
            for i, ids in zip(batch, outputs):
                results[i] = ids
        return results

    def stream(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        stop_ids: Sequence[int],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        batch_size: int = 32,
        min_new_tokens: int = 0,
        stop_strings: Sequence[str] = (),
        decode: Callable[[list[int]], str] | None = None,
    ) -> Iterator[tuple[list[int], list[list[int]]]]:
        """The continuations batch by batch, as each finishes: (prompt indices, their ids without the stop token).

        The prompts are sorted by length and cut into batches of at most `batch_size` (fewer, so that every worker
        gets a batch). CTranslate2 drops a sequence from its batch when it stops, so finished answers cost nothing
        while the batch's longest one goes on; batches therefore last very different times (an answer that runs to
        the cap holds its batch). Greedy decoding hands each free worker the next batch, longest prompts first, so
        no worker waits while another works through a long batch; the texts cannot depend on which worker ran a
        batch. Sampling keeps a fixed assignment instead (batch b to worker b mod `workers`, worker w seeded with
        `seed + w`), so the texts depend on the seed, the batch size and the number of workers, never on timing.
        With `stop_strings` (and `decode`, ids to text), a sequence also stops once its text contains one of them; the
        caller cuts there. `min_new_tokens` keeps the stop tokens away that long (benchmarks use it to give every
        backend the same work).
        """
        import queue
        import threading

        options = check_sampling(temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens)
        options["min_length"] = min_new_tokens
        batches = length_sorted_batches(prompt_ids, batch_size, self.workers)
        if temperature > 0:
            self.generators = [self._load(seed + w) for w in range(self.workers)]
            plans = [iter(batches[w :: self.workers]) for w in range(self.workers)]
        else:
            plans = [iter(batches[::-1])] * self.workers  # one iterator: a free worker takes the next batch
        lock, stop, finished = threading.Lock(), threading.Event(), queue.Queue()

        def work(worker: int) -> None:
            try:
                while not stop.is_set():
                    with lock:
                        batch = next(plans[worker], None)
                    if batch is None:
                        return
                    extra = {"callback": _stop_string_callback(stop_strings, decode)} if stop_strings else {}
                    outputs = self.generators[worker].generate_batch(
                        [self.tokens(prompt_ids[i]) for i in batch],
                        max_batch_size=len(batch),
                        include_prompt_in_result=False,
                        end_token=list(stop_ids),
                        **options,
                        **extra,
                    )
                    finished.put((batch, [list(output.sequences_ids[0]) for output in outputs]))
            except BaseException as error:  # raised in the caller's thread, below
                finished.put(error)
            finally:
                finished.put(None)

        # CTranslate2 releases the GIL while it decodes, so the workers' batches run at the same time.
        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(self.workers)]
        for thread in threads:
            thread.start()
        try:
            running = len(threads)
            while running:
                item = finished.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:  # an error, or a caller that stopped reading: the workers take no further batch
            stop.set()

    def log_probs(self, sequences: Sequence[Sequence[int]], batch_size: int = 4) -> list[np.ndarray]:
        """Next-token log-probabilities: for each sequence, an array [len - 1, vocab] (row i predicts token i + 1)."""
        import ctranslate2

        out = []
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            width = max(len(s) for s in batch)
            ids = np.zeros((len(batch), width), dtype=np.int32)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = seq
            lengths = ctranslate2.StorageView.from_array(np.array([len(s) for s in batch], dtype=np.int32))
            ids = ctranslate2.StorageView.from_array(ids)
            values = np.asarray(self.generators[0].forward_batch(ids, lengths, return_log_probs=True))
            out += [values[row, : len(seq) - 1] for row, seq in enumerate(batch)]
        return out
