"""Self-play generation: y ~ pi_t for a list of prompts, batched, and sharded across processes.

Prompts are sorted by length so each batch pads little, dealt round-robin to the processes so each gets a similar
load, generated in left-padded batches, then gathered back into the original order on every process. The HF backend
(`generate`) is the default and runs anywhere; the vLLM backend is for GPU machines and loads the model from disk; the
CTranslate2 backend (`spac_hf.engine`) is the fast one on CPUs: it converts the saved model once and generates from the
conversion, in float32 (greedy texts equal to `generate`'s) or int8.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, is_peft_model
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .data import require_map_style, tokenize_prompt
from .engine import path_key
from .utils import atomic_directory


if TYPE_CHECKING:
    from .config import SelfPlayConfig

# The engines `generate_responses` runs on (`SelfPlayConfig.generation_backend` takes its choices from here).
GENERATION_BACKENDS = ("hf", "vllm", "ctranslate2")


def stop_token_ids(generation_config, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS ids of the generation config and of the tokenizer: chat models often end a turn on a token of their own."""
    ids = generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _shard(prompt_ids: Sequence[list[int]], rank: int, world: int) -> list[int]:
    """Indices this process generates: longest first, dealt round-robin so every process gets similar lengths."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]), reverse=True)
    return order[rank::world]


def left_padded(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of a batch of token-id prompts, padded on the left: every prompt ends where
    generation starts."""
    width = max(map(len, prompts))
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


@torch.no_grad()
def _generate_hf(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[list[int]],
    indices: list[int],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int,
    batch_size: int,
    show_progress: bool,
    desc: str,
    finished: dict[int, bool] | None = None,
) -> list[tuple[int, str]]:
    """(index, text) per prompt of `indices`, sampled from torch's generator seeded with `seed` (the caller's random
    state is restored after); with `finished`, also whether each response ended on a stop token (False: it ran to
    `max_new_tokens`, cut), keyed by index."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = stop_token_ids(model.generation_config, tokenizer)
    # top_k=0 must be passed explicitly: transformers' `generate` otherwise applies top_k=50 and y would not be ~ pi_t.
    sampling = (
        {"do_sample": False}
        if temperature == 0
        else {
            "do_sample": True,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
        }
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = []
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not show_progress, unit="batch"):
                batch = indices[start : start + batch_size]
                input_ids, attention_mask = left_padded([prompt_ids[i] for i in batch], pad_id)
                width = input_ids.shape[1]
                output = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stop_ids,
                    pad_token_id=pad_id,
                    **sampling,
                )
                for row, i in enumerate(batch):
                    results.append((i, tokenizer.decode(output[row, width:], skip_special_tokens=True)))
                    if finished is not None:  # `generate` keeps the stop token (and pads after it)
                        finished[i] = any(t in stop_ids for t in output[row, width:].tolist())
        finally:
            model.train(was_training)
    return results


def _generate_vllm(
    model_path: str,
    prompt_ids: Sequence[list[int]],
    indices: list[int],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int,
    gpu_memory_utilization: float = 0.9,
    finished: dict[int, bool] | None = None,
) -> list[tuple[int, str]]:
    """vLLM backend. Untested in CI (no GPU, and no vLLM release installs beside transformers 5.23): see README."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError as error:
        raise ImportError(
            "generation_backend='vllm' needs vLLM on a GPU machine: `pip install spac-hf[vllm]` in an environment "
            "whose transformers version vLLM supports."
        ) from error
    llm = LLM(model=model_path, seed=seed, gpu_memory_utilization=gpu_memory_utilization)
    params = SamplingParams(
        max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k or -1, seed=seed
    )
    outputs = llm.generate([TokensPrompt(prompt_token_ids=prompt_ids[i]) for i in indices], params)
    if finished is not None:
        finished.update({i: out.outputs[0].finish_reason != "length" for i, out in zip(indices, outputs)})
    return [(i, out.outputs[0].text) for i, out in zip(indices, outputs)]


