"""The methods spac-hf trains and compares: one record each, and nothing about a method anywhere else.

The loop (`run_self_play`), the model cards, the results datasets, the benchmarks and the Space's checked copy
(`space/results.py`, tests/test_space.py) all read `METHODS`. Adding a method means adding one `Method` below (and,
when it needs a loss of its own, its trainer).

Plain DPO and iterative DPO train with the same trainer on the same kind of data; what differs is the schedule: plain
DPO is one pass over all the pairs (`num_iterations=1`), iterative DPO is T iterations, each on its own part and each
starting from (and referenced to) the previous iterate. They are two records so that a results table, a plot or a
benchmark never has to guess which one a `"dpo"` row was. `run_self_play(method="dpo")` keeps its meaning ("DPO in the
loop, as configured"); `method_of_run` names the record such a run is.

This module imports neither torch nor TRL: the Space's check and the benchmarks read it without loading a trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any


SPAC_BIBTEX = """\
@article{ji2024spac,
  title   = {{Self-Play with Adversarial Critic: Provable and Scalable Offline Alignment for Language Models}},
  author  = {Ji, Xiang and Kulkarni, Sanjeev and Wang, Mengdi and Xie, Tengyang},
  journal = {arXiv preprint arXiv:2406.04274},
  year    = {2024},
  url     = {https://arxiv.org/abs/2406.04274}
}"""

_SPIN_BIBTEX = """\
@article{chen2024spin,
  title   = {{Self-Play Fine-Tuning Converts Weak Language Models to Strong Language Models}},
  author  = {Chen, Zixiang and Deng, Yihe and Yuan, Huizhuo and Ji, Kaixuan and Gu, Quanquan},
  journal = {arXiv preprint arXiv:2401.01335},
  year    = {2024},
  url     = {https://arxiv.org/abs/2401.01335}
}"""

_DPO_BIBTEX = """\
@inproceedings{rafailov2023dpo,
  title     = {{Direct Preference Optimization: Your Language Model is Secretly a Reward Model}},
  author    = {Rafailov, Rafael and Sharma, Archit and Mitchell, Eric and Manning, Christopher D. and
               Ermon, Stefano and Finn, Chelsea},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023},
  url       = {https://arxiv.org/abs/2305.18290}
}"""

TRL_BIBTEX = """\
@software{vonwerra2020trl,
  title   = {{TRL: Transformers Reinforcement Learning}},
  author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and
             Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallou{\\'e}dec, Quentin},
  license = {Apache-2.0},
  url     = {https://github.com/huggingface/trl},
  year    = {2020}
}"""


@dataclass(frozen=True)
class Paper:
    key: str  # "spac", "spin", "dpo": the Hub tag of its models, and the recipe script (`spac_hf.scripts.<key>`)
    title: str  # "SPAC (Self-Play with Adversarial Critic)": how a card names the method and links the paper
    full_title: str  # the paper's own title, as TRL's card template shows it
    arxiv_id: str
    bibtex: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/papers/{self.arxiv_id}"


SPAC_PAPER = Paper(
    "spac",
    "SPAC (Self-Play with Adversarial Critic)",
    "Self-Play with Adversarial Critic: Provable and Scalable Offline Alignment for Language Models",
    "2406.04274",
    SPAC_BIBTEX,
)
SPIN_PAPER = Paper(
    "spin",
    "SPIN (Self-Play fIne-tuNing)",
    "Self-Play Fine-Tuning Converts Weak Language Models to Strong Language Models",
    "2401.01335",
    _SPIN_BIBTEX,
)
DPO_PAPER = Paper(
    "dpo",
    "DPO (Direct Preference Optimization)",
    "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    "2305.18290",
    _DPO_BIBTEX,
)

# What every card shows, then what the self-play methods and SPAC add: the options that change the iterates.
_SHARED_HYPERPARAMETERS = (
    "beta", "learning_rate", "num_iterations", "iteration_data", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_length", "seed",
)  # fmt: skip
_GENERATION_HYPERPARAMETERS = ("max_new_tokens", "temperature", "top_p", "history_iterations")
_SPAC_HYPERPARAMETERS = ("lam", "lam_scaling", "pessimism_weight", "real_response", "smoothing", "use_pessimism")


def _generated_as_rejected(data: Any) -> Any:
    """SPIN is DPO with the data's chosen response against pi_t's own: `generated` becomes `rejected`."""
    return data.remove_columns("rejected").rename_column("generated", "rejected")


def _as_is(data: Any) -> Any:
    """DPO trains on (prompt, chosen, rejected), SPAC on (prompt, chosen, rejected, generated), as they are."""
    return data


@dataclass(frozen=True)
class Method:
    """One method: how the loop trains it, how cards and tables name it, and which paper to cite."""

    name: str  # `run_self_play(method=...)`, the `method` column of results rows, folder names in the benchmarks
    label: str  # what tables, plots and the Space call it
    colour: str  # its line in every plot (the benchmarks' and the Space's)
    paper: Paper
    trainer: str  # "module:Class" (imported on use, so this module stays light)
    config: str  # "module:Class": the config the trainer needs
    generates: bool  # whether an iteration samples y ~ pi_t (SPAC: unless `use_pessimism=False`)
    iterative: bool  # T iterations, each from the previous iterate; False: one pass over all the data
    build_training_data: Callable[[Any], Any]  # (the part, with `generated` if it generates) -> its trainer's data
    card_hyperparameters: tuple[str, ...]  # config options shown on the card, in this order

    @property
    def trainer_class(self) -> type:
        return _load(self.trainer)

    @property
    def config_class(self) -> type:
        return _load(self.config)

    @property
    def tags(self) -> list[str]:
        """Hub tags of its models; `SPACTrainer._tag_names` and the loop's cards both use them."""
        return ["trl", "spac-hf", self.paper.key] + (["self-play"] if self.generates else [])

    def needs_generation(self, args: Any) -> bool:
        """Whether a run with `args` generates: SPAC's pessimism ablation drops the generated response."""
        return self.generates and getattr(args, "use_pessimism", True)

    def card_label(self, num_iterations: int) -> str:
        """How a card names what trained the model, linked to the paper: `iterative [DPO (...)](...)` for T > 1."""
        link = f"[{self.paper.title}]({self.paper.url})"
        return f"iterative {link}" if self.paper.key == "dpo" and num_iterations > 1 else link

    def citations(self) -> list[str]:
        """BibTeX to cite on its cards: SPAC always (spac-hf implements it), the method's own paper, TRL."""
        return list(dict.fromkeys([SPAC_BIBTEX, self.paper.bibtex, TRL_BIBTEX]))


def _load(reference: str) -> type:
    module, _, name = reference.partition(":")
    return getattr(import_module(module), name)


_DPO_TRAINER, _SELF_PLAY_CONFIG = "trl:DPOTrainer", "spac_hf.config:SelfPlayConfig"

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="dpo",
            label="DPO (one pass, all pairs)",
            colour="#444444",
            paper=DPO_PAPER,
            trainer=_DPO_TRAINER,
            config=_SELF_PLAY_CONFIG,
            generates=False,
            iterative=False,
            build_training_data=_as_is,
            card_hyperparameters=_SHARED_HYPERPARAMETERS,
        ),
        Method(
            name="iterative_dpo",
            label="iterative DPO",
            colour="#1f77b4",
            paper=DPO_PAPER,
            trainer=_DPO_TRAINER,
            config=_SELF_PLAY_CONFIG,
            generates=False,
            iterative=True,
            build_training_data=_as_is,
            card_hyperparameters=_SHARED_HYPERPARAMETERS,
        ),
        Method(
            name="spin",
            label="SPIN",
            colour="#2ca02c",
            paper=SPIN_PAPER,
            trainer=_DPO_TRAINER,
            config=_SELF_PLAY_CONFIG,
            generates=True,
            iterative=True,
            build_training_data=_generated_as_rejected,
            card_hyperparameters=_SHARED_HYPERPARAMETERS + _GENERATION_HYPERPARAMETERS,
        ),
        Method(
            name="spac",
            label="SPAC",
            colour="#d62728",
            paper=SPAC_PAPER,
            trainer="spac_hf.trainer:SPACTrainer",
            config="spac_hf.config:SPACConfig",
            generates=True,
            iterative=True,
            build_training_data=_as_is,
            card_hyperparameters=_SHARED_HYPERPARAMETERS + _GENERATION_HYPERPARAMETERS + _SPAC_HYPERPARAMETERS,
        ),
    )
}
"""Baselines first, SPAC last: the order of every table, plot and legend."""


def get_method(name: str) -> Method:
    """The record of `name`, or a `ValueError` listing the methods."""
    if name not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}, got {name!r}.")
    return METHODS[name]


def method_of_run(name: str, num_iterations: int) -> Method:
    """The record a loop run of `name` with `num_iterations` iterations is: DPO for one iteration is plain DPO, for
    more it is iterative DPO (`"dpo"` and `"iterative_dpo"` are both accepted); other methods are themselves."""
    method = get_method(name)
    if method.paper.key == "dpo":
        return METHODS["iterative_dpo" if num_iterations > 1 else "dpo"]
    return method
