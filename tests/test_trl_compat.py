"""Guard: SPACTrainer overrides private DPOTrainer methods of TRL 1.16. If TRL moves them, fail here, loudly.

When this fails after a TRL upgrade, read the new `trl/trainer/dpo_trainer.py` and port `spac_hf/trainer.py`; do not
just update the expected signatures.
"""

import inspect

import pytest
import trl
from packaging.version import Version
from trl import DPOTrainer

from spac_hf import SPACTrainer


# Method -> parameters (after self) as TRL 1.16 defines them and as SPACTrainer overrides them.
OVERRIDDEN = {
    "_prepare_dataset": ["dataset", "processing_class", "args", "dataset_name"],
    "_set_signature_columns_if_needed": [],
    "_precompute_ref_logps": ["dataset", "name", "batch_size"],
    "compute_ref_log_probs": ["model", "inputs"],
    "_compute_loss": ["model", "inputs", "return_outputs"],
    "evaluate": ["eval_dataset", "ignore_keys", "metric_key_prefix"],
}

# Attributes of a constructed DPOTrainer that SPACTrainer reads or sets.
ATTRIBUTES = [
    "_metrics",
    "_total_train_tokens",
    "_tp_size",
    "aux_loss_enabled",
    "router_aux_loss_coef",
    "precompute_ref_logps",
    "_precompute_engine",
    "_tokenizer",
    "ref_model",
    "beta",
]


def parameters(function):
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_trl_version_is_the_pinned_minor():
    assert Version(trl.__version__).release[:2] == (1, 16), (
        f"spac-hf is pinned to trl 1.16.x, found {trl.__version__}: see this file's docstring."
    )


@pytest.mark.parametrize("method", sorted(OVERRIDDEN))
def test_overridden_methods_keep_their_signature(method):
    assert method in vars(DPOTrainer), f"DPOTrainer.{method} no longer exists"
    assert parameters(getattr(DPOTrainer, method)) == OVERRIDDEN[method], f"DPOTrainer.{method} changed its signature"
    assert parameters(getattr(SPACTrainer, method)) == OVERRIDDEN[method]
    assert method in vars(SPACTrainer)


def test_init_signature_is_dpotrainers():
    assert parameters(SPACTrainer.__init__) == parameters(DPOTrainer.__init__)


def test_dpotrainer_init_still_calls_the_hooks_we_override():
    source = inspect.getsource(DPOTrainer.__init__)
    for call in ("self._prepare_dataset(", "self._precompute_ref_logps(", "add_fused_lm_head("):
        assert call in source, f"DPOTrainer.__init__ no longer calls {call}"
    assert "def _compute_loss" in inspect.getsource(DPOTrainer)
    assert "self._compute_loss(" in inspect.getsource(DPOTrainer.compute_loss)


def test_fused_lm_head_outputs_we_read():
    source = inspect.getsource(DPOTrainer.__init__)
    for field in ("log_probs", "entropy", "mean_logits", "is_top1"):
        assert f'"{field}"' in source


def test_attributes_we_use_exist(tiny_model_dir, tokenizer, make_args):
    from datasets import Dataset

    from helpers import preference_rows

    trainer = SPACTrainer(
        tiny_model_dir,
        args=make_args(use_pessimism=False),
        train_dataset=Dataset.from_list(preference_rows(2)),
        processing_class=tokenizer,
    )
    missing = [name for name in ATTRIBUTES if not hasattr(trainer, name)]
    assert not missing, f"DPOTrainer no longer sets {missing}"