def _generate_engine(
    model_path: str,
    folder: Path,
    prompt_ids: Sequence[list[int]],
    indices: list[int],
    tokenizer: PreTrainedTokenizerBase,
    *,
    precision: str,
    batch_size: int,
    seed: int,
    show_progress: bool,
    desc: str,
    finished: dict[int, bool] | None = None,
    **sampling,
) -> list[tuple[int, str]]:
    from transformers import AutoConfig, GenerationConfig

    from .engine import Engine

    try:
        generation_config = GenerationConfig.from_pretrained(model_path)
    except OSError:  # no generation_config.json: the model config's defaults, as `from_pretrained` would use
        generation_config = GenerationConfig.from_model_config(AutoConfig.from_pretrained(model_path))
    stop_ids = stop_token_ids(generation_config, tokenizer)
    engine = Engine(folder, precision=precision)
    results = []
    # Chunks of several batches: CTranslate2 sorts and batches inside a chunk; the bar moves once per chunk.
    chunk = batch_size * 8
    for start in tqdm(range(0, len(indices), chunk), desc=desc, disable=not show_progress, unit="chunk"):
        part = indices[start : start + chunk]
        outputs = engine.generate(
            [prompt_ids[i] for i in part], stop_ids=stop_ids, batch_size=batch_size, seed=seed + start, **sampling
        )
        results += [(i, tokenizer.decode(ids, skip_special_tokens=True)) for i, ids in zip(part, outputs)]
        if finished is not None:
            # The engine drops the stop token, which counts toward the length: a response that stopped has fewer
            # than `max_new_tokens` tokens, a cut one exactly that many.
            finished.update({i: len(ids) < sampling["max_new_tokens"] for i, ids in zip(part, outputs)})
    return results


def check_backend(backend: str, precision: str = "float32", **sampling) -> None:
    """Refuse, before any work, a backend that is not installed or a setting it cannot honour (named, with the
    alternative). `sampling`: the run's `temperature`, `top_p`, `top_k`, `max_new_tokens`."""
    if backend not in GENERATION_BACKENDS:
        raise ValueError(f"`generation_backend` must be one of {GENERATION_BACKENDS}, got {backend!r}.")
    if backend == "ctranslate2":
        from .engine import check_precision, check_sampling, import_engine

        import_engine()
        check_precision(precision)
        if sampling:
            check_sampling(**sampling)
    elif precision != "float32":
        raise ValueError(
            f"`generation_precision={precision!r}` needs generation_backend='ctranslate2'; the {backend!r} backend "
            "generates in the model's own dtype (leave generation_precision='float32')."
        )


