"""Generation engines side by side: transformers `generate` against CTranslate2 (float32, the exact mode, and int8,
the fast mode) on the same prompts, in one run, interleaved.

    python recipes/smollm2/convert.py                                  # once: -> outputs/smollm2/model
    nice -n 10 python -m benchmarks.cost.engines --section grid        # tokens/s at batch 1, 8, 32, 64
    nice -n 10 python -m benchmarks.cost.engines --section kl          # the fast mode's distance to float32
    nice -n 10 python -m benchmarks.cost.engines --section ifeval --prompts 64 --max-new-tokens 512
    python -m benchmarks.cost.engines --report                         # engines.md and engines.png from the JSON

Sections (each adds its rows to `results/cost/generation/engines.json`, written after every measurement, so a killed
run keeps what it measured):
- `grid`: for each model (SmolLM2-135M-Instruct and the embedded default's model) and batch size, one batch of that
  many prompts, greedy, exactly `--grid-new-tokens` new tokens each (the stop token is suppressed, so every backend
  does the same work); the backends run one after another in a rotating order. Also the time to convert the model.
- `matmul`: torch matmul GFLOP/s on `--threads` threads (the shapes of a decode step at batch 64 and a large square
  one), the machine's measured limit each backend's FLOP rate is compared with.
- `kl`: held-out prompts (AlpacaEval instructions, not IFEval), float32 greedy answers, then the mean per-token
  KL(float32 || int8) of the next-token distributions over the answer positions, and the share of positions whose
  argmax differs.
- `ifeval`: IFEval's own prompts at their own answer lengths (greedy, stopping at the end of turn), through
  `spac_hf.generation.generate_responses`, the path the benchmarks use, with the count of answers equal to HF's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from spac_hf.utils import atomic_write_json, environment_info, torch_threads


SMOLLM2 = "outputs/smollm2/model"
DEFAULT_MODEL = "src/spac_hf/default/model"
# `ctranslate2-<precision>`: one one-thread worker per thread; `-w<k>` names another layout (`-w1`: one worker on
# every thread, the layout before workers existed). In the ifeval section, `hf-t<k>` is `generate` on k threads and
# `hf-p<k>` is `generate` in k one-thread processes on the engine's batches and schedule (for transformers).
BACKENDS = ("hf", "ctranslate2-float32", "ctranslate2-int8")
OUT = Path("results/cost/generation")
RESULTS = "engines.json"


def _load(out: Path) -> dict:
    path = out / RESULTS
    return json.loads(path.read_text()) if path.exists() else {"environment": environment_info(), "sections": {}}


def _save(out: Path, results: dict) -> None:
    atomic_write_json(out / RESULTS, results)


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def chat_prompt_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        for t in texts
    ]


def spread(items: list, key, n: int) -> list:
    """`n` items spread evenly over the range of `key` (shortest to longest)."""
    order = sorted(items, key=key)
    if n >= len(order):
        return order
    return [order[round(k * (len(order) - 1) / max(n - 1, 1))] for k in range(n)]


def model_prompts(model_dir: str, tokenizer, n: int) -> list[list[int]]:
    """Real prompts for each model: IFEval's for SmolLM2 (spread over its length range), the recipe's own data for
    the embedded default (its context is 256 tokens)."""
    if Path(model_dir).resolve() == Path(DEFAULT_MODEL).resolve():
        from datasets import load_dataset

        rows = load_dataset(str(Path(DEFAULT_MODEL).parent / "data"), split="train")
        from spac_hf.data import tokenize_prompt

        ids = [tokenize_prompt(tokenizer, {"prompt": p}) for p in rows["prompt"][: 4 * n]]
        return spread(ids, len, n)
    from benchmarks.eval_data.fetch import ifeval_rows

    ids = chat_prompt_ids(tokenizer, [r["prompt"] for r in ifeval_rows()])
    return spread(ids, len, n)


def matmul_gflops(threads: int) -> dict:
    """Best of a few timed runs of two matmuls: a decode step's shape at batch 64 (SmolLM2's MLP) and 1024^3."""
    out = {}
    with torch_threads(threads):
        for name, (m, k, n) in {"decode_64x576x1536": (64, 576, 1536), "square_1024": (1024, 1024, 1024)}.items():
            a, b = torch.randn(m, k), torch.randn(k, n)
            reps = max(3, int(2e9 / (2 * m * k * n)))
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(reps):
                    a @ b
                best = min(best, (time.perf_counter() - start) / reps)
            out[name] = round(2 * m * k * n / best / 1e9, 1)
    return out


def flops_per_token(config) -> float:
    """2 x the parameters a decode step multiplies by (every linear layer and the LM head), attention excluded."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head = getattr(config, "head_dim", None) or h // config.num_attention_heads
    kv = config.num_key_value_heads * head
    attention = h * config.num_attention_heads * head * 2 + 2 * h * kv
    return 2.0 * (layers * (attention + 3 * h * i) + h * config.vocab_size)


