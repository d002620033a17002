"""The recipes' command line: the embedded default as the base config, a short grouped `--help` with the values the
run will really use, "did you mean" for a misspelt option, paths of the shipped YAMLs that work from any directory,
and one-line errors unless `--debug`.

    spac-hf train --method spac                     # the embedded default, spac_hf/default/spac.yaml
    spac-hf train --method spac --num_iterations 2  # the same, with one override: the default is the base config
    spac-hf train --method spac --config my.yaml --lam 0.5
    spac-hf train --method spac --help              # SPAC's own options first, then the loop, data, model, training
    spac-hf train --method spac --help-all          # every option of TRL's DPOConfig and transformers' Trainer

Parsing itself is TRL's (`TrlParser.parse_args_and_config`); this module only decides what it is given.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


HELP_ALL = "--help-all"
DEBUG = "--debug"

# The training options a user of these recipes changes; the other ~150 of transformers' Trainer are behind --help-all.
TRAINING_OPTIONS = (
    "output_dir",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "seed",
    "bf16",
    "use_cpu",
    "activation_checkpointing",
    "logging_steps",
    "save_steps",
    "report_to",
    "push_to_hub",
    "hub_model_id",
)
DPO_OPTIONS = ("beta", "loss_type", "label_smoothing", "max_length", "precompute_ref_log_probs")
MODEL_OPTIONS = (
    "model_name_or_path",
    "dtype",
    "attn_implementation",
    "use_peft",
    "lora_r",
    "lora_alpha",
    "load_in_4bit",
)
DATA_OPTIONS = ("dataset_name", "dataset_config", "dataset_train_split", "dataset_test_split")
# Options whose value is a path; a YAML may write them relative to its own folder or one above it.
PATH_OPTIONS = ("model_name_or_path", "dataset_name")


class RecipeError(ValueError):
    """A mistake in what the user asked for: shown without a traceback, one line per problem."""


def _one_line_errors(sources: dict[str, str]) -> Callable[[str], None]:
    """argparse's `error`: the problem in one line, with where the value came from, instead of the whole usage
    (`--help` shows the usage)."""

    def error(message: str) -> None:
        match = re.match(r"argument --([\w-]+)", message)
        source = sources.get(match.group(1).replace("-", "_")) if match else None
        raise RecipeError(f"{message} (from {source})" if source else message)

    return error


def option_sources(argv: Sequence[str], config_path: str) -> dict[str, str]:
    """Where each option set by the user got its value: "the command line" or the YAML file (TRL's parser reads the
    YAML as defaults, so an option given on both comes from the command line)."""
    import yaml

    sources = {}
    try:
        loaded = yaml.safe_load(Path(config_path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        loaded = {}
    for key in loaded if isinstance(loaded, dict) else {}:
        sources[str(key)] = config_path
    for token in argv:
        if token.startswith("--") and token != "--config" and not token.startswith("--config="):
            sources[token[2:].split("=", 1)[0]] = "the command line"
    return sources


def _option_error(err: Exception, argv: Sequence[str], config_path: str) -> RecipeError:
    """An `OptionError` as one line per option, each naming it as typed (`--learning_rate`) and where its value came
    from; any other error of the config classes, prefixed with the YAML it was read with."""
    from spac_hf.config import OptionError

    if not isinstance(err, OptionError):
        return RecipeError(f"{config_path}: {err}")
    sources = option_sources(argv, config_path)
    lines = [
        f"--{name} {value!r} ({'from ' + sources[name] if name in sources else 'the default'}): must be {need}"
        for name, value, need in err.problems
    ]
    return RecipeError("\n".join(lines))


def _own_fields(cls: type, base: type | None) -> list[dataclasses.Field]:
    inherited = {f.name for f in dataclasses.fields(base)} if base is not None else set()
    return [f for f in dataclasses.fields(cls) if f.name not in inherited and f.init]


def option_groups(method_label: str, config_class: type, script_class: type) -> list[tuple[str, list[str]]]:
    """(title, option names) in the order `--help` shows them: the method's own options first."""
    from trl import DPOConfig

    from spac_hf.config import SelfPlayConfig

    own = [f.name for f in _own_fields(config_class, SelfPlayConfig)] if config_class is not SelfPlayConfig else []
    groups = []
    if own:
        groups.append((f"{method_label}: its own options", own))
    groups.append(("The DPO part of the loss (TRL's DPOConfig)", list(DPO_OPTIONS)))
    groups.append(("Self-play loop and generation", [f.name for f in _own_fields(SelfPlayConfig, DPOConfig)]))
    script_own = [f.name for f in _own_fields(script_class, script_class.__mro__[1])]
    groups.append(("Data and the true-reward evaluation", [*DATA_OPTIONS, *script_own]))
    groups.append(("Model", list(MODEL_OPTIONS)))
    groups.append(("Training (transformers' Trainer)", list(TRAINING_OPTIONS)))
    return groups


def _help_of(field: dataclasses.Field) -> str:
    text = " ".join(str(field.metadata.get("help", "")).split())
    return text if len(text) <= 200 else text[:197] + "..."


