"""Configurations: `SelfPlayConfig` (self-play generation and the iteration loop) and `SPACConfig` (the SPAC loss).

Both extend TRL's `DPOConfig`, so every DPO and `TrainingArguments` option keeps its meaning and the recipes parse them
with `TrlParser` like any TRL script. SPIN and iterative DPO run with a `SelfPlayConfig`; SPAC with a `SPACConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

from .engine import PRECISIONS
from .generation import GENERATION_BACKENDS, check_backend
from .losses import LAM_SCALINGS, REAL_RESPONSES, SMOOTHINGS, scaled_lam, spac_option_problems


GENERATION_PRECISIONS = tuple(PRECISIONS)  # the engine's modes
ITERATION_DATA = ("split", "full")


class OptionError(ValueError):
    """Options out of their domain, every one at once: `problems` holds (option, value, what it must be), and the
    message has one line per problem, each naming the option as the config spells it."""

    def __init__(self, problems: list[tuple[str, object, str]]):
        self.problems = list(problems)
        super().__init__("\n".join(f"`{name}` must be {need}, got {value!r}." for name, value, need in self.problems))


@dataclass
class SelfPlayConfig(DPOConfig):
    r"""
    Configuration for self-play generation and the outer loop of [`run_self_play`], shared by SPAC, SPIN and
    iterative DPO so that a comparison between them runs the same loop on the same data.

    Parameters:
        > Parameters that control self-play generation (y ~ pi_t)

        max_new_tokens (`int`, *optional*, defaults to `256`):
            Maximum number of tokens generated per prompt.
        temperature (`float`, *optional*, defaults to `1.0`):
            Sampling temperature. `1.0` with `top_p=1.0` and `top_k=0` samples exactly from pi_t, which is what the
            derivation assumes; `0.0` decodes greedily.
        top_p (`float`, *optional*, defaults to `1.0`):
            Nucleus sampling threshold.
        top_k (`int`, *optional*, defaults to `0`):
            Top-k sampling; `0` disables it.
        generation_batch_size (`int`, *optional*, defaults to `16`):
            Prompts per `generate` call on each process.
        generation_backend (`str`, *optional*, defaults to `"hf"`):
            `"hf"` (transformers `generate`), `"vllm"` (GPU only, needs the `vllm` extra and a model on disk) or
            `"ctranslate2"` (the fast CPU engine, `pip install spac-hf[fast]`: pi_t is converted once per iterate
            into `output_dir/engine/`).
        generation_precision (`str`, *optional*, defaults to `"float32"`):
            With `generation_backend="ctranslate2"`: `"float32"` (greedy texts equal to transformers') or `"int8"`
            (int8 weights: faster, a measured distance from float32, see benchmarks/cost/README.md).

        > Parameters that control the iteration loop

        num_iterations (`int`, *optional*, defaults to `3`):
            Number of self-play iterations T.
        iteration_data (`str`, *optional*, defaults to `"split"`):
            `"split"`: the data is cut into T disjoint parts, one per iteration (the paper's setting). `"full"`: every
            iteration sees all the data.
        history_iterations (`int`, *optional*, defaults to `0`):
            Also train on the (prompt, chosen, generated) data of this many previous iterations. SPIN's recipe uses
            `1`.
        average_iterates (`bool`, *optional*, defaults to `False`):
            After the last iteration, also save the uniform average of the iterates' weights to
            `output_dir/iter_average` (a cheap stand-in for the uniform mixture that Algorithm 1 outputs).
    """

    # Self-play generation
    max_new_tokens: int = field(
        default=256,
        metadata={"help": "Maximum number of tokens generated per prompt."},
    )
    temperature: float = field(
        default=1.0,
        metadata={
            "help": "Sampling temperature. 1.0 with top_p=1.0 and top_k=0 samples exactly from pi_t, which is what "
            "the derivation assumes; 0.0 decodes greedily."
        },
    )
    top_p: float = field(
        default=1.0,
        metadata={"help": "Nucleus sampling threshold."},
    )
    top_k: int = field(
        default=0,
        metadata={"help": "Top-k sampling; 0 disables it."},
    )
    generation_batch_size: int = field(
        default=16,
        metadata={"help": "Prompts per `generate` call on each process."},
    )
    generation_backend: str = field(
        default="hf",
        metadata={
            "help": "`hf` (transformers `generate`), `vllm` (GPU only, needs the `vllm` extra and a model on disk) or "
            "`ctranslate2` (the fast CPU engine, `pip install spac-hf[fast]`; pi_t is converted once per iterate).",
            "choices": list(GENERATION_BACKENDS),
        },
    )
    generation_precision: str = field(
        default="float32",
        metadata={
            "help": "With generation_backend=ctranslate2: `float32` (greedy texts equal to transformers') or `int8` "
            "(faster, a measured distance from float32).",
            "choices": list(GENERATION_PRECISIONS),
        },
    )

    # Iteration loop
    num_iterations: int = field(
        default=3,
        metadata={"help": "Number of self-play iterations T."},
    )
    iteration_data: str = field(
        default="split",
        metadata={
            "help": "`split`: the data is cut into T disjoint parts, one per iteration (the paper's setting). `full`: "
            "every iteration sees all the data.",
            "choices": list(ITERATION_DATA),
        },
    )
    history_iterations: int = field(
        default=0,
        metadata={
            "help": "Also train on the (prompt, chosen, generated) data of this many previous iterations. SPIN's "
            "recipe uses 1."
        },
    )
    average_iterates: bool = field(
        default=False,
        metadata={
            "help": "After the last iteration, also save the uniform average of the iterates' weights to "
            "`output_dir/iter_average`."
        },
    )

    def __post_init__(self):
        # Checked before TrainingArguments.__post_init__, which initialises devices and distributed state, and before
        # any work: a run with an option out of its domain fails here, every problem at once, and writes nothing.
        problems = self.option_problems()
        if problems:
            raise OptionError(problems)
        # An engine that is not installed, or a setting it cannot honour, is refused here, before any work.
        check_backend(
            self.generation_backend,
            self.generation_precision,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
        )
        super().__post_init__()

    def option_problems(self) -> list[tuple[str, object, str]]:
        """(option, value, what it must be) for every option out of its domain: the loop's, the generation's and the
        trainer's own numeric options (a negative learning rate would otherwise fail after a minute of work)."""
        problems = []

        def need(ok: bool, name: str, requirement: str) -> None:
            if not ok:
                problems.append((name, getattr(self, name), requirement))

        # The trainer's options (transformers' TrainingArguments, TRL's DPOConfig) that have a domain.
        need(self.learning_rate > 0, "learning_rate", "> 0")  # `not >` style comparisons also reject NaN
        need(self.per_device_train_batch_size >= 1, "per_device_train_batch_size", ">= 1")
        need(self.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", ">= 1")
        need(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", ">= 1")
        need(self.max_steps == -1 or self.max_steps >= 1, "max_steps", ">= 1, or -1 to train num_train_epochs")
        if self.max_steps <= 0:  # the epochs decide the length of training
            need(self.num_train_epochs > 0, "num_train_epochs", "> 0")
        need(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.max_grad_norm is None or self.max_grad_norm >= 0, "max_grad_norm", ">= 0")
        need(self.logging_steps > 0, "logging_steps", "> 0")
        need(self.save_steps > 0, "save_steps", "> 0")
        need(self.eval_steps is None or self.eval_steps > 0, "eval_steps", "> 0")
        need(0 <= self.seed < 2**32, "seed", "in [0, 2**32)")
        need(self.max_length is None or self.max_length >= 1, "max_length", ">= 1")
        need(self.beta > 0, "beta", "> 0")
        # Generation and the loop.
        need(self.max_new_tokens >= 1, "max_new_tokens", ">= 1")
        need(self.temperature >= 0, "temperature", ">= 0")
        need(0 < self.top_p <= 1, "top_p", "in (0, 1]")
        need(self.top_k >= 0, "top_k", ">= 0")
        need(self.generation_batch_size >= 1, "generation_batch_size", ">= 1")
        need(self.generation_backend in GENERATION_BACKENDS, "generation_backend", f"one of {GENERATION_BACKENDS}")
        precisions = GENERATION_PRECISIONS
        need(self.generation_precision in precisions, "generation_precision", f"one of {precisions}")
        need(self.num_iterations >= 1, "num_iterations", ">= 1")
        need(self.iteration_data in ITERATION_DATA, "iteration_data", f"one of {ITERATION_DATA}")
        need(self.history_iterations >= 0, "history_iterations", ">= 0")
        return problems

    @property
    def generation_kwargs(self) -> dict:
        """Keyword arguments for `spac_hf.generation.generate_responses`."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "batch_size": self.generation_batch_size,
            "seed": self.seed,
            "precision": self.generation_precision,
        }


@dataclass
class SPACConfig(SelfPlayConfig):
    r"""
    Configuration for [`SPACTrainer`]: [`SelfPlayConfig`] (itself a TRL `DPOConfig`) plus the SPAC loss.

    The loss of one example (see `spac_hf.losses.spac_loss` and docs/algorithm.md), with
    h(y) = beta * (log pi_theta(y|x) - log pi_t(y|x)):

        sigmoid smoothing: -log sigmoid(h(y') - h(y_gen)) + lam * -log sigmoid(h(y+) - h(y-))
        linear form:       h(y_gen) - h(y')               + lam * -log sigmoid(h(y+) - h(y-))

    Presets: the defaults are the paper's practical settings; `recipes/<setup>/spac_theory.yaml` selects the settings
    the theory asks for (`spac_hf.variants.VARIANTS["spac_theory"]`: beta 1, lam 0.1 with `lam_scaling="sqrt_n"`,
    T = 10 iterations over all the data; docs/algorithm.md says when to use which).

    Parameters:
        > Parameters that control the SPAC loss

        lam (`float`, *optional*, defaults to `1.0`):
            lambda, the weight of the Bradley-Terry preference term against the pessimism term. The paper uses 1.
        lam_scaling (`str`, *optional*, defaults to `"constant"`):
            How lambda depends on the data: `"constant"` uses `lam` as is; `"sqrt_n"` uses `lam * sqrt(n)`, n the
            number of preference pairs the iteration trains on (the theory's lambda grows like sqrt(n)). The value
            used is logged as `spac/lam` and recorded with each iterate.
        pessimism_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the pessimism term. Sources differ on which term lambda weights; (`pessimism_weight=w`,
            `lam=1`) is w times the loss of (`pessimism_weight=1`, `lam=1/w`): the same objectives up to their scale.
        real_response (`str`, *optional*, defaults to `"average"`):
            Which data response plays y' ~ mu in the pessimism term: `"chosen"`, `"rejected"`, or `"average"`
            (h(y') is the mean of both, the expectation under mu).
        smoothing (`str`, *optional*, defaults to `"sigmoid"`):
            Form of the pessimism term: `"sigmoid"` (smoothed, bounded below) or `"linear"` (Algorithm 1's form).
        use_pessimism (`bool`, *optional*, defaults to `True`):
            Ablation switch: `False` drops the pessimism term, so no response is generated and the loss is `lam`
            times DPO's sigmoid loss against pi_t (iterative DPO).
        precompute_ref_log_probs (`bool`, *optional*, defaults to `True`):
            Compute the reference log-probs of all three responses once before training, so no reference model stays
            in memory while training. (TRL's DPOConfig defaults to `False`.)

        > Parameters that control the batch layout

        share_prompt (`bool`, *optional*, defaults to `True`):
            Process each prompt once for its three responses: one row [prompt, chosen, rejected, generated] per
            example, with an attention mask in which each response sees the prompt and its own earlier tokens only.
            The log-probs equal those of the padded layout. Used with `attn_implementation` `"sdpa"` or `"eager"`
            (and `"flex_attention"` on CUDA); other implementations fall back to the padded layout with a warning.
        padding_free (`bool`, *optional*, defaults to `False`):
            Concatenate the batch into one row without padding, positions restarting at every example (with
            `share_prompt`) or sequence. Same log-probs; saves the padding's compute when lengths vary, at the price
            of a dense `[length, length]` mask over the whole row for `sdpa`/`eager`. Same implementations as
            `share_prompt`. (TRL's DPOTrainer warns and ignores this option; SPACTrainer implements it.)
    """

    lam: float = field(
        default=1.0,
        metadata={
            "help": "lambda, the weight of the Bradley-Terry preference term against the pessimism term. The paper "
            "uses 1."
        },
    )
    lam_scaling: str = field(
        default="constant",
        metadata={
            "help": "How lambda depends on the data: `constant` uses `lam` as is; `sqrt_n` uses lam * sqrt(n), n the "
            "number of preference pairs the iteration trains on (the theory's lambda grows like sqrt(n)).",
            "choices": list(LAM_SCALINGS),
        },
    )
    pessimism_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the pessimism term. (pessimism_weight=w, lam=1) is w times the loss of "
            "(pessimism_weight=1, lam=1/w): weighting either term gives the same family of objectives."
        },
    )
    real_response: str = field(
        default="average",
        metadata={
            "help": "Which data response plays y' ~ mu in the pessimism term: `chosen`, `rejected`, or `average` "
            "(h(y') is the mean of both, the expectation under mu).",
            "choices": list(REAL_RESPONSES),
        },
    )
    smoothing: str = field(
        default="sigmoid",
        metadata={
            "help": "Form of the pessimism term: `sigmoid` (smoothed, bounded below) or `linear` (Algorithm 1's "
            "form).",
            "choices": list(SMOOTHINGS),
        },
    )
    use_pessimism: bool = field(
        default=True,
        metadata={
            "help": "Ablation switch: False drops the pessimism term, so no response is generated and the loss is "
            "`lam` times DPO's sigmoid loss against pi_t (iterative DPO)."
        },
    )
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={
            "help": "Compute the reference log-probs of all three responses once before training, so no reference "
            "model stays in memory while training."
        },
    )

    # Batch layout
    share_prompt: bool = field(
        default=True,
        metadata={
            "help": "Process each prompt once for its three responses: one row [prompt, chosen, rejected, generated] "
            "per example, with an attention mask in which each response sees the prompt and its own earlier tokens "
            "only. Same log-probs as the padded layout. Used with attn_implementation `sdpa` or `eager` (and "
            "`flex_attention` on CUDA); other implementations fall back to the padded layout with a warning."
        },
    )
    padding_free: bool = field(
        default=False,
        metadata={
            "help": "Concatenate the batch into one row without padding, positions restarting at every example (with "
            "`share_prompt`) or sequence. Same log-probs; saves the padding's compute when lengths vary, at the price "
            "of a dense mask over the whole row for `sdpa`/`eager`. Same implementations as `share_prompt`. (TRL's "
            "DPOTrainer ignores this option with a warning; SPACTrainer implements it.)"
        },
    )

    def option_problems(self) -> list[tuple[str, object, str]]:
        problems = super().option_problems()
        # The loss's own check names its argument `real`; here the user wrote `real_response`.
        loss_problems = spac_option_problems(
            lam=self.lam, real=self.real_response, smoothing=self.smoothing, pessimism_weight=self.pessimism_weight
        )
        problems += [("real_response" if name == "real" else name, value, need) for name, value, need in loss_problems]
        if self.lam_scaling not in LAM_SCALINGS:
            problems.append(("lam_scaling", self.lam_scaling, f"one of {LAM_SCALINGS}"))
        # The DPO options below change the loss or the log-probs in ways the SPAC loss does not define.
        loss_type = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if loss_type != ["sigmoid"]:
            problems.append(("loss_type", loss_type, "['sigmoid'] (SPACTrainer computes its own loss)"))
        if self.loss_weights not in (None, [1.0]):
            problems.append(("loss_weights", self.loss_weights, "unset (SPACTrainer computes its own loss)"))
        unsupported = {
            "ld_alpha": None,
            "f_divergence_type": "reverse_kl",
            "use_weighting": False,
            "label_smoothing": 0.0,
            "sync_ref_model": False,
        }
        for name, default in unsupported.items():
            if getattr(self, name) != default:
                # The reference must stay the iterate pi_t and the loss is SPAC's.
                problems.append((name, getattr(self, name), f"{default!r}: not supported by SPACTrainer"))
        return problems

    def effective_lam(self, num_pairs: int | None) -> float:
        """The lambda the loss uses when an iteration trains on `num_pairs` preference pairs: `lam`, or
        `lam * sqrt(num_pairs)` with `lam_scaling="sqrt_n"` (`spac_hf.losses.scaled_lam`)."""
        return scaled_lam(self.lam, self.lam_scaling, num_pairs)
