"""The CTranslate2 backend: greedy texts equal to transformers', the conversion cache, seeds, and refusals."""

import contextlib
import json
import logging
import random
import sys
from pathlib import Path

import pytest
import torch


ctranslate2 = pytest.importorskip("ctranslate2")

from spac_hf.data import tokenize_prompt  # noqa: E402
from spac_hf.engine import MANIFEST, Engine, converted_model  # noqa: E402
from spac_hf.generation import add_self_play_column, generate_responses  # noqa: E402

from helpers import sentence  # noqa: E402


def prompts(n=24, seed=0):
    rng = random.Random(seed)
    return [sentence(rng, 1, 12) + ":" for _ in range(n)]  # lengths differ, so batches need padding


def test_exact_mode_greedy_texts_equal_transformers(sharp_dir, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    texts = prompts()
    model = AutoModelForCausalLM.from_pretrained(sharp_dir)
    options = dict(temperature=0.0, max_new_tokens=12, batch_size=8, distributed=False)
    expected = generate_responses(model, tokenizer, texts, **options)
    got = generate_responses(
        sharp_dir, tokenizer, texts, backend="ctranslate2", engine_cache_dir=str(tmp_path / "ct2"), **options
    )
    assert sum(a == b for a, b in zip(expected, got)) == len(texts) == 24
    assert len(set(expected)) > 5  # the prompts do lead to different answers


def test_log_probs_equal_transformers_in_float32(sharp_dir, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(sharp_dir)
    engine = Engine(converted_model(sharp_dir, tmp_path / "ct2"))
    sequences = [tokenize_prompt(tokenizer, {"prompt": t}) for t in prompts(5)]
    for seq, got in zip(sequences, engine.log_probs(sequences, batch_size=2)):
        with torch.no_grad():
            expected = torch.log_softmax(model(torch.tensor([seq])).logits[0, :-1], -1).numpy()
        assert got.shape == expected.shape
        # The weights are scaled by 8, so logits are large: 1e-3 absolute is float32 rounding at that scale.
        assert abs(got - expected).max() < 1e-3


def test_conversion_is_cached_and_a_damaged_copy_is_converted_again(sharp_dir, tmp_path, caplog):
    cache = tmp_path / "ct2"
    folder = converted_model(sharp_dir, cache)
    manifest = json.loads((folder / MANIFEST).read_text())
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert converted_model(sharp_dir, cache) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == stamp  # reused, not rewritten
    with open(folder / "model.bin", "r+b") as f:  # a kill or a disk error leaves a truncated file
        f.truncate(100)
    with caplog.at_level(logging.WARNING):
        folder = converted_model(sharp_dir, cache)
    assert "Discarding the converted model" in caplog.text
    assert json.loads((folder / MANIFEST).read_text())["sha256"] == manifest["sha256"]
    Engine(folder)  # loads


def test_the_default_conversion_cache_is_under_spac_hfs_cache_root(sharp_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path / "root"))
    folder = converted_model(sharp_dir)
    assert folder.parent == tmp_path / "root" / "ctranslate2" and (folder / MANIFEST).exists()


def test_sampling_is_reproducible_with_the_seed(sharp_dir, tokenizer, tmp_path):
    texts = prompts(8)
    options = dict(backend="ctranslate2", engine_cache_dir=str(tmp_path / "ct2"), max_new_tokens=8, distributed=False)
    first = generate_responses(sharp_dir, tokenizer, texts, seed=3, **options)
    again = generate_responses(sharp_dir, tokenizer, texts, seed=3, **options)
    other = generate_responses(sharp_dir, tokenizer, texts, seed=4, **options)
    assert first == again
    assert first != other


def test_self_play_column_from_a_path_and_from_the_trainers_model(sharp_dir, tokenizer, make_args):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    rows = Dataset.from_dict({"prompt": prompts(6), "chosen": ["a"] * 6, "rejected": ["b"] * 6})
    hf_args = make_args(temperature=0.0, max_new_tokens=8)
    ct_args = make_args(temperature=0.0, max_new_tokens=8, generation_backend="ctranslate2")
    expected = add_self_play_column(rows, tokenizer, hf_args, conversational=False, policy_path=sharp_dir)
    from_path = add_self_play_column(rows, tokenizer, ct_args, conversational=False, policy_path=sharp_dir)
    model = AutoModelForCausalLM.from_pretrained(sharp_dir)

    @contextlib.contextmanager
    def policy():  # what the trainer passes: its own in-memory pi_t
        yield model

    from_model = add_self_play_column(rows, tokenizer, ct_args, conversational=False, policy=policy)
    assert from_path["generated"] == expected["generated"] == from_model["generated"]
    # The saved in-memory model and one conversion per model, kept in the run's output folder.
    assert len(list((Path(ct_args.output_dir) / "engine").iterdir())) == 3


def test_refusals_name_the_option_and_the_alternative(make_args, tmp_path, monkeypatch, tokenizer):
    with pytest.raises(ValueError, match="generation_precision='int8'.*ctranslate2"):
        make_args(generation_precision="int8")
    folder = tmp_path / "olmo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "olmo"}))
    with pytest.raises(ValueError, match="cannot convert 'olmo'.*generation_backend='hf'"):
        generate_responses(str(folder), tokenizer, ["a"], backend="ctranslate2", distributed=False)
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install spac-hf\[fast\].*generation_backend='hf'"):
        make_args(generation_backend="ctranslate2")


def test_the_loop_generates_with_the_engine(sharp_dir, tokenizer, make_args):
    """Two SPAC iterations with generation_backend='ctranslate2': each pi_t converted once, in the run folder; the
    responses are the greedy texts transformers gives from the same iterate."""
    from datasets import Dataset, load_from_disk
    from transformers import AutoModelForCausalLM

    from spac_hf import run_self_play

    from helpers import preference_rows

    args = make_args(num_iterations=2, temperature=0.0, max_new_tokens=6, generation_backend="ctranslate2")
    result = run_self_play(sharp_dir, args, Dataset.from_list(preference_rows(8)), method="spac")
    conversions = sorted(p.name for p in (Path(args.output_dir) / "engine").iterdir())
    assert len(conversions) == 2  # the starting model and iterate 1, each converted once
    generated = load_from_disk(str(Path(args.output_dir) / "work" / "iter_2" / "generated"))
    model = AutoModelForCausalLM.from_pretrained(result.iterates[0])
    expected = generate_responses(
        model, tokenizer, generated["prompt"], temperature=0.0, max_new_tokens=6, distributed=False
    )
    assert generated["generated"] == expected


def test_workers_split_the_batches_without_changing_the_texts(sharp_dir, tokenizer, tmp_path):
    """Two one-thread workers give the greedy texts of one two-thread worker; sampling stays a function of the seed."""
    folder = converted_model(sharp_dir, tmp_path / "ct2")
    ids = [tokenize_prompt(tokenizer, {"prompt": t}) for t in prompts(10)]
    options = dict(stop_ids=[tokenizer.eos_token_id], max_new_tokens=8, batch_size=4)
    one, two = Engine(folder, threads=2, workers=1), Engine(folder, threads=2, workers=2)
    greedy = one.generate(ids, temperature=0.0, **options)
    assert two.generate(ids, temperature=0.0, **options) == greedy
    assert len(set(map(tuple, greedy))) > 3  # the prompts lead to different answers
    sampled = two.generate(ids, seed=5, **options)
    assert two.generate(ids, seed=5, **options) == sampled != two.generate(ids, seed=6, **options)
    with pytest.raises(ValueError, match="`workers` must be between 1 and threads=2, got 3"):
        Engine(folder, threads=2, workers=3)


def test_stream_yields_every_prompt_once_as_batches_finish_and_raises_a_workers_error(sharp_dir, tokenizer, tmp_path):
    """`Engine.stream` hands greedy batches to whichever worker is free: every prompt comes back exactly once, with
    `generate`'s text; a worker's error reaches the caller; a caller that stops reading does not hang the engine."""
    folder = converted_model(sharp_dir, tmp_path / "ct2")
    ids = [tokenize_prompt(tokenizer, {"prompt": t}) for t in prompts(10)]
    options = dict(stop_ids=[tokenizer.eos_token_id], max_new_tokens=8, batch_size=3, temperature=0.0)
    engine = Engine(folder, threads=2, workers=2)
    expected = Engine(folder, threads=1, workers=1).generate(ids, **options)
    batches = list(engine.stream(ids, **options))
    assert sorted(len(batch) for batch, _ in batches) == [1, 3, 3, 3]  # 10 prompts in batches of at most 3
    assert sorted(i for batch, _ in batches for i in batch) == list(range(10))
    assert {i: out for batch, outs in batches for i, out in zip(batch, outs)} == dict(enumerate(expected))
    first = next(engine.stream(ids, **options))  # read one batch, then drop the stream
    assert len(first[0]) in (1, 3)
    assert engine.generate(ids, **options) == expected  # the engine still works
    with pytest.raises(IndexError):
        list(engine.stream([*ids, [len(engine.vocabulary) + 5]], **options))  # a token id outside the vocabulary