class Backends:
    """The three backends on one model, loaded once: HF float32, CTranslate2 float32 and int8."""

    def __init__(self, model_dir: str, threads: int, work: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from spac_hf.engine import converted_model, path_key

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        from spac_hf.generation import stop_token_ids

        self.stop_ids = stop_token_ids(self.model.generation_config, self.tokenizer)
        folder = work / path_key(model_dir)
        shutil.rmtree(folder, ignore_errors=True)  # the conversion is timed: never a cached one
        start = time.perf_counter()
        folder = converted_model(model_dir, folder)
        self.conversion_s = time.perf_counter() - start
        self.threads, self.folder, self.engines = threads, folder, {}

    def run(self, backend: str, prompts: list[list[int]], new_tokens: int, fixed_length: bool) -> list[list[int]]:
        if backend == "hf":
            return self._hf(prompts, new_tokens, fixed_length)
        return self.engine(backend).generate(
            prompts,
            stop_ids=self.stop_ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens if fixed_length else 0,
            temperature=0.0,
            batch_size=len(prompts),
        )

    def engine(self, backend: str):
        """`ctranslate2-<precision>` (one one-thread worker per thread) or `ctranslate2-<precision>-w<workers>`."""
        from spac_hf.engine import Engine

        if backend not in self.engines:
            _, precision, *layout = backend.split("-")
            workers = int(layout[0][1:]) if layout else self.threads
            self.engines[backend] = Engine(self.folder, precision=precision, threads=self.threads, workers=workers)
        return self.engines[backend]

    @torch.no_grad()
    def _hf(self, prompts, new_tokens, fixed_length):
        from spac_hf.generation import left_padded

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        ids, mask = left_padded(prompts, pad)
        width = ids.shape[1]
        with torch_threads(self.threads):
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                min_new_tokens=new_tokens if fixed_length else 0,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
            )
        return [out[row, width:].tolist() for row in range(len(prompts))]


def grid(args, results: dict) -> None:
    section = results["sections"].setdefault("grid", {"rows": [], "conversion_s": {}})
    for model_dir in args.models:
        name = Path(model_dir).parent.name if Path(model_dir).name == "model" else Path(model_dir).name
        backends = Backends(model_dir, args.threads, args.work)
        section["conversion_s"][name] = round(backends.conversion_s, 2)
        fpt = flops_per_token(backends.model.config)
        for k, batch in enumerate(args.batch_sizes):
            prompts = model_prompts(model_dir, backends.tokenizer, batch)
            new = args.grid_new_tokens
            if name == "default":  # its context is 256 positions
                new = min(new, 256 - max(map(len, prompts)))
            order = BACKENDS[k % 3 :] + BACKENDS[: k % 3]
            for backend in order:
                if backend != "hf":
                    backends.engine(backend)  # loaded before the clock starts, as hf's model is
                start = time.perf_counter()
                out = backends.run(backend, prompts, new, fixed_length=True)
                seconds = time.perf_counter() - start
                tokens = sum(len(o) for o in out)
                row = {
                    "model": name,
                    "backend": backend,
                    "workers": 1 if backend == "hf" else backends.engine(backend).workers,
                    "batch": batch,
                    "new_tokens": new,
                    "tokens": tokens,
                    "seconds": round(seconds, 2),
                    "tokens_per_s": round(tokens / seconds, 1),
                    "gflops": round(tokens * fpt / seconds / 1e9, 2),
                    "load_avg": _load_avg(),
                }
                section["rows"].append(row)
                print(json.dumps(row), flush=True)
                _save(args.out, results)


