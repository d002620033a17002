"""Configurations: `SelfPlayConfig` (self-play generation and the iteration loop) and `SPACConfig` (the SPAC loss).

Both extend TRL's `DPOConfig`, so every DPO and `TrainingArguments` option keeps its meaning and the recipes parse them
with `TrlParser` like any TRL script. SPIN and iterative DPO run with a `SelfPlayConfig`; SPAC with a `SPACConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

from .losses import LAM_SCALINGS, REAL_RESPONSES, SMOOTHINGS, check_spac_options, scaled_lam


GENERATION_BACKENDS = ("hf", "vllm")
ITERATION_DATA = ("split", "full")


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
            `"hf"` (transformers `generate`) or `"vllm"` (GPU only, needs the `vllm` extra and a model on disk).

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
            "help": "`hf` (transformers `generate`) or `vllm` (GPU only, needs the `vllm` extra and a model on disk).",
            "choices": list(GENERATION_BACKENDS),
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
        # Checked before TrainingArguments.__post_init__, which initialises devices and distributed state.
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {self.max_new_tokens}.")
        if not self.temperature >= 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1], got {self.top_p}.")
        if self.top_k < 0:
            raise ValueError(f"`top_k` must be >= 0, got {self.top_k}.")
        if self.generation_batch_size < 1:
            raise ValueError(f"`generation_batch_size` must be >= 1, got {self.generation_batch_size}.")
        if self.generation_backend not in GENERATION_BACKENDS:
            raise ValueError(
                f"`generation_backend` must be one of {GENERATION_BACKENDS}, got {self.generation_backend!r}."
            )
        if self.num_iterations < 1:
            raise ValueError(f"`num_iterations` must be >= 1, got {self.num_iterations}.")
        if self.iteration_data not in ITERATION_DATA:
            raise ValueError(f"`iteration_data` must be one of {ITERATION_DATA}, got {self.iteration_data!r}.")
        if self.history_iterations < 0:
            raise ValueError(f"`history_iterations` must be >= 0, got {self.history_iterations}.")
        super().__post_init__()

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

    def __post_init__(self):
        # The loss names this option `real`; the user wrote `real_response`, so the error must say that.
        if self.real_response not in REAL_RESPONSES:
            raise ValueError(f"`real_response` must be one of {REAL_RESPONSES}, got {self.real_response!r}.")
        check_spac_options(
            lam=self.lam, real=self.real_response, smoothing=self.smoothing, beta=self.beta,
            pessimism_weight=self.pessimism_weight,
        )  # fmt: skip
        if self.lam_scaling not in LAM_SCALINGS:
            raise ValueError(f"`lam_scaling` must be one of {LAM_SCALINGS}, got {self.lam_scaling!r}.")
        # The DPO options below change the loss or the log-probs in ways the SPAC loss does not define.
        loss_type = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if loss_type != ["sigmoid"] or self.loss_weights not in (None, [1.0]):
            raise ValueError(
                f"SPACTrainer computes its own loss: `loss_type` must stay ['sigmoid'] and `loss_weights` unset, got "
                f"loss_type={loss_type}, loss_weights={self.loss_weights}."
            )
        unsupported = {
            "ld_alpha": (self.ld_alpha, None),
            "f_divergence_type": (self.f_divergence_type, "reverse_kl"),
            "use_weighting": (self.use_weighting, False),
            "label_smoothing": (self.label_smoothing, 0.0),
            "sync_ref_model": (self.sync_ref_model, False),
        }
        for name, (value, default) in unsupported.items():
            if value != default:
                raise ValueError(
                    f"`{name}={value!r}` is not supported by SPACTrainer (the reference must stay the iterate pi_t "
                    f"and the loss is SPAC's); leave it at {default!r}."
                )
        super().__post_init__()

    def effective_lam(self, num_pairs: int | None) -> float:
        """The lambda the loss uses when an iteration trains on `num_pairs` preference pairs: `lam`, or
        `lam * sqrt(num_pairs)` with `lam_scaling="sqrt_n"` (`spac_hf.losses.scaled_lam`)."""
        return scaled_lam(self.lam, self.lam_scaling, num_pairs)
