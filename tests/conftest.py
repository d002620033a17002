"""Shared fixtures: a saved tiny Llama with a locally trained byte-level BPE tokenizer, and a CPU config factory.

Everything is built on the fly, offline, in a few seconds: no Hub access, no downloaded weights. What the fixtures are
built from (and what tests import directly) is in helpers.py.
"""

from __future__ import annotations

import os
import random

import pytest

from helpers import CPU_TRAINING, build_model, build_tokenizer, sentence


# The `hub_server` fixture: a local stand-in for the Hugging Face Hub (tests/hub_server.py).
pytest_plugins = ["hub_server"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
# The test models are tiny: one thread avoids oversubscription (2 cores, and subprocesses of their own).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser):
    parser.addoption(
        "--exhaustive", action="store_true", help="also run the exhaustive tests (marked `exhaustive`: minutes each)"
    )


def pytest_collection_modifyitems(config, items):
    """Exhaustive tests (every kill point of a run, ...) run with `--exhaustive`; the default suite covers every kind
    of case they enumerate, and keeps CI short."""
    if config.getoption("--exhaustive"):
        return
    skip = pytest.mark.skip(reason="exhaustive: run with `pytest --exhaustive`")
    for item in items:
        if "exhaustive" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny Llama (about 30k parameters) and its tokenizer, reloadable by path like a Hub model."""
    rng = random.Random(0)
    corpus = [sentence(rng, 3, 12) for _ in range(2000)]
    tokenizer = build_tokenizer(corpus)
    model = build_model(tokenizer)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture
def make_args(tmp_path):
    """`make_args(ConfigClass=SPACConfig, **overrides)`: a CPU-friendly config writing under tmp_path."""

    def make(config_class=None, **overrides):
        from spac_hf import SPACConfig

        config_class = config_class or SPACConfig
        options = {**CPU_TRAINING, "output_dir": str(tmp_path / "out"), **overrides}
        return config_class(**options)

    return make


@pytest.fixture
def sharp_dir(tiny_model_dir, tmp_path):
    """The tiny model with larger weights, saved: greedy decoding has clear winners (no float near-ties)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    path = tmp_path / "sharp"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return str(path)
