"""spac_hf.methods: the one record per method that the loop, the cards, the benchmarks and the Space read."""

from types import SimpleNamespace

import pytest
from datasets import Dataset
from trl import DPOTrainer

from spac_hf import SelfPlayConfig, SPACConfig, SPACTrainer
from spac_hf.methods import METHODS, SPAC_BIBTEX, TRL_BIBTEX, get_method, method_of_run


ROW = {"prompt": "p:", "chosen": " good", "rejected": " bad", "generated": " mine"}


def test_the_methods_their_trainers_and_configs():
    assert list(METHODS) == ["dpo", "iterative_dpo", "spin", "spac"]  # baselines first: the order of every table
    assert METHODS["spac"].trainer_class is SPACTrainer and METHODS["spac"].config_class is SPACConfig
    for name in ("dpo", "iterative_dpo", "spin"):
        assert METHODS[name].trainer_class is DPOTrainer and METHODS[name].config_class is SelfPlayConfig
    assert [m.name for m in METHODS.values() if m.generates] == ["spin", "spac"]
    assert [m.name for m in METHODS.values() if not m.iterative] == ["dpo"]
    assert len({m.label for m in METHODS.values()}) == len({m.colour for m in METHODS.values()}) == len(METHODS)


def test_each_method_builds_its_training_data_from_the_part_and_the_generated_responses():
    data = Dataset.from_list([ROW])
    spin = METHODS["spin"].build_training_data(data)
    assert spin.column_names == ["prompt", "chosen", "rejected"] and spin[0]["rejected"] == " mine"
    assert METHODS["spac"].build_training_data(data)[0] == ROW  # SPAC trains on all three responses
    pairs = Dataset.from_list([{k: v for k, v in ROW.items() if k != "generated"}])
    assert METHODS["dpo"].build_training_data(pairs)[0] == pairs[0]


def test_spac_without_pessimism_does_not_generate():
    assert METHODS["spac"].needs_generation(SimpleNamespace(use_pessimism=True))
    assert not METHODS["spac"].needs_generation(SimpleNamespace(use_pessimism=False))
    assert METHODS["spin"].needs_generation(SimpleNamespace())
    assert not METHODS["iterative_dpo"].needs_generation(SimpleNamespace())


@pytest.mark.parametrize(
    "given, num_iterations, recorded",
    [("dpo", 1, "dpo"), ("dpo", 3, "iterative_dpo"), ("iterative_dpo", 1, "dpo"), ("spac", 1, "spac"),
     ("spin", 3, "spin")],
)  # fmt: skip
def test_a_loop_run_of_dpo_is_plain_or_iterative_by_its_number_of_iterations(given, num_iterations, recorded):
    assert method_of_run(given, num_iterations).name == recorded


def test_an_unknown_method_is_named_with_the_choices():
    with pytest.raises(
        ValueError, match=r"`method` must be one of \['dpo', 'iterative_dpo', 'spin', 'spac'\], got 'ppo'"
    ):
        get_method("ppo")


def test_cards_cite_spac_the_method_and_trl_once_each():
    assert METHODS["spac"].citations() == [SPAC_BIBTEX, TRL_BIBTEX]
    spin = METHODS["spin"].citations()
    assert spin[0] == SPAC_BIBTEX and spin[-1] == TRL_BIBTEX and "@article{chen2024spin" in spin[1]
    assert METHODS["spin"].tags == ["trl", "spac-hf", "spin", "self-play"]
    assert METHODS["iterative_dpo"].tags == METHODS["dpo"].tags == ["trl", "spac-hf", "dpo"]
    assert METHODS["dpo"].card_label(3).startswith("iterative [DPO") and METHODS["dpo"].card_label(1).startswith(
        "[DPO"
    )
