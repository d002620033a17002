"""Side-by-side generation: check a request, load (and cache) the two models, stream both answers at once.

Nothing here knows about Gradio: a bad request raises `RequestRejected`, which the app turns into a message on the
page. Only labels of the allowlist (`models.py`) are ever resolved to something to load.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from models import ModelEntry
from settings import Settings
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList, TextStreamer


logger = logging.getLogger(__name__)

MAX_TEMPERATURE = 2.0
_DONE = object()


class RequestRejected(ValueError):
    """A request the Space will not run (unknown model, prompt too long, ...); the message is shown to the user."""


@dataclass
class LoadedModel:
    entry: ModelEntry
    model: torch.nn.Module
    tokenizer: object
    chat: bool  # wrap the prompt in the chat template as one user turn

    def encode(self, prompt: str) -> dict[str, torch.Tensor]:
        if self.chat:
            messages = [{"role": "user", "content": prompt}]
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:
            encoded = self.tokenizer(prompt, return_tensors="pt")
        device = next(self.model.parameters()).device
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}


def load_model(entry: ModelEntry) -> LoadedModel:
    logger.info("Loading %s from %s", entry.label, entry.source)
    tokenizer = AutoTokenizer.from_pretrained(entry.source, revision=entry.revision)
    model = AutoModelForCausalLM.from_pretrained(entry.source, revision=entry.revision)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    chat = entry.chat if entry.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    return LoadedModel(entry, model, tokenizer, chat)


class ModelCache:
    """The last `capacity` models used, loaded once each: switching back and forth between two models is instant."""

    def __init__(self, capacity: int, loader=load_model):
        self.capacity, self.loader = capacity, loader
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # held while loading, so two requests never load the same model twice

    def get(self, entry: ModelEntry) -> LoadedModel:
        key = (entry.source, entry.revision, entry.chat)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
            else:
                self._models[key] = self.loader(entry)
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return self._models[key]

    def __len__(self) -> int:
        return len(self._models)


class _QueueStreamer(TextStreamer):
    """Puts each finished piece of text, tagged with its side (0 left, 1 right), on a queue shared by both models."""

    def __init__(self, tokenizer, side: int, sink: queue.Queue):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.side, self.sink = side, sink

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.sink.put((self.side, text))


class _StopWhenSet(StoppingCriteria):
    """Ends generation early once the request is gone (the page was closed, or the other model failed)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _generate_into(loaded: LoadedModel, inputs: dict, side: int, sink: queue.Queue, stop: threading.Event, **kwargs):
    try:
        tokenizer = loaded.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        loaded.model.generate(
            **inputs,
            streamer=_QueueStreamer(tokenizer, side, sink),
            stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
            pad_token_id=pad_id,
            **kwargs,
        )
    except Exception as err:  # reported to the request, which shows it; the server keeps running
        logger.exception("Generation with %s failed", loaded.entry.label)
        sink.put((side, err))
    finally:
        sink.put((side, _DONE))


def sampling_options(max_new_tokens: int, temperature: float) -> dict:
    if temperature == 0:
        return {"max_new_tokens": max_new_tokens, "do_sample": False}
    return {"max_new_tokens": max_new_tokens, "do_sample": True, "temperature": temperature}


class SideBySide:
    """The generation endpoint: `run(prompt, left_label, right_label, max_new_tokens, temperature)` yields the two
    texts so far, (left, right), each time either model writes more."""

    def __init__(self, allowlist: dict[str, ModelEntry], settings: Settings, cache: ModelCache | None = None):
        self.allowlist, self.settings = allowlist, settings
        self.cache = cache or ModelCache(settings.model_cache_size)
        self.timeout_s = 120.0  # longest wait for the next piece of text before giving up on a request

    def entry(self, label: object) -> ModelEntry:
        # A client can send anything: only an exact label of the allowlist is accepted, never a path or repo id.
        if not isinstance(label, str) or label not in self.allowlist:
            raise RequestRejected(f"Unknown model {str(label)[:100]!r}: choose one of {list(self.allowlist)}")
        return self.allowlist[label]

    def check_prompt(self, prompt: object) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestRejected("Write a prompt first.")
        if len(prompt) > self.settings.max_prompt_chars:
            raise RequestRejected(
                f"Prompt too long: {len(prompt)} characters, at most {self.settings.max_prompt_chars} are accepted."
            )
        # Trailing spaces would change how the response starts (the default task's responses begin with a space).
        return prompt.strip()

    def check_options(self, max_new_tokens: object, temperature: object) -> tuple[int, float]:
        limit = self.settings.max_new_tokens
        if not isinstance(max_new_tokens, (int, float)) or not 1 <= max_new_tokens <= limit:
            raise RequestRejected(f"max_new_tokens must be between 1 and {limit}, got {max_new_tokens!r}")
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= MAX_TEMPERATURE:
            raise RequestRejected(f"temperature must be between 0 and {MAX_TEMPERATURE}, got {temperature!r}")
        return int(max_new_tokens), float(temperature)

    def encode_checked(self, loaded: LoadedModel, prompt: str, max_new_tokens: int) -> dict:
        inputs = loaded.encode(prompt)
        length = inputs["input_ids"].shape[1]
        if length > self.settings.max_prompt_tokens:
            raise RequestRejected(
                f"Prompt too long for {loaded.entry.label}: {length} tokens, "
                f"at most {self.settings.max_prompt_tokens} are accepted."
            )
        positions = getattr(loaded.model.config, "max_position_embeddings", None)
        if positions is not None and length + max_new_tokens > positions:
            raise RequestRejected(
                f"{loaded.entry.label} reads at most {positions} tokens: shorten the prompt or ask for fewer tokens."
            )
        return inputs

    def run(
        self, prompt: object, left_label: object, right_label: object, max_new_tokens: object, temperature: object
    ) -> Iterator[tuple[str, str]]:
        # Every check happens before any model runs, so a rejected request costs nothing.
        entries = [self.entry(left_label), self.entry(right_label)]
        prompt = self.check_prompt(prompt)
        max_new_tokens, temperature = self.check_options(max_new_tokens, temperature)
        loaded = [self.cache.get(entry) for entry in entries]
        inputs = [self.encode_checked(model, prompt, max_new_tokens) for model in loaded]
        yield from self._stream(loaded, inputs, sampling_options(max_new_tokens, temperature))

    def _stream(self, loaded: list[LoadedModel], inputs: list[dict], options: dict) -> Iterator[tuple[str, str]]:
        sink: queue.Queue = queue.Queue()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_generate_into, args=(model, batch, side, sink, stop), kwargs=options, daemon=True)
            for side, (model, batch) in enumerate(zip(loaded, inputs))
        ]
        texts, finished = ["", ""], 0
        try:
            for thread in threads:
                thread.start()
            while finished < len(threads):
                try:
                    side, item = sink.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise RequestRejected(f"Generation stalled for {self.timeout_s:.0f} s; try again.") from None
                if item is _DONE:
                    finished += 1
                elif isinstance(item, Exception):
                    raise RequestRejected(f"{loaded[side].entry.label} failed: {type(item).__name__}: {item}")
                else:
                    texts[side] += item
                    yield texts[0], texts[1]
            yield texts[0], texts[1]  # at least once, also when both models stop at once without a word
        finally:
            stop.set()  # reached on errors and when the request is dropped: the other model stops too
