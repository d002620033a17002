"""The theory issue's options: lambda scaled by sqrt(n) in the trainer's loss, the pessimism weight, the theory preset
(loads and runs), and the uniform mixture of the iterates."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from spac_hf import SPACConfig, SPACTrainer
from spac_hf.losses import LogProbs, scaled_lam, spac_loss
from spac_hf.mixture import IterateMixture, is_mixture
from spac_hf.presets import THEORY_PRESET

from helpers import batch_loss, perturb, preference_rows, rows_with_generated


ROOT = Path(__file__).resolve().parents[1]
THEORY_CONFIGS = sorted([*ROOT.glob("recipes/*/spac_theory.yaml"), *ROOT.glob("recipes/*/spac/config_theory.yaml")])


def trainer_for(tiny_model_dir, tokenizer, make_args, rows, **options):
    return SPACTrainer(
        tiny_model_dir, args=make_args(**options), train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )


# ------------------------------------------------------------------------------------------------ lambda = lam sqrt(n)


def test_sqrt_n_lambda_is_the_lambda_of_the_trainers_loss(tiny_model_dir, tokenizer, make_args):
    rows = rows_with_generated(9)  # n = 9 pairs: lambda = 0.3 * 3 = 0.9
    scaled = trainer_for(tiny_model_dir, tokenizer, make_args, rows, lam=0.3, lam_scaling="sqrt_n")
    assert scaled.lam == pytest.approx(0.9) and scaled.loss_settings["lam_num_pairs"] == 9

    # At theta = pi_t every h is 0: the loss is (1 + lambda) log 2 with the scaled lambda, not with lam.
    at_reference, _ = batch_loss(scaled)
    assert at_reference.item() == pytest.approx(1.9 * math.log(2), abs=1e-6)
    assert scaled._metrics["train"]["spac/lam"][-1] == pytest.approx(0.9)

    # Away from the reference: the same loss and gradients as a constant lambda of 0.9, not of 0.3.
    constant = trainer_for(tiny_model_dir, tokenizer, make_args, rows, lam=0.9)
    unscaled = trainer_for(tiny_model_dir, tokenizer, make_args, rows, lam=0.3)
    losses = {}
    for name, trainer in {"scaled": scaled, "constant": constant, "unscaled": unscaled}.items():
        perturb(trainer.model, seed=5)
        losses[name] = batch_loss(trainer)
    torch.testing.assert_close(losses["scaled"][0], losses["constant"][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(losses["scaled"][1], losses["constant"][1], rtol=1e-5, atol=1e-7)
    assert abs(losses["scaled"][0].item() - losses["unscaled"][0].item()) > 1e-3


def test_scaled_lam():
    assert scaled_lam(0.1, "constant", 10_000) == 0.1
    assert scaled_lam(0.1, "sqrt_n", 10_000) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="lam_scaling"):
        scaled_lam(0.1, "log_n", 100)
    with pytest.raises(ValueError, match="number of preference pairs"):
        scaled_lam(0.1, "sqrt_n", None)


def test_unknown_lam_scaling_is_an_error_naming_the_option(make_args):
    with pytest.raises(ValueError, match="`lam_scaling` must be one of .*'sqrt'"):
        make_args(lam_scaling="sqrt")
    with pytest.raises(ValueError, match="`pessimism_weight`"):
        make_args(pessimism_weight=-1.0)
    assert make_args(lam=0.5, lam_scaling="sqrt_n").effective_lam(400) == pytest.approx(10.0)


def test_sqrt_n_needs_a_sized_training_set(tiny_model_dir, tokenizer, make_args):
    stream = Dataset.from_list(rows_with_generated(4)).to_iterable_dataset()
    with pytest.raises(ValueError, match="train_dataset: `lam_scaling='sqrt_n'` needs the number"):
        SPACTrainer(tiny_model_dir, args=make_args(lam_scaling="sqrt_n", precompute_ref_log_probs=False),
                    train_dataset=stream, processing_class=tokenizer)  # fmt: skip


# ------------------------------------------------------------------------------------------------ pessimism weight


def test_pessimism_weight_is_lambda_inverted_up_to_the_loss_scale(tiny_model_dir, tokenizer, make_args):
    """(pessimism_weight = w, lam = 1) is w times (pessimism_weight = 1, lam = 1 / w): loss and gradients."""
    rows = rows_with_generated(8)
    weighted = trainer_for(tiny_model_dir, tokenizer, make_args, rows, lam=1.0, pessimism_weight=4.0)
    inverted = trainer_for(tiny_model_dir, tokenizer, make_args, rows, lam=0.25)
    perturb(weighted.model, seed=3)
    perturb(inverted.model, seed=3)
    (loss_w, grads_w), (loss_i, grads_i) = batch_loss(weighted), batch_loss(inverted)
    torch.testing.assert_close(loss_w, 4.0 * loss_i, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grads_w, 4.0 * grads_i, rtol=1e-5, atol=1e-7)
    assert abs(loss_w.item() - loss_i.item()) > 1e-3


def test_typed_and_positional_log_probs_agree():
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(5, generator=g) - 10 for _ in range(6)]
    typed = spac_loss(LogProbs(*tensors[:3]), LogProbs(*tensors[3:]), beta=0.3, lam=2.0, pessimism_weight=0.5)
    positional = spac_loss(*tensors, beta=0.3, lam=2.0, pessimism_weight=0.5)
    for a, b in zip(typed, positional, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(typed[0], 0.5 * typed[1] + 2.0 * typed[2])
    with pytest.raises(TypeError, match="six log-prob tensors"):
        spac_loss(*tensors[:4])
    with pytest.raises(ValueError, match="generated"):
        spac_loss(LogProbs(*tensors[:2]), LogProbs(*tensors[3:5]))


# ------------------------------------------------------------------------------------------------ the theory preset


@pytest.mark.parametrize("config", THEORY_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_theory_preset_files_hold_the_preset(config):
    from spac_hf.scripts.self_play import parse_recipe_args

    _, training_args, _, _ = parse_recipe_args(SPACConfig, config, ["--config", str(config), "--use_cpu", "true"])
    assert {key: getattr(training_args, key) for key in THEORY_PRESET} == THEORY_PRESET
    assert not training_args.average_iterates  # the theory's output is the mixture, not the weight average


def test_theory_preset_loads_and_runs(tiny_model_dir, tmp_path):
    """The default preset file, with the model and data swapped for tiny ones and 2 of its 10 iterations."""
    from spac_hf import run_self_play
    from spac_hf.scripts.self_play import parse_recipe_args

    assert THEORY_CONFIGS, "no spac_theory.yaml"
    config = ROOT / "src" / "spac_hf" / "default" / "spac_theory.yaml"
    out = tmp_path / "theory"
    argv = ["--config", str(config), "--model_name_or_path", tiny_model_dir, "--output_dir", str(out),
            "--num_iterations", "2", "--max_new_tokens", "6", "--generation_batch_size", "8",
            "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_strategy", "no"]  # fmt: skip
    _, args, _, _ = parse_recipe_args(SPACConfig, config, argv)
    assert (args.beta, args.lam, args.lam_scaling, args.iteration_data) == (1.0, 0.1, "sqrt_n", "full")
    result = run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(16)), method="spac")
    for t in (1, 2):
        record = json.loads((out / f"iter_{t}" / "iterate.json").read_text())
        assert record["train_rows"] == 16  # "full": every iteration trains on all the pairs
        assert record["loss"]["effective_lam"] == pytest.approx(0.1 * 4) and record["loss"]["lam_num_pairs"] == 16
        logged = [entry["spac/lam"] for entry in record["log_history"] if "spac/lam" in entry]
        assert logged and all(value == pytest.approx(0.4) for value in logged)
        card = (out / f"iter_{t}" / "README.md").read_text()
        assert "effective_lam" in card and "sqrt_n" in card
    # The theory's output: the uniform mixture of the run's iterates.
    mixture = IterateMixture.from_run(result.output_dir, seed=1)
    assert mixture.iterates == tuple(result.iterates)


# ------------------------------------------------------------------------------------------------ the mixture


def fake_run(tmp_path, iterates=3) -> Path:
    out = tmp_path / "run"
    for t in range(1, iterates + 1):
        (out / f"iter_{t}").mkdir(parents=True)
        (out / f"iter_{t}" / "iterate.json").write_text("{}")
    (out / "iter_average").mkdir()  # not an iterate of the mixture
    return out


def test_mixture_assignment_is_uniform_and_reproducible(tmp_path):
    mixture = IterateMixture.from_run(fake_run(tmp_path, 3), seed=7)
    assert [Path(p).name for p in mixture.iterates] == ["iter_1", "iter_2", "iter_3"]
    owners = mixture.assign(3000)
    assert owners == IterateMixture(mixture.iterates, seed=7).assign(3000)  # the seed alone decides
    assert owners != IterateMixture(mixture.iterates, seed=8).assign(3000)
    counts = [owners.count(k) for k in range(3)]
    assert all(abs(c - 1000) < 4 * math.sqrt(3000 * (1 / 3) * (2 / 3)) for c in counts), counts
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    mixture.assign(10)
    assert torch.equal(torch.rand(1), before)  # the caller's random state is untouched

    saved = mixture.save(tmp_path / "mixture")
    assert is_mixture(saved) and IterateMixture.load(saved) == mixture
    with pytest.raises(ValueError, match="no finished iterate"):
        IterateMixture.from_run(tmp_path / "missing")
    shutil.rmtree(tmp_path / "run" / "iter_2")
    with pytest.raises(ValueError, match=r"iterates \[2\] are not finished"):
        IterateMixture.from_run(tmp_path / "run")


def test_mixture_generates_each_prompt_with_its_sampled_iterate(tiny_model_dir, tokenizer, tmp_path):
    """Three different stored iterates; every response is the one its assigned iterate gives with seed + k."""
    from spac_hf.generation import generate_responses

    paths = []
    for k in range(3):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        perturb(model, seed=10 + k, scale=0.5)
        model.save_pretrained(tmp_path / f"iter_{k + 1}")
        paths.append(str(tmp_path / f"iter_{k + 1}"))
    prompts = [row["prompt"] for row in preference_rows(12)]
    mixture = IterateMixture(tuple(paths), seed=3)
    kwargs = {"max_new_tokens": 6, "temperature": 1.0, "batch_size": 4}
    texts = mixture.generate(tokenizer, prompts, **kwargs)
    assert texts == mixture.generate(tokenizer, prompts, **kwargs)  # reproducible
    owners = mixture.assign(len(prompts))
    assert len(set(owners)) == 3  # every iterate answers some prompt here
    for k, path in enumerate(paths):
        mine = [i for i, owner in enumerate(owners) if owner == k]
        model = AutoModelForCausalLM.from_pretrained(path)
        expected = generate_responses(model, tokenizer, [prompts[i] for i in mine], seed=3 + k, distributed=False,
                                      **kwargs)  # fmt: skip
        assert [texts[i] for i in mine] == expected
    assert len(set(texts)) > 1
