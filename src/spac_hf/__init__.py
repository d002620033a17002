"""spac-hf: SPAC (Self-Play with Adversarial Critic, arXiv 2406.04274) for TRL.

from spac_hf import SPACConfig, SPACTrainer   # where you used DPOConfig, DPOTrainer
from spac_hf import spac_loss                 # the loss, as a pure function
from spac_hf import run_self_play             # T iterations of generate, train, save (SPAC, SPIN, DPO)
"""

from importlib import import_module


__version__ = "0.1.0"

# Public name -> module. Imported on first use, so `from spac_hf.losses import spac_loss` does not pay for TRL.
_EXPORTS = {
    "spac_loss": "losses",
    "LogProbs": "losses",
    "IterateMixture": "mixture",
    "SPACConfig": "config",
    "SelfPlayConfig": "config",
    "SPACTrainer": "trainer",
    "DataCollatorForSPAC": "collator",
    "generate_responses": "generation",
    "run_self_play": "run.loop",
    "validate_preference_dataset": "data",
    "split_into_parts": "data",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spac_hf' has no attribute {name!r}")


def __dir__():
    return __all__
