"""`spac-hf`, the command installed with the package: train, compare and browse from any directory.

    spac-hf train --method spac                         # the embedded default (recipes/default/spac.yaml)
    spac-hf train --method spac --num_iterations 2      # ... with an override: the default is the base config
    spac-hf train --method dpo --config my.yaml         # any YAML; `spac-hf train --method spac --help` lists options
    spac-hf compare                                     # SPAC, iterative DPO and SPIN side by side: table and plot
    spac-hf space                                       # the Gradio app on the runs' results and iterates

`train` is `recipes/<method>.py`, `compare` is `recipes/compare.py`, `space` is `space/app.py`: the recipes, the
embedded default's model and data, and the Space live in the spac-hf repository, next to `src/`, so these commands
need the package installed from a clone (`pip install -e .`). The paths in the shipped YAMLs are found from any
directory; outputs go under the current one. Errors are one line; `--debug` shows the traceback. Several processes:
`accelerate launch -m spac_hf.cli train --method spac ...`.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


COMMANDS = ("train", "compare", "space")
TRAIN_METHODS = ("spac", "dpo", "spin")  # the recipe scripts; `dpo` over T > 1 iterations is iterative DPO


def repository_root() -> Path:
    """The clone this package is installed from (editable install), where the recipes and the Space are."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "recipes" / "self_play.py").is_file():
        raise SystemExit(
            "error: spac-hf's recipes and Space were not found next to this installation "
            f"({root}); install the package from a clone: `git clone <spac-hf> && pip install -e ./spac-hf`."
        )
    return root


def _pop_method(argv: list[str]) -> tuple[str, list[str]]:
    for index, token in enumerate(argv):
        if token == "--method" and index + 1 < len(argv):
            return argv[index + 1], argv[:index] + argv[index + 2 :]
        if token.startswith("--method="):
            return token.split("=", 1)[1], argv[:index] + argv[index + 1 :]
    raise SystemExit(f"error: spac-hf train needs --method, one of {', '.join(TRAIN_METHODS)}")


def _unknown(what: str, value: str, choices) -> SystemExit:
    close = difflib.get_close_matches(value, list(choices), n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; choose one of {', '.join(choices)}"
    return SystemExit(f"error: unknown {what} {value!r}{hint}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise _unknown("command", command, COMMANDS)
    root = repository_root()
    sys.path.insert(0, str(root))  # `recipes.*`, as the scripts themselves do
    from recipes.arguments import run_with_clean_errors

    if command == "train":
        method, rest = _pop_method(rest)
        if method not in TRAIN_METHODS:
            raise _unknown("method", method, TRAIN_METHODS)
        from recipes.self_play import run_recipe

        run_with_clean_errors(lambda args: run_recipe(method, args), rest)
    elif command == "compare":
        from recipes.compare import main as compare

        run_with_clean_errors(compare, rest)
    else:
        sys.path.insert(0, str(root / "space"))  # the Space's modules import each other by plain name
        from app import main as space

        here = Path.cwd() / "outputs" / "default"
        if "--results" not in rest and here.is_dir() and Path.cwd().resolve() != root:
            # Runs made from this directory (`spac-hf train` writes under it), with the clone's benchmark results.
            rest = [*rest, "--results", str(here), "--results", str(root / "results" / "ground_truth")]
        run_with_clean_errors(space, rest)


if __name__ == "__main__":
    main()