def generate_responses(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str | list[dict]] | Sequence[list[int]],
    *,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    batch_size: int = 16,
    seed: int = 0,
    backend: str = "hf",
    precision: str = "float32",
    engine_cache_dir: str | None = None,
    distributed: bool = True,
    desc: str = "Generating",
    return_finished: bool = False,
) -> list[str] | tuple[list[str], list[bool]]:
    """Sample one response per prompt from `model` and return the texts in the prompts' order, on every process.

    Args:
        model: the policy pi_t (a loaded model for `backend="hf"`, a path for `backend="vllm"` and
            `backend="ctranslate2"`).
        prompts: standard prompts (strings), conversational prompts (lists of messages, rendered with the chat
            template and its generation prompt), or already tokenized prompts (lists of token ids).
        seed: sampling seed; process k uses `seed + k`, so a run is reproducible for a given number of processes. The
            caller's random state is left as it was.
        distributed: shard the prompts across the processes and gather the results (every process must call). With
            `False`, this process generates everything alone (e.g. an evaluation on the main process only).
        precision: `ctranslate2` only: `"float32"` (greedy texts equal to transformers') or `"int8"` (faster).
        engine_cache_dir: `ctranslate2` only: where the converted model is kept (default: a folder under spac-hf's
            cache root, named after the model's path; never inside the model folder).
        return_finished: also return, per response, whether it ended on a stop token within `max_new_tokens`
            (False: the cap cut it), as `(texts, finished)`: a cut response cannot tell from its text alone.

    Responses are decoded without special tokens (the EOS is not part of the text).
    """
    sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k}
    check_backend(backend, precision, **sampling)
    if backend in ("vllm", "ctranslate2") and not isinstance(model, str):
        raise TypeError(f"backend={backend!r} loads the model itself: pass the path of the saved model.")
    state = PartialState() if distributed else None
    if backend == "ctranslate2":
        from .engine import converted_model

        # The main process converts (or checks the cached conversion) first; the others then find it intact.
        with state.main_process_first() if state else contextlib.nullcontext():
            folder = converted_model(model, engine_cache_dir)
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    prompt_ids = [
        p if p and isinstance(p, list) and isinstance(p[0], int) else tokenize_prompt(tokenizer, {"prompt": p})
        for p in prompts
    ]
    indices = _shard(prompt_ids, rank, world)
    show_progress = state is None or state.is_local_main_process
    finished: dict[int, bool] | None = {} if return_finished else None
    if backend == "hf":
        if isinstance(model, str):
            raise TypeError("backend='hf' needs a loaded model, got a path; load it with AutoModelForCausalLM.")
        local = _generate_hf(
            model,
            tokenizer,
            prompt_ids,
            indices,
            seed=seed + rank,
            batch_size=batch_size,
            show_progress=show_progress,
            desc=desc,
            finished=finished,
            **sampling,
        )
    elif backend == "vllm":
        local = _generate_vllm(model, prompt_ids, indices, seed=seed + rank, finished=finished, **sampling)
    else:
        local = _generate_engine(
            model, folder, prompt_ids, indices, tokenizer, precision=precision,
            batch_size=batch_size, seed=seed + rank, show_progress=show_progress, desc=desc, finished=finished,
            **sampling,
        )  # fmt: skip
    if finished is not None:
        local = [(i, text, finished[i]) for i, text in local]
    texts, ended = _in_prompt_order(gather_object(local) if world > 1 else local, len(prompt_ids))
    return (texts, ended) if return_finished else texts


def _in_prompt_order(gathered: list[tuple], n: int) -> tuple[list[str], list[bool | None]]:
    """Every process's (index, text[, finished]) back in the prompts' order: the texts and the finished flags."""
    texts: list[str | None] = [None] * n
    ended: list[bool | None] = [None] * n
    for i, text, *stopped in gathered:
        texts[i] = text
        ended[i] = stopped[0] if stopped else None
    assert all(t is not None for t in texts), "a prompt was lost while gathering generations"
    return texts, ended


def as_response(text: str, conversational: bool) -> str | list[dict]:
    """A generated text in the data set's format: a string, or a one-message assistant turn."""
    return [{"role": "assistant", "content": text}] if conversational else text


def add_generated_column(
    dataset: Dataset,
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    conversational: bool,
    backend: str = "hf",
    desc: str = "Self-play generation",
    **generation_kwargs,
) -> Dataset:
    """Return `dataset` with a `generated` column: one response y ~ pi_t per row's prompt."""
    if "prompt_ids" in dataset.column_names:
        prompts = dataset["prompt_ids"]  # generate from exactly the tokens the trainer will condition on
    else:
        prompts = dataset["prompt"]
    texts = generate_responses(model, tokenizer, prompts, backend=backend, desc=desc, **generation_kwargs)
    if "generated" in dataset.column_names:
        dataset = dataset.remove_columns("generated")
    return dataset.add_column("generated", [as_response(t, conversational) for t in texts])


@contextlib.contextmanager
def _without_zero3_init():
    """Load a full replica for generation even when the run trains with DeepSpeed ZeRO-3 (untested: no GPU in CI)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def loaded_policy(path: str, model_init_kwargs: dict | None = None) -> Iterator[PreTrainedModel]:
    """pi_t loaded from `path` on this process's device, for generation only; its memory is freed afterwards."""
    from trl.trainer.utils import create_model_from_path

    with _without_zero3_init():
        model = create_model_from_path(path, **dict(model_init_kwargs or {}))
    device = PartialState().device
    if model.device.type == "cpu" and device.type != "cpu":
        model.to(device)
    try:
        yield model
    finally:
        del model
        free_memory()


