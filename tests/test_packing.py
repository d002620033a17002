"""Shared-prompt and padding-free batches (spac_hf.packing) give the padded layout's log-probs, loss and gradients.

Tolerances (fp32): losses and gradients to 1e-5 absolute. Summed per-sequence log-probs to 1e-5 absolute plus 1e-6
relative: a sum of ~100 in fp32 has a resolution of 7.6e-6, and the two layouts add the same per-token values in a
different order (measured: at most 2 units in the last place).
"""

import copy
import random
import warnings

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from spac_hf import SPACConfig, SPACTrainer
from spac_hf.collator import DataCollatorForSPAC
from spac_hf.packing import allowed_attention, pack_examples

from helpers import CPU_TRAINING, WORDS, build_tokenizer, sentence


LAYOUTS = [(True, False), (False, True), (True, True)]  # (share_prompt, padding_free); padded is (False, False)


@pytest.fixture(scope="module")
def tok():
    rng = random.Random(0)
    return build_tokenizer([sentence(rng, 3, 12) for _ in range(800)])


def random_rows(n, seed, long=False):
    """Prompts of 1-20 words, responses of 1-15 (generated 0-15): every row has its own lengths."""
    rng = random.Random(seed)
    top = 40 if long else 15

    def words(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        {
            "prompt": words(1, 20) + ":",
            "chosen": " " + words(1, top),
            "rejected": " " + words(1, top),
            "generated": " " + words(0, top),
        }
        for _ in range(n)
    ]


def tiny_model(architecture, tok, implementation, seed=0, hidden_size=32):
    """A tiny model of `architecture`, built from a config offline (Mistral: a sliding window shorter than rows)."""
    import transformers

    torch.manual_seed(seed)
    common = {
        "vocab_size": len(tok),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 256,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": None,
    }
    if architecture == "llama":
        config = transformers.LlamaConfig(num_key_value_heads=2, tie_word_embeddings=True, **common)
    elif architecture == "qwen2":
        config = transformers.Qwen2Config(num_key_value_heads=2, **common)
    elif architecture == "gpt_neox":
        config = transformers.GPTNeoXConfig(**common)
    elif architecture == "mistral":
        config = transformers.MistralConfig(num_key_value_heads=2, sliding_window=8, **common)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=implementation)
    # Away from the initialisation's near-uniform outputs, so differences would show.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return model


def make_trainer(model, tok, rows, tmp_path, ref_model=None, **overrides):
    options = {**CPU_TRAINING, "output_dir": str(tmp_path / "out"), "max_length": 96, **overrides}
    return SPACTrainer(
        model,
        ref_model=ref_model,
        args=SPACConfig(**options),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
    )


def collate(trainer, examples, share_prompt, padding_free):
    collator = DataCollatorForSPAC(
        pad_token_id=trainer._tokenizer.pad_token_id,
        responses=trainer.responses,
        max_length=trainer.args.max_length,
        truncation_mode=trainer.args.truncation_mode,
        share_prompt=share_prompt,
        padding_free=padding_free,
    )
    return collator(examples)


def logps_and_grads(trainer, inputs):
    trainer.model.zero_grad()
    logps, _ = trainer._sequence_logps(trainer.model, inputs)
    # A loss that weights every sequence differently, averaged over the sequences as the SPAC loss is over examples.
    (logps * torch.linspace(-1, 1, logps.numel(), device=logps.device)).mean().backward()
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return logps.detach(), grads


def assert_logps_close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gpt_neox", "mistral"])
def test_packed_forward_equals_padded(architecture, implementation, tok, tmp_path):
    model = tiny_model(architecture, tok, implementation)
    trainer = make_trainer(
        model,
        tok,
        random_rows(6, seed=1),
        tmp_path,
        share_prompt=False,
        precompute_ref_log_probs=False,
        ref_model=copy.deepcopy(model),
    )
    trainer.model.train()
    examples = [trainer.train_dataset[i] for i in range(6)]
    padded = collate(trainer, examples, False, False)
    expected_logps, expected_grads = logps_and_grads(trainer, padded)
    widths = {}
    for share, free in LAYOUTS:
        inputs = collate(trainer, examples, share, free)
        widths[share, free] = inputs["input_ids"].numel()
        logps, grads = logps_and_grads(trainer, inputs)
        assert_logps_close(logps, expected_logps)
        torch.testing.assert_close(grads, expected_grads, atol=1e-5, rtol=0)
    # The packed layouts really are smaller: the prompt once, and no padding.
    assert widths[True, True] < widths[True, False] < padded["input_ids"].numel()
    assert widths[False, True] == padded["attention_mask"].sum()


