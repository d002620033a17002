"""SPACTrainer: equalities against TRL's DPOTrainer, training, generation, and errors on bad input."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import DPOConfig, DPOTrainer

from spac_hf import SPACTrainer
from spac_hf.data import DatasetValidationError
from spac_hf.generation import generate_responses

from helpers import batch_loss, perturb, preference_rows, rows_with_generated


def dpo_args(make_args, **overrides):
    from helpers import CPU_TRAINING

    options = {k: v for k, v in CPU_TRAINING.items() if k != "max_new_tokens"}
    return DPOConfig(**{**options, "output_dir": make_args().output_dir + "-dpo", **overrides})


@pytest.mark.parametrize("precompute", [True, False])
def test_lambda_zero_real_chosen_equals_dpo_on_chosen_vs_generated(tiny_model_dir, tokenizer, make_args, precompute):
    rows = rows_with_generated()
    spac = SPACTrainer(
        tiny_model_dir,
        args=make_args(lam=0.0, real_response="chosen", precompute_ref_log_probs=precompute),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    spin_rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["generated"]} for r in rows]
    dpo = DPOTrainer(
        tiny_model_dir,
        args=dpo_args(make_args, precompute_ref_log_probs=precompute),
        train_dataset=Dataset.from_list(spin_rows),
        processing_class=tokenizer,
    )
    perturb(spac.model)
    perturb(dpo.model)
    spac_loss_value, spac_grads = batch_loss(spac)
    dpo_loss_value, dpo_grads = batch_loss(dpo)
    assert abs(spac_loss_value.item() - math.log(2)) > 1e-3  # the comparison is not at the trivial point
    torch.testing.assert_close(spac_loss_value, dpo_loss_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(spac_grads, dpo_grads, rtol=1e-4, atol=1e-6)
    # DPO's "rejected" is SPAC's "generated": the logged rewards agree too.
    assert spac._metrics["train"]["rewards/chosen"][-1] == pytest.approx(
        dpo._metrics["train"]["rewards/chosen"][-1], abs=1e-6
    )
    assert spac._metrics["train"]["rewards/generated"][-1] == pytest.approx(
        dpo._metrics["train"]["rewards/rejected"][-1], abs=1e-6
    )


def test_without_pessimism_equals_dpo_on_chosen_vs_rejected(tiny_model_dir, tokenizer, make_args):
    rows = preference_rows(8)
    spac = SPACTrainer(
        tiny_model_dir,
        args=make_args(use_pessimism=False),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    assert "generated" not in spac.train_dataset.column_names  # nothing was generated
    dpo = DPOTrainer(
        tiny_model_dir,
        args=dpo_args(make_args, precompute_ref_log_probs=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    perturb(spac.model, seed=1)
    perturb(dpo.model, seed=1)
    spac_loss_value, spac_grads = batch_loss(spac)
    dpo_loss_value, dpo_grads = batch_loss(dpo)
    torch.testing.assert_close(spac_loss_value, dpo_loss_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(spac_grads, dpo_grads, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("conversational", [False, True])
def test_loss_at_the_reference_is_one_plus_lambda_log_two(tiny_model_dir, tokenizer, make_args, conversational):
    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(lam=0.7),
        train_dataset=Dataset.from_list(rows_with_generated(conversational=conversational)),
        processing_class=tokenizer,
    )
    loss, _ = batch_loss(trainer)
    assert loss.item() == pytest.approx(1.7 * math.log(2), abs=1e-6)


def test_precomputed_and_on_the_fly_reference_agree(tiny_model_dir, tokenizer, make_args):
    losses = []
    for precompute in (True, False):
        trainer = SPACTrainer(
            tiny_model_dir,
            args=make_args(precompute_ref_log_probs=precompute, real_response="average"),
            train_dataset=Dataset.from_list(rows_with_generated()),
            processing_class=tokenizer,
        )
        assert (trainer.ref_model is None) == precompute  # no reference model in memory when precomputed
        perturb(trainer.model, seed=2)
        losses.append(batch_loss(trainer)[0])
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_training_lowers_the_loss_and_the_saved_model_reloads(tiny_model_dir, tokenizer, make_args, tmp_path):
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    dataset = Dataset.from_list(rows_with_generated(8))
    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(learning_rate=5e-3, num_train_epochs=12, per_device_train_batch_size=8, beta=0.5),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[0] == pytest.approx(2 * math.log(2), abs=1e-5)  # step 1 starts at the reference
    assert losses[-1] < 0.6 * losses[0]
    logged = trainer.state.log_history[-2]
    for key in (
        "rewards/chosen",
        "rewards/generated",
        "spac/pessimism_loss",
        "spac/preference_loss",
        "rewards/real_generated_margins",
        "logps/generated",
        "entropy",
    ):
        assert key in logged
    assert logged["rewards/real_generated_margins"] > 0  # the critic separates data from self-play

    trainer.save_model(str(tmp_path / "saved"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    for (name, saved), trained in zip(reloaded.state_dict().items(), trainer.model.state_dict().values()):
        torch.testing.assert_close(saved, trained, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), initial.state_dict().values()))


def test_generates_the_missing_column_from_the_model_as_given(tiny_model_dir, tokenizer, make_args, model):
    rows = preference_rows(6)
    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(temperature=0.0, max_new_tokens=6),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    generated = trainer.train_dataset["generated"]
    expected = generate_responses(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=6, temperature=0.0)
    assert generated == expected  # greedy: the same as generating directly, in the rows' order
    assert all(len(ids) > 0 for ids in trainer.train_dataset["generated_ids"])
    assert "ref_generated_logps" in trainer.train_dataset.column_names


def test_uses_a_given_generated_column(tiny_model_dir, tokenizer, make_args):
    rows = rows_with_generated(6, conversational=True)
    trainer = SPACTrainer(
        tiny_model_dir, args=make_args(), train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    assert trainer.train_dataset["generated"] == [r["generated"] for r in rows]


def test_eval_dataset_gets_generated_and_evaluates(tiny_model_dir, tokenizer, make_args):
    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(precompute_ref_log_probs=False, eval_strategy="no"),
        train_dataset=Dataset.from_list(rows_with_generated(4)),
        processing_class=tokenizer,
    )
    metrics = trainer.evaluate(Dataset.from_list(preference_rows(4, seed=3)))
    assert metrics["eval_loss"] == pytest.approx(2 * math.log(2), abs=1e-5)
    assert "eval_rewards/generated" in metrics


def _drop(column):
    return lambda rows: [{k: v for k, v in r.items() if k != column} for r in rows]


def _set(index, column, value):
    def edit(rows):
        rows[index][column] = value
        return rows

    return edit


def _set_all(column, value):
    return lambda rows: [{**r, column: value} for r in rows]


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop("rejected"), r"missing column\(s\) \['rejected'\]"),
        (_set(2, "prompt", "   "), r"column `prompt` .* row 2: is empty"),
        (_set(1, "chosen", ""), r"column `chosen` .* row 1: is empty"),
        # Arrow stores one type per column: a wrong type arrives as a whole column of it.
        (
            _set_all("generated", [{"role": "assistant", "content": "hi"}]),
            r"column `generated` .* row 0: expected a string, got list",
        ),
        (_set_all("rejected", 7), r"column `rejected` .* row 0: expected a string, got int"),
    ],
)
def test_bad_data_is_named_before_the_model_is_loaded(make_args, edit, message):
    rows = edit(rows_with_generated(5))
    with pytest.raises(DatasetValidationError, match=message):
        # The model path does not exist: the data error must come first.
        SPACTrainer("/nonexistent/model", args=make_args(), train_dataset=Dataset.from_list(rows))


def test_prompt_longer_than_max_length_is_an_error_not_a_silent_drop(tiny_model_dir, tokenizer, make_args):
    rows = rows_with_generated(4)
    rows[2]["prompt"] = " ".join(["river"] * 80) + ":"
    with pytest.raises(DatasetValidationError, match=r"row 2 \(\d+ tokens\).*drop_long_prompts"):
        SPACTrainer(
            tiny_model_dir, args=make_args(), train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )


def test_a_prompt_of_max_length_tokens_is_refused_one_token_shorter_is_kept():
    from spac_hf.data import check_prompt_lengths

    dataset = Dataset.from_dict({"prompt_ids": [[5] * 7, [5] * 8]})
    check_prompt_lengths(dataset.select([0]), max_length=8)  # 7 tokens leave room for one response token
    with pytest.raises(DatasetValidationError, match=r"1 prompt\(s\).*row 1 \(8 tokens\)"):
        check_prompt_lengths(dataset, max_length=8)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lam": -1.0}, "`lam`"),
        ({"real_response": "best"}, "`real_response`"),
        ({"smoothing": "hinge"}, "`smoothing`"),
        ({"loss_type": ["ipo"]}, "loss_type"),
        ({"sync_ref_model": True}, "sync_ref_model"),
        ({"temperature": -1.0}, "`temperature`"),
        ({"num_iterations": 0}, "`num_iterations`"),
    ],
)
def test_bad_options_are_named(make_args, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_args(**overrides)


def test_needs_a_spac_config(tiny_model_dir, make_args):
    with pytest.raises(TypeError, match="SPACConfig"):
        SPACTrainer(tiny_model_dir, args=dpo_args(make_args), train_dataset=Dataset.from_list(preference_rows(2)))


def test_implicit_prompt_is_extracted_and_an_empty_one_is_named(tiny_model_dir, tokenizer, make_args):
    rows = [
        {"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows_with_generated(6)
    ]
    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(use_pessimism=False),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    assert trainer.train_dataset[0]["prompt"] == rows[0]["chosen"][: len(trainer.train_dataset[0]["prompt"])]
    rows[4] = {"chosen": "x yes", "rejected": "no"}  # nothing in common: no prompt
    with pytest.raises(DatasetValidationError, match="row 4: no `prompt` column"):
        SPACTrainer("/nonexistent/model", args=make_args(), train_dataset=Dataset.from_list(rows))
