"""`spac-hf space`: the Gradio Space (`space/app.py` of a spac-hf checkout) on this directory's runs.

The Space is a folder that also runs alone on the Hub, its modules importing each other by plain name, so it is not
part of the installed package: this launcher finds it in the checkout the package runs from and starts it as its own
script, with the runs `spac-hf train` wrote under the current directory and the checkout's benchmark results.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


CHECKOUT = Path(__file__).resolve().parents[3]  # src/spac_hf/scripts/space.py -> the checkout's root


def space_app(root: Path = CHECKOUT) -> Path:
    app = root / "space" / "app.py"
    if not app.is_file():
        raise SystemExit(
            "error: the Space is not part of the installed package; run `spac-hf space` from a spac-hf checkout "
            "(`git clone <spac-hf> && pip install -e ./spac-hf`) or `python space/app.py` in it."
        )
    return app


def space_args(argv: list[str], cwd: Path, root: Path = CHECKOUT) -> list[str]:
    """`argv` plus, unless `--results` is given, the runs made from `cwd` and the checkout's ground-truth results."""
    here = cwd / "outputs" / "default"
    if "--results" not in argv and here.is_dir() and cwd.resolve() != root:
        return [*argv, "--results", str(here), "--results", str(root / "results" / "ground_truth")]
    return list(argv)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    app = space_app()
    raise SystemExit(subprocess.call([sys.executable, str(app), *space_args(argv, Path.cwd())]))


if __name__ == "__main__":
    main()
