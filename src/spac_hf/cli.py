"""`spac-hf`, the command installed with the package: train, compare and browse from any directory.

    spac-hf train --method spac                         # the embedded default (spac_hf/default/spac.yaml)
    spac-hf train --method spac --num_iterations 2      # ... with an override: the default is the base config
    spac-hf train --method dpo --config my.yaml         # any YAML; `spac-hf train --method spac --help` lists options
    spac-hf compare                                     # SPAC, iterative DPO and SPIN side by side: table and plot
    spac-hf space                                       # the Gradio app on the runs' results and iterates

`train` is `spac_hf.scripts.<method>`, `compare` is `spac_hf.scripts.compare`, `space` is `spac_hf.scripts.space`
(it needs a spac-hf checkout: the Space is not part of the package). The embedded default's model, data and YAMLs
ship with the package, so `train` and `compare` work from a plain `pip install`; outputs go under the current
directory. Errors are one line; `--debug` shows the traceback. Several processes:
`accelerate launch -m spac_hf.cli train --method spac ...`.
"""

from __future__ import annotations

import difflib
import sys


COMMANDS = ("train", "compare", "space")
TRAIN_METHODS = ("spac", "dpo", "spin")  # the recipe scripts; `dpo` over T > 1 iterations is iterative DPO


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
    if command == "space":
        from spac_hf.scripts.space import main as space

        space(rest)
        return
    from spac_hf.scripts.arguments import run_with_clean_errors

    if command == "train":
        method, rest = _pop_method(rest)
        if method not in TRAIN_METHODS:
            raise _unknown("method", method, TRAIN_METHODS)
        from spac_hf.scripts.self_play import run_recipe

        run_with_clean_errors(lambda args: run_recipe(method, args), rest)
    else:
        from spac_hf.scripts.compare import main as compare

        run_with_clean_errors(compare, rest)


if __name__ == "__main__":
    main()
