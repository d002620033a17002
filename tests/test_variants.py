"""Named variants (`spac_hf.variants`): one record each, the presets and the recipe files are views of them, and
`variant_config` applies them to real configs (or refuses, naming the field)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from spac_hf.methods import METHODS
from spac_hf.presets import PAPER_PRESET, THEORY_OUTPUT, THEORY_PRESET
from spac_hf.variants import VARIANTS, get_variant, variant_config


ROOT = Path(__file__).resolve().parents[1]
# Recipe files that stand for a variant: `<method>_theory.yaml` (and the Zephyr layout's `spac/config_theory.yaml`).
VARIANT_FILES = {
    **{p: "spac_theory" for p in ROOT.glob("recipes/*/spac_theory.yaml")},
    **{p: "spac_theory" for p in ROOT.glob("src/spac_hf/default/spac_theory.yaml")},  # the embedded default's
    **{p: "spac_theory" for p in ROOT.glob("recipes/*/spac/config_theory.yaml")},
}


def test_every_variant_names_a_library_method_and_the_theory_preset_is_defined_once():
    assert set(VARIANTS) >= {
        "spac",
        "spac_theory",
        "spac_theory_no_pessimism",
        "dpo",
        "iterative_dpo",
        "spin",
        "rpo",
        "ipo",
        "sft_chosen",
    }
    assert all(v.method in METHODS and name == v.name for name, v in VARIANTS.items())
    theory = VARIANTS["spac_theory"].overrides
    assert dict(theory) == {
        "beta": 1.0,
        "lam": 0.1,
        "lam_scaling": "sqrt_n",
        "iteration_data": "full",
        "num_iterations": 10,
    }
    # spac_hf.presets is a view, not a second definition.
    assert THEORY_PRESET == dict(theory) and THEORY_OUTPUT == VARIANTS["spac_theory"].output == "mixture"
    assert PAPER_PRESET == dict(VARIANTS["spac"].overrides)
    with pytest.raises(TypeError):
        VARIANTS["spac_theory"].overrides["beta"] = 0.5  # read-only: nobody changes the preset for everyone


def test_the_ablation_differs_from_the_preset_in_the_pessimism_switch_only():
    theory, ablation = VARIANTS["spac_theory"], VARIANTS["spac_theory_no_pessimism"]
    assert dict(ablation.overrides) == {**theory.overrides, "use_pessimism": False}
    assert (ablation.method, ablation.output) == (theory.method, theory.output)


def test_unknown_variant_names_it_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown variant 'spac_theroy'; known variants: \['dpo'"):
        get_variant("spac_theroy")


def test_variant_config_applies_the_overrides_to_real_configs(make_args):
    from spac_hf import SelfPlayConfig

    theory = variant_config("spac_theory", make_args())
    assert (theory.beta, theory.lam, theory.lam_scaling, theory.iteration_data, theory.num_iterations) == (
        1.0,
        0.1,
        "sqrt_n",
        "full",
        10,
    )
    assert theory.effective_lam(400) == pytest.approx(2.0)  # 0.1 * sqrt(400)
    assert variant_config("spac_theory_no_pessimism", make_args()).use_pessimism is False

    base = make_args(SelfPlayConfig)
    rpo = variant_config("rpo", base)
    assert (rpo.loss_type, rpo.loss_weights, rpo.num_iterations) == (["sigmoid", "sft"], [1.0, 1.0], 1)
    assert variant_config("ipo", base).loss_type == ["ipo"] and variant_config("sft_chosen", base).loss_type == ["sft"]
    assert base.loss_type == ["sigmoid"] and base.loss_weights is None  # the base is not changed
    rpo.loss_weights[1] = 9.0
    assert VARIANTS["rpo"].overrides["loss_weights"] == [1.0, 1.0]  # each config gets its own copy


def test_variant_config_refuses_what_the_config_cannot_hold(make_args):
    from spac_hf import SelfPlayConfig

    with pytest.raises(
        ValueError,
        match=r"variant 'spac' sets \['lam', 'lam_scaling'\], which SelfPlayConfig has no "
        r"field for \(method 'spac' needs SPACConfig\)",
    ):
        variant_config("spac", make_args(SelfPlayConfig))
    with pytest.raises(ValueError, match="variant 'algorithm1' runs on tables only"):
        variant_config("algorithm1", make_args())


@pytest.mark.parametrize("path", sorted(VARIANT_FILES), ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_files_hold_their_variant(path):
    """Every recipe file that stands for a variant sets each of the variant's options to the record's value."""
    raw = yaml.safe_load(path.read_text())
    variant = VARIANTS[VARIANT_FILES[path]]
    assert {key: raw.get(key) for key in variant.overrides} == dict(variant.overrides)
    assert raw.get("average_iterates", False) is False  # the output is the mixture, not the average of the weights


def test_recipe_variant_files_exist():
    assert {p.relative_to(ROOT).as_posix() for p in VARIANT_FILES} >= {"src/spac_hf/default/spac_theory.yaml"}


def test_the_module_stays_light():
    code = "import sys, spac_hf.variants; print(sorted(m for m in ('torch', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_results_rows_carry_the_variant():
    from spac_hf.hub import RESULT_COLUMNS, results_dataset_rows, validate_results_rows

    (row,) = results_dataset_rows(
        {"ground_truth_reward": {"reward": 0.4}}, model="m", method="spac", variant="spac_theory", iteration=10
    )
    assert list(row) == list(RESULT_COLUMNS) and row["variant"] == "spac_theory"
    (plain,) = validate_results_rows([{"model": "m", "task": "t", "metric": "r", "value": 1}])
    assert plain["variant"] is None  # rows written before the column existed still load
    with pytest.raises(ValueError, match="unknown variant 'theory'"):
        validate_results_rows([{"model": "m", "task": "t", "metric": "r", "value": 1, "variant": "theory"}])


def test_trl_sft_term_is_the_token_average_over_the_batch(tiny_model_dir, tokenizer, make_args):
    """What the RPO and SFT-on-chosen descriptions state: TRL's `sft` loss is the mean NLL over all chosen tokens of
    the batch, so a pair's weight is its length (not 1 per pair, as a per-sequence mean would give)."""
    from datasets import Dataset
    from trl import DPOTrainer

    from spac_hf import SelfPlayConfig

    from helpers import preference_rows

    rows = preference_rows(8)
    args = variant_config("sft_chosen", make_args(SelfPlayConfig))
    trainer = DPOTrainer(tiny_model_dir, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.model.eval()

    def loss_and_tokens(indices):
        inputs = trainer.data_collator([trainer.train_dataset[i] for i in indices])
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, inputs)
        chosen_tokens = inputs["completion_mask"][: len(indices), 1:].sum()  # the batch is [chosen..., rejected...]
        return float(loss), int(chosen_tokens)

    lengths = {i: loss_and_tokens([i])[1] for i in range(8)}
    a, b = next((i, j) for i in range(8) for j in range(8) if lengths[i] != lengths[j])
    (loss_a, n_a), (loss_b, n_b), (loss_ab, _) = loss_and_tokens([a]), loss_and_tokens([b]), loss_and_tokens([a, b])
    assert loss_ab == pytest.approx((n_a * loss_a + n_b * loss_b) / (n_a + n_b), rel=1e-5)
    assert abs(loss_ab - (loss_a + loss_b) / 2) > 1e-4  # a per-sequence mean would differ
    assert "token-averaged" in VARIANTS["rpo"].description and "token-averaged" in VARIANTS["sft_chosen"].description