@pytest.mark.parametrize("share_prompt,padding_free", LAYOUTS)
def test_training_step_and_precompute_equal_padded(share_prompt, padding_free, tok, tmp_path):
    """The loss, its gradients, the logged metrics and the precomputed reference log-probs, through the trainer."""
    rows = random_rows(8, seed=2)
    model = tiny_model("llama", tok, "sdpa", seed=3)
    results = []
    for layout in [(False, False), (share_prompt, padding_free)]:
        trainer = make_trainer(
            copy.deepcopy(model), tok, rows, tmp_path, share_prompt=layout[0], padding_free=layout[1]
        )
        assert trainer._packing == layout
        with torch.no_grad():  # policy != reference, so the log-ratios are not all 0
            for p in trainer.model.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
        inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        trainer.model.train()
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
        refs = torch.tensor([trainer.train_dataset[f"ref_{r}_logps"] for r in trainer.responses])
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "num_tokens"}
        results.append((loss.detach(), grads, refs, metrics, trainer._metrics["train"]["num_tokens"][-1]))
    (loss0, grads0, refs0, metrics0, tokens0), (loss1, grads1, refs1, metrics1, tokens1) = results
    torch.testing.assert_close(loss1, loss0, atol=1e-5, rtol=0)
    torch.testing.assert_close(grads1, grads0, atol=1e-5, rtol=0)
    assert_logps_close(refs1, refs0)
    assert metrics1.keys() == metrics0.keys()
    for name in metrics0:
        assert metrics1[name] == pytest.approx(metrics0[name], abs=1e-4, rel=1e-5), name
    assert tokens1 < tokens0 if share_prompt else tokens1 == tokens0  # num_tokens counts the tokens processed


def test_on_the_fly_reference_gradient_checkpointing_and_lora(tok, tmp_path):
    """precompute_ref_log_probs=False (reference = the disabled adapter), checkpointing and PEFT LoRA, shared."""
    from peft import LoraConfig

    rows = random_rows(8, seed=4)
    model = tiny_model("llama", tok, "sdpa", seed=5)
    results = []
    for share in (False, True):
        trainer = SPACTrainer(
            copy.deepcopy(model),
            args=SPACConfig(
                **{
                    **CPU_TRAINING,
                    "output_dir": str(tmp_path / "out"),
                    "max_length": 96,
                    "share_prompt": share,
                    "precompute_ref_log_probs": False,
                    "gradient_checkpointing": True,
                }
            ),
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        )
        assert trainer._packing == (share, False)
        inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        assert "ref_chosen_logps" not in inputs
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        results.append((loss.detach(), grads))
    assert abs(results[0][0].item() - 2 * 0.6931) > 1e-4  # LoRA weights are random: not the trivial point
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-5, rtol=0)