def kl(args, results: dict) -> None:
    import numpy as np

    from benchmarks.eval_data.fetch import alpaca_eval_instructions

    section = results["sections"].setdefault("kl", {"rows": []})
    for model_dir in args.models:
        name = Path(model_dir).parent.name if Path(model_dir).name == "model" else Path(model_dir).name
        backends = Backends(model_dir, args.threads, args.work)
        if name == "default":
            prompts = model_prompts(
                model_dir, backends.tokenizer, args.kl_prompts
            )  # its own data, held out of nothing
            new = 48
        else:
            texts = [r["instruction"] for r in alpaca_eval_instructions()[: args.kl_prompts]]
            prompts, new = chat_prompt_ids(backends.tokenizer, texts), args.kl_new_tokens
        answers = backends.engine("ctranslate2-float32").generate(
            prompts, stop_ids=backends.stop_ids, max_new_tokens=new, temperature=0.0
        )
        sequences = [p + a for p, a in zip(prompts, answers)]
        exact = backends.engine("ctranslate2-float32").log_probs(sequences)
        fast = backends.engine("ctranslate2-int8").log_probs(sequences)
        kls, flips, positions = [], 0, 0
        for p, e, f in zip(prompts, exact, fast):
            e, f = e[len(p) - 1 :], f[len(p) - 1 :]  # the positions that predict answer tokens
            kls.append((np.exp(e) * (e - f)).sum(-1))
            flips += int((e.argmax(-1) != f.argmax(-1)).sum())
            positions += len(e)
        kls = np.concatenate(kls)
        row = {
            "model": name,
            "prompts": len(prompts),
            "positions": positions,
            "mean_kl": float(kls.mean()),
            "max_kl": float(kls.max()),
            "argmax_differs": flips / positions,
            "source": ("recipe data" if name == "default" else "AlpacaEval instructions"),
        }
        section["rows"] = [r for r in section["rows"] if r["model"] != name] + [row]
        print(json.dumps(row), flush=True)
        _save(args.out, results)


def ifeval(args, results: dict) -> None:
    from spac_hf.generation import generate_responses

    from benchmarks.eval_data.fetch import ifeval_rows

    backends = Backends(args.models[0], args.threads, args.work)
    tokenizer = backends.tokenizer
    prompts = spread(chat_prompt_ids(tokenizer, [r["prompt"] for r in ifeval_rows()]), len, args.prompts)
    key = f"{len(prompts)}x{args.max_new_tokens}_batch{args.batch_size}"
    section = results["sections"].setdefault("ifeval", {}).setdefault(key, {"rows": []})
    texts, run = {}, time.strftime("%Y-%m-%d %H:%M:%S")
    for backend in args.ifeval_backends:
        if not backend.startswith("hf"):
            backends.engine(backend)  # loaded before the clock starts, as hf's model is
        start = time.perf_counter()
        if backend.startswith("hf-p"):
            processes = threads = int(backend[4:])
            out, seconds = _hf_processes(args.models[0], prompts, processes, args.max_new_tokens, args.batch_size)
        elif backend.startswith("hf"):  # the path the benchmarks take; `hf-t<k>`: on k threads
            threads = int(backend[4:]) if backend.startswith("hf-t") else args.threads
            with torch_threads(threads):
                out = generate_responses(
                    backends.model,
                    tokenizer,
                    prompts,
                    max_new_tokens=args.max_new_tokens,
                    temperature=0.0,
                    batch_size=args.batch_size,
                    distributed=False,
                    desc=backend,
                )
        else:
            engine = backends.engine(backend)
            ids = engine.generate(
                prompts,
                stop_ids=backends.stop_ids,
                max_new_tokens=args.max_new_tokens,
                temperature=0.0,
                batch_size=args.batch_size,
            )
            out = [tokenizer.decode(i, skip_special_tokens=True) for i in ids]
        if not backend.startswith("hf-p"):  # hf-p times its processes' generation only
            seconds = time.perf_counter() - start
        texts[backend] = out
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in out)
        hf_workers = processes if backend.startswith("hf-p") else 1
        row = {
            "run": run,
            "backend": backend,
            "workers": hf_workers if backend.startswith("hf") else backends.engine(backend).workers,
            "threads": threads if backend.startswith("hf") else args.threads,
            "prompts": len(prompts),
            "max_new_tokens": args.max_new_tokens,
            "batch": args.batch_size,
            "answer_tokens": tokens,
            "seconds": round(seconds, 1),
            "tokens_per_s": round(tokens / seconds, 1),
            "load_avg": _load_avg(),
        }
        section["rows"].append(row)
        for done in section["rows"][-len(texts) :]:  # once hf's texts exist, every row of this run is compared
            if "hf" in texts:
                done["same_text_as_hf"] = sum(a == b for a, b in zip(texts["hf"], texts[done["backend"]]))
        print(json.dumps(row), flush=True)
        _save(args.out, results)


