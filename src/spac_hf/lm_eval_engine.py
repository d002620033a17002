"""lm-eval's model `spac-ct2`: a saved transformers model evaluated through CTranslate2 (`spac_hf.engine`).

Importing this module registers the model with lm-eval's registry, so `simple_evaluate(model="spac-ct2", ...)` and
lm-eval's own command line work:

    python -m spac_hf.lm_eval_engine run --model spac-ct2 --model_args pretrained=outputs/smollm2/model \\
        --tasks ifeval --batch_size 32        # lm-eval's CLI, with this module imported first

`model_args`: `pretrained` (a saved model folder), `precision` (`float32`: loglikelihoods equal to lm-eval's `hf`
model within float32 rounding and the same greedy answers; `int8`: faster), `batch_size`, `max_length` (default:
the model's context), `max_gen_toks` (default 256), `cache_dir` (the conversion; default the user's cache), `threads`.

Tokenization follows lm-eval's `hf` model (`tok_encode` with the tokenizer's own special-token default, the BOS as
the prefix of an empty context), so both score the same tokens. Generation stops at the end-of-text token or, checked
after every token, at the first stop string; the text is then cut there as lm-eval's `hf` model cuts it.
"""

from __future__ import annotations

import logging
from typing import Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm.auto import tqdm

from .engine import Engine, check_sampling, converted_model


logger = logging.getLogger(__name__)

NAME = "spac-ct2"


@register_model(NAME)
class EngineLM(TemplateLM):
    """A CTranslate2-converted model behind lm-eval's `loglikelihood`, `loglikelihood_rolling` and `generate_until`."""

    def __init__(
        self,
        pretrained: str,
        precision: str = "float32",
        batch_size: int | str = 16,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        cache_dir: str | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoTokenizer

        # What lm-eval passes to every model (the engine runs on CPU, in the precision given).
        ignored = {
            k: v for k, v in kwargs.items() if k not in ("device", "dtype", "trust_remote_code", "max_batch_size")
        }
        if ignored:
            raise ValueError(f"{NAME}: unknown model_args {sorted(ignored)}; see spac_hf.lm_eval_engine.")
        if str(batch_size).startswith("auto"):
            raise ValueError(f"{NAME}: batch_size='auto' is not supported; give a number (e.g. 32).")
        self.tokenizer = AutoTokenizer.from_pretrained(pretrained)
        config = AutoConfig.from_pretrained(pretrained)
        self.engine = Engine(converted_model(pretrained, cache_dir), precision=precision, threads=threads)
        self.batch_size = int(batch_size)
        self._max_length = int(max_length or getattr(config, "max_position_embeddings", 2048))
        self.max_gen_toks = int(max_gen_toks)
        self.pretrained = pretrained

    # ------------------------------------------------------------------ tokens

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        # As lm-eval's hf model: an empty context is scored after the BOS (or, without one, the EOS).
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        options = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return self.tokenizer.encode(string, **options)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    # ------------------------------------------------------------------ scoring

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """Sum of the continuation's log-probabilities and whether greedy decoding would produce it, per request."""
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]) - len(requests[i][2]))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="loglikelihood")
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            # The last max_length + 1 tokens: the model sees max_length of them, as in lm-eval's hf model.
            sequences = [(requests[i][1] + requests[i][2])[-(self.max_length + 1) :] for i in batch]
            for i, log_probs in zip(batch, self.engine.log_probs(sequences, self.batch_size)):
                continuation = requests[i][2]
                rows = log_probs[-len(continuation) :]
                picked = rows[range(len(continuation)), continuation]
                greedy = bool((rows.argmax(-1) == continuation).all())
                results[i] = (float(picked.sum()), greedy)
                self.cache_hook.add_partial("loglikelihood", requests[i][0], results[i])
            bar.update(len(batch))
        bar.close()
        return results  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        out = []
        for request in tqdm(requests, disable=disable_tqdm or self.rank != 0, desc="loglikelihood_rolling"):
            (string,) = request.args
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            scores = self._loglikelihood_tokens([(None, c, t) for c, t in windows], disable_tqdm=True)
            out.append(sum(score for score, _ in scores))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), out[-1])
        return out

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos = self.tokenizer.decode([self.eot_token_id])
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        results: list[str | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="generate_until")
        for indices in groups.values():
            kwargs = normalize_gen_kwargs(dict(requests[indices[0]].args[1]), self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen_toks = kwargs.pop("max_gen_toks")
            do_sample = kwargs.pop("do_sample", False)
            temperature = float(kwargs.pop("temperature", 0.0)) if do_sample else 0.0
            kwargs.pop("temperature", None)  # normalize_gen_kwargs sets it to 0 for greedy requests
            top_p, top_k = kwargs.pop("top_p", 1.0), kwargs.pop("top_k", 0)
            kwargs.pop("max_length", None)
            if kwargs:
                raise ValueError(f"{NAME}: generation option(s) {sorted(kwargs)} not supported; use --model hf.")
            check_sampling(temperature=temperature, top_p=top_p, top_k=top_k or 0, max_new_tokens=max_gen_toks)
            budget = self.max_length - max_gen_toks
            if budget <= 0:
                raise ValueError(
                    f"{NAME}: max_gen_toks {max_gen_toks} must be less than max_length {self.max_length}."
                )
            # Batch by batch as each finishes: the bar moves and the cache keeps every finished answer during a long
            # task (IFEval: 541 answers), and a free worker takes the next batch (`Engine.stream`).
            stream = self.engine.stream(
                [self.tok_encode(requests[i].args[0])[-budget:] for i in indices],
                stop_ids=[self.eot_token_id],
                max_new_tokens=max_gen_toks,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k or 0,
                batch_size=self.batch_size,
                stop_strings=until,
                decode=self.tokenizer.decode,
            )
            for batch, outputs in stream:
                for j, ids in zip(batch, outputs):
                    request = requests[indices[j]]
                    results[indices[j]] = postprocess_generated_text(self.tokenizer.decode(ids), until, None)
                    self.cache_hook.add_partial("generate_until", request.args, results[indices[j]])
                bar.update(len(batch))
        bar.close()
        return results  # type: ignore[return-value]


def main() -> None:
    """lm-eval's command line with `spac-ct2` registered."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