def test_train_runs_packed(tok, tmp_path):
    trainer = make_trainer(
        tiny_model("llama", tok, "sdpa"), tok, random_rows(8, seed=6), tmp_path, padding_free=True, max_steps=2
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_implementation_without_custom_masks_falls_back_with_one_warning(tok, tmp_path):
    model = tiny_model("llama", tok, "sdpa")
    model.config._attn_implementation = "flash_attention_2"  # not run: only the layout decision is tested
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(
            model,
            tok,
            random_rows(4, seed=7),
            tmp_path,
            ref_model=copy.deepcopy(model),
            padding_free=True,
            precompute_ref_log_probs=False,
        )
        trainer._spac_collator()  # asked again: still one warning
    messages = [str(w.message) for w in caught if "Falling back to padded batches" in str(w.message)]
    assert len(messages) == 1, messages
    assert "share_prompt / padding_free" in messages[0] and "flash_attention_2" in messages[0]
    assert trainer._packing == (False, False)
    assert "completion_mask" in trainer.data_collator([trainer.train_dataset[i] for i in range(2)])


def test_keep_end_truncation_keeps_padding_free_but_not_sharing(tok, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(
            tiny_model("llama", tok, "sdpa"),
            tok,
            random_rows(4, seed=8),
            tmp_path,
            truncation_mode="keep_end",
            padding_free=True,
        )
    assert trainer._packing == (False, True)
    assert sum("`share_prompt=True` is not used" in str(w.message) for w in caught) == 1


def test_layout_and_mask_of_one_example():
    example = {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6], "generated_ids": [7, 8, 9]}
    batch = pack_examples([example], ("chosen", "rejected", "generated"), 0, share_prompt=True, padding_free=False)
    # [prompt[:-1] | 3, chosen | 3, rejected | 3, generated]
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 3, 6, 3, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 2, 3, 2, 3, 4, 5]]
    assert batch["shift_labels"].tolist() == [[-100, -100, 4, 5, -100, 6, -100, 7, 8, 9, -100]]
    assert batch["sequence_ids"].tolist() == [[-1, -1, 0, 0, -1, 1, -1, 2, 2, 2, -1]]
    assert batch["completion_lengths"].tolist() == [2, 1, 3]
    allowed = allowed_attention(batch["document_ids"], batch["branch_ids"], batch["position_ids"])[0, 0]
    assert allowed[6].nonzero().flatten().tolist() == [0, 1, 5, 6]  # rejected's token: prompt + its own block
    assert allowed[10].nonzero().flatten().tolist() == [0, 1, 7, 8, 9, 10]
    # max_length truncates each response as the padded layout does (keep_start): prompt + response <= max_length
    short = pack_examples(
        [example], ("chosen", "rejected", "generated"), 0, share_prompt=True, padding_free=False, max_length=4
    )
    assert short["completion_lengths"].tolist() == [1, 1, 1]


def _cuda_implementations():
    implementations = ["sdpa"]
    try:
        import torch.nn.attention.flex_attention  # noqa: F401

        implementations.append("flex_attention")
    except ImportError:
        pass
    return implementations


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("implementation", _cuda_implementations())
@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_packed_forward_equals_padded_on_cuda(architecture, implementation, tok, tmp_path):
    """The CPU equality above on a GPU, fp32, with sdpa's CUDA kernels and with flex_attention's block mask."""
    model = tiny_model(architecture, tok, implementation, hidden_size=64)  # head_dim 16: flex's kernels need >= 16
    options = {
        **CPU_TRAINING,
        "use_cpu": False,
        "output_dir": str(tmp_path / "out"),
        "max_length": 96,
        "share_prompt": False,
        "precompute_ref_log_probs": False,
    }
    trainer = SPACTrainer(
        model,
        ref_model=copy.deepcopy(model),
        args=SPACConfig(**options),
        train_dataset=Dataset.from_list(random_rows(6, seed=1)),
        processing_class=tok,
    )
    assert trainer.model.device.type == "cuda"
    trainer.model.train()
    examples = [trainer.train_dataset[i] for i in range(6)]
    to_cuda = trainer._prepare_inputs
    expected_logps, expected_grads = logps_and_grads(trainer, to_cuda(collate(trainer, examples, False, False)))
    for share, free in LAYOUTS:
        logps, grads = logps_and_grads(trainer, to_cuda(collate(trainer, examples, share, free)))
        assert_logps_close(logps.cpu(), expected_logps.cpu())
        torch.testing.assert_close(grads, expected_grads, atol=1e-5, rtol=0)


def test_the_default_recipe_model_takes_the_shared_layout():
    """The default run and the recipes use the shared path: no recipe turns it off or picks an implementation that
    cannot take the mask, and the shipped default model loads with one that can."""
    from pathlib import Path

    import yaml
    from transformers import AutoConfig

    from spac_hf.packing import MASKED_IMPLEMENTATIONS, packing_unsupported_reason

    root = Path(__file__).resolve().parents[1]
    for path in root.glob("recipes/**/*.yaml"):
        config = yaml.safe_load(path.read_text()) or {}
        assert config.get("share_prompt", True) is True, path
        assert config.get("attn_implementation", "sdpa") in MASKED_IMPLEMENTATIONS, path
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(root / "src/spac_hf/default/model"))
    assert packing_unsupported_reason(model, torch.device("cpu"), "keep_start", True) is None
    assert SPACConfig(output_dir="unused", use_cpu=True).share_prompt is True