def _hf_process(model_dir: str, prompts: list[list[int]], max_new_tokens: int, batches, barrier):
    """One process of `hf-p<k>`: load on one thread, wait for the others, then time only the generation of the
    batches it takes from the shared queue `batches` (lists of prompt indices) until it is empty."""
    import queue

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spac_hf.generation import generate_responses

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    barrier.wait()
    start, done = time.time(), []
    while True:
        try:
            batch = batches.get_nowait()
        except queue.Empty:
            break
        texts = generate_responses(
            model,
            tokenizer,
            [prompts[i] for i in batch],
            max_new_tokens=max_new_tokens,
            temperature=0.0,
            batch_size=len(batch),
            distributed=False,
            desc="hf-p",
        )
        done += zip(batch, texts)
    return done, start, time.time()


def _hf_processes(
    model_dir: str, prompts: list[list[int]], processes: int, max_new_tokens: int, batch_size: int
) -> tuple[list[str], float]:
    """`generate` in `processes` one-thread processes with the engine's greedy schedule (prompts sorted by length, cut
    into batches, each free process taking the next batch, longest prompts first: `Engine.stream`): the texts in the
    prompts' order and the seconds from the first process's start to the last one's end (each loads the model before
    the clock starts, as the in-process backends have)."""
    import multiprocessing

    from spac_hf.engine import length_sorted_batches

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        barrier, batches = manager.Barrier(processes), manager.Queue()
        for batch in length_sorted_batches(prompts, batch_size, processes)[::-1]:
            batches.put(batch)
        jobs = [
            pool.apply_async(_hf_process, (model_dir, prompts, max_new_tokens, batches, barrier))
            for _ in range(processes)
        ]
        done = [job.get() for job in jobs]
    texts = [""] * len(prompts)
    for pairs, _, _ in done:
        for i, text in pairs:
            texts[i] = text
    return texts, max(end for *_, end in done) - min(start for _, start, _ in done)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=["grid", "matmul", "kl", "ifeval"], action="append", default=[])
    parser.add_argument("--report", action="store_true", help="write engines.md and engines.png from the JSON")
    parser.add_argument("--models", nargs="+", default=[SMOLLM2, DEFAULT_MODEL])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32, 64])
    parser.add_argument("--grid-new-tokens", type=int, default=128)
    parser.add_argument("--kl-prompts", type=int, default=16)
    parser.add_argument("--kl-new-tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=64, help="ifeval: prompts, spread over the length range")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="ifeval")
    parser.add_argument("--batch-size", type=int, default=32, help="ifeval")
    parser.add_argument("--ifeval-backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=Path("outputs/engine_benchmark"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = _load(args.out)
    for section in args.section:
        start = {"load_avg_start": _load_avg(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        if section == "matmul":
            results["sections"].setdefault("matmul", []).append(
                {**start, **{f"threads_{t}": matmul_gflops(t) for t in (1, args.threads)}, "load_avg_end": _load_avg()}
            )
            print(json.dumps(results["sections"]["matmul"][-1]), flush=True)
            _save(args.out, results)
        else:
            {"grid": grid, "kl": kl, "ifeval": ifeval}[section](args, results)
    if args.report:
        from benchmarks.cost.engines_report import write_report

        write_report(args.out, results)


if __name__ == "__main__":
    main()