def format_help(
    prog: str,
    method_label: str,
    default_config: Path,
    config_path: str,
    values: dict[str, Any],
    fields: dict[str, dataclasses.Field],
    groups: list[tuple[str, list[str]]],
) -> str:
    """The short help: usage, then each group's options with the value this run would use and their help."""
    lines = [
        f"usage: {prog} [--config YAML] [--OPTION VALUE ...] [--debug] [--help-all]",
        "",
        f"{method_label} on the self-play loop. The base config is {config_path}"
        + (" (the embedded default)" if Path(config_path).resolve() == Path(default_config).resolve() else "")
        + "; any option below overrides it. Values shown are the ones this run would use.",
    ]
    for title, names in groups:
        names = [n for n in names if n in fields]
        if not names:
            continue
        lines += ["", f"{title}:"]
        for name in names:
            lines.append(f"  --{name} {values.get(name)!r}")
            if _help_of(fields[name]):
                lines.append(f"      {_help_of(fields[name])}")
    lines += [
        "",
        f"{HELP_ALL}: every option (TRL's DPOConfig, transformers' TrainingArguments, PEFT, quantization).",
        f"{DEBUG}: show the full traceback of an error.",
    ]
    return "\n".join(lines) + "\n"


def known_options(parser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def check_options(parser, argv: Sequence[str]) -> None:
    """Every `--option` on the command line exists; a misspelt one gets the nearest real options suggested."""
    known = known_options(parser) | {"--config"}
    for token in argv:
        if not token.startswith("--"):
            continue
        option = token.split("=", 1)[0]
        if option not in known:
            close = difflib.get_close_matches(option, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else f" (`{HELP_ALL}` lists every option)."
            raise RecipeError(f"unknown option {option}{hint}")


def config_of(argv: list[str]) -> str | None:
    for index, token in enumerate(argv):
        if token == "--config":
            if index + 1 >= len(argv):
                raise RecipeError("--config needs a YAML file")
            return argv[index + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return None


def with_base_config(argv: list[str], default_config: Path) -> tuple[list[str], str]:
    """`argv` with a `--config`: the user's, or the embedded default as the base any override changes."""
    config = config_of(argv)
    if config is None:
        return ["--config", str(default_config), *argv], str(default_config)
    if not Path(config).is_file():
        raise RecipeError(f"--config {config}: no such file (relative paths start at {Path.cwd()})")
    argv = [a for a in argv if not a.startswith("--config=")]  # TRL reads `--config PATH` only
    if "--config" not in argv:
        argv = ["--config", config, *argv]
    return argv, config


def resolve_paths(config_path: str, *dataclass_objects) -> None:
    """A relative model or data path that does not exist from the current directory, but does from the YAML's folder
    or a folder above it, is made absolute: the shipped YAMLs (`spac_hf/default/spac.yaml` writes
    `spac_hf/default/model`, `recipes/smollm2/spac.yaml` writes `results/...`) then run from any directory."""
    folders = Path(config_path).resolve().parents
    for obj in dataclass_objects:
        for name in PATH_OPTIONS:
            value = getattr(obj, name, None)
            if not isinstance(value, str) or not value or os.path.isabs(value) or Path(value).exists():
                continue
            found = next((folder / value for folder in folders if (folder / value).exists()), None)
            if found is not None:
                setattr(obj, name, str(found))


def parse(parser, argv: list[str], default_config: Path, method_label: str, prog: str):
    """Parse `argv` as the recipes do (see the module docstring); prints the help and exits for -h/--help(-all)."""
    argv = list(argv)
    if HELP_ALL in argv:
        parser.print_help()
        raise SystemExit(0)
    wants_help = any(a in ("-h", "--help") for a in argv)
    argv = [a for a in argv if a not in ("-h", "--help")]
    check_options(parser, argv)
    user_argv = argv
    argv, config_path = with_base_config(argv, default_config)
    parser.error = _one_line_errors(option_sources(user_argv, config_path))  # a bad choice or type: one line
    try:
        parsed = parser.parse_args_and_config(args=argv)
    except RecipeError:
        raise
    except ValueError as err:  # an option out of its domain, TRL's "unknown arguments from config file", ...
        raise _option_error(err, user_argv, config_path) from err
    resolve_paths(config_path, *parsed)
    if wants_help:
        values = {f.name: getattr(obj, f.name) for obj in parsed for f in dataclasses.fields(obj)}
        fields = {f.name: f for obj in parsed for f in dataclasses.fields(obj)}
        groups = option_groups(method_label, type(parsed[1]), type(parsed[0]))
        sys.stdout.write(format_help(prog, method_label, default_config, config_path, values, fields, groups))
        raise SystemExit(0)
    return parsed


def run_with_clean_errors(function: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> Any:
    """Run `function(argv)`; an error becomes one line on stderr and exit status 1, unless `--debug` is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG in argv
    argv = [a for a in argv if a != DEBUG]
    try:
        return function(argv)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        if debug:
            raise
        if isinstance(err, RecipeError):  # the user's mistakes, one line each
            lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
            sys.stderr.write("".join(f"error: {line}\n" for line in lines))
            raise SystemExit(1) from None
        message = " ".join(str(err).split()) or type(err).__name__
        sys.stderr.write(f"error: {type(err).__name__}: {message} ({DEBUG} shows the traceback)\n")
        raise SystemExit(1) from None