def _saved_policy(
    policy: Callable[[], AbstractContextManager[PreTrainedModel]], tokenizer: PreTrainedTokenizerBase, path: Path
) -> str:
    """Save the in-memory pi_t (the trainer's model) and its tokenizer (the engine's vocabulary) where the engine can
    convert them; the main process writes."""
    from .engine import ENGINE

    state = PartialState()
    with policy() as model:
        if getattr(model, "peft_config", None):
            raise ValueError(
                f"generation_backend='{ENGINE}' converts a full model; a PEFT model generates with "
                "generation_backend='hf'."
            )
        if state.is_main_process:
            with atomic_directory(path) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
    state.wait_for_everyone()
    return str(path)


@contextlib.contextmanager
def trainer_policy(accelerator, model, *, peft_reference: bool) -> Iterator[PreTrainedModel]:
    """A trainer's pi_t on the accelerator, for `add_self_play_column`'s `policy`: `model` unwrapped, with ZeRO-3
    shards gathered (ZeRO-3 and FSDP: untested), and with `peft_reference` PEFT's reference adapter (or the disabled
    adapter) active."""
    model = accelerator.unwrap_model(model)
    deepspeed_plugin = accelerator.state.deepspeed_plugin
    if deepspeed_plugin is not None and deepspeed_plugin.zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield model
        return
    if next(model.parameters()).device != accelerator.device:
        model.to(accelerator.device)  # DeepSpeed ZeRO-1/2 and FSDP leave it on CPU until `train`
    with reference_adapter(model) if peft_reference else contextlib.nullcontext():
        yield model


def reference_adapter(model) -> AbstractContextManager:
    """With a PEFT model, its reference adapter (`"ref"`, or else the adapter disabled) active; nothing otherwise."""
    if not is_peft_model(model):
        return contextlib.nullcontext()
    from trl.trainer.utils import use_adapter

    return use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None)


def add_self_play_column(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    args: SelfPlayConfig,
    *,
    conversational: bool,
    policy_path: str | None = None,
    policy: Callable[[], AbstractContextManager[PreTrainedModel]] | None = None,
    name: str = "train_dataset",
) -> Dataset:
    """`dataset` with a `generated` column sampled from pi_t with the settings of `args`: the one place where the
    trainer and the loop generate.

    `args.generation_backend="vllm"` loads pi_t from `policy_path`; `"ctranslate2"` converts the model saved at
    `policy_path` (or, without one, the model `policy()` yields, saved first) once into `output_dir/engine/`, where
    the conversion is kept for the iterate and checked on reuse; the HF backend generates with the model that
    `policy()` yields (the trainer's own model), or else with the one saved at `policy_path` (the loop's iterate).
    """
    require_map_style(dataset, name, "self-play generation")
    options = {"conversational": conversational, "desc": f"Self-play generation ({name})", **args.generation_kwargs}
    if args.generation_backend == "vllm":
        if policy_path is None:
            raise ValueError("generation_backend='vllm' loads pi_t from disk: pass the model as a path.")
        return add_generated_column(dataset, policy_path, tokenizer, backend="vllm", **options)
    if args.generation_backend == "ctranslate2":
        if policy_path is None:
            if policy is None:
                raise ValueError("Self-play generation needs pi_t: a loaded model or the path of a saved one.")
            policy_path = _saved_policy(policy, tokenizer, Path(args.output_dir) / "engine" / "policy")
        cache = Path(args.output_dir) / "engine" / path_key(policy_path)
        return add_generated_column(
            dataset, policy_path, tokenizer, backend="ctranslate2", engine_cache_dir=str(cache), **options
        )
    if policy is None:
        if policy_path is None:
            raise ValueError("Self-play generation needs pi_t: a loaded model or the path of a saved one.")
        policy = functools.partial(loaded_policy, policy_path, args.model_init_kwargs)
    with policy() as model:
        return add_generated_column(dataset, model, tokenizer, **options)
