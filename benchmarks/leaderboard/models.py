"""Which models to evaluate: `--models label=path-or-hub-id ...` and `--runs <self-play output_dir> ...`.

Every model gets a label (its results file is `<label>.json`), and where known a method, an iteration (0 for the
starting model) and a series (the line it belongs to in the plots). Everything is checked here, before any model is
loaded, so that a typo fails in a second rather than after hours of evaluation.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from spac_hf.methods import METHODS
from spac_hf.run.folder import ITERATE_FILE, RUN_FILE
from spac_hf.utils import recorded_path


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
ITERATE_LABEL = re.compile(r"(?P<series>.+)-iter(?P<iteration>\d+)")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    label: str
    model: str  # local folder or Hub id, as given
    method: str | None = None  # spac / spin / dpo, when known
    iteration: int | None = None  # completed iterations: 0 = the starting model
    series: str | None = None  # plot line; None = not plotted (no iteration)

    def to_dict(self) -> dict:
        """As result files record it: the model named, never by the path of the machine that evaluated it."""
        return {**asdict(self), "model": recorded_path(self.model)}


def parse_models(entries: list[str]) -> list[ModelSpec]:
    """`label=model` entries. Method and iteration come from the folder's `iterate.json` when it has one, else from the
    label: `base` is iteration 0, `<series>-iter<t>` is iteration t of `<series>` (its method if it ends in one)."""
    specs = []
    for entry in entries:
        label, sep, model = entry.partition("=")
        if not sep or not label or not model:
            raise ValueError(f"--models entry {entry!r} must look like label=path-or-hub-id (spac-iter1=out/iter_1)")
        specs.append(_from_label(label, model))
    return specs


def _from_label(label: str, model: str) -> ModelSpec:
    record = _read_json(Path(model).expanduser() / ITERATE_FILE)
    match = ITERATE_LABEL.fullmatch(label)
    if label == "base":
        iteration, series = 0, None
    elif match:
        iteration, series = int(match["iteration"]), match["series"]
    else:
        iteration, series = None, None
    if isinstance(record.get("iteration"), int):
        iteration = record["iteration"]
        series = series or label
    # "spac", or a name ending in it ("zephyr-7b-spac"): the results dataset accepts only known methods.
    guess = (series or "").rsplit("-", 1)[-1]
    method = record.get("method") or (guess if guess in METHODS else None)
    return ModelSpec(label=label, model=model, method=method, iteration=iteration, series=series)


def collect_runs(run_dirs: list[str]) -> list[ModelSpec]:
    """The starting model (once, labelled `base`) and every finished iterate of each run, in iteration order.

    A run folder is what `spac_hf.run_self_play` writes: `self_play_run.json` (method, base model), `iter_<t>/` with an
    `iterate.json` once iterate t is complete, and `iter_average/` when the iterates' weights were averaged.
    """
    specs, bases = [], {}
    for run_dir in run_dirs:
        run = Path(run_dir)
        record = _read_json(run / RUN_FILE)
        if not record:
            raise ValueError(f"--runs {run_dir}: no {RUN_FILE} there; is it an output_dir of run_self_play?")
        bases[record["base_model"]] = run_dir
        iterates = sorted(
            (int(p.name.removeprefix("iter_")), p)
            for p in run.glob("iter_*")
            if p.name.removeprefix("iter_").isdigit() and (p / ITERATE_FILE).exists()
        )
        if not iterates:
            raise ValueError(f"--runs {run_dir}: no finished iterate (iter_<t>/{ITERATE_FILE})")
        for t, path in iterates:
            specs.append(ModelSpec(f"{run.name}-iter{t}", str(path), record.get("method"), t, run.name))
        if (run / "iter_average" / ITERATE_FILE).exists():  # not an iterate: in the table, not on the plots
            specs.append(ModelSpec(f"{run.name}-average", str(run / "iter_average"), record.get("method")))
    if len(bases) > 1:
        listed = ", ".join(f"{base} ({run})" for base, run in bases.items())
        raise ValueError(f"--runs start from different base models ({listed}); benchmark them separately")
    return [ModelSpec("base", next(iter(bases)), None, 0, None)] + specs if bases else specs


def check_specs(specs: list[ModelSpec]) -> list[ModelSpec]:
    """Unique, file-name-safe labels and models that can be loaded; the same model given twice is kept once."""
    if not specs:
        raise ValueError("No models: give --models label=path ... and/or --runs DIR ...")
    seen: dict[str, ModelSpec] = {}
    for spec in specs:
        if not LABEL.fullmatch(spec.label):
            raise ValueError(f"Model label {spec.label!r}: use letters, digits, '.', '_', '+', '-' (it names a file)")
        if spec.label in seen:
            if seen[spec.label].model == spec.model:
                continue
            raise ValueError(f"Model label {spec.label!r} is given twice: {seen[spec.label].model} and {spec.model}")
        check_model_reference(spec.model, spec.label)
        seen[spec.label] = spec
    return list(seen.values())


def check_model_reference(model: str, label: str) -> None:
    """A local model folder (with config.json), or a Hub id that exists (in the local cache when offline)."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"Model {label}={model}: the folder has no config.json, so it is not a saved model")
        return
    try:
        if model.startswith((".", "/", "~")):
            raise HFValidationError(model)
        validate_repo_id(model)
    except HFValidationError:
        raise ValueError(f"Model {label}={model}: no such folder (and not a Hub id)") from None
    if constants.is_offline_mode():
        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ValueError(f"Model {label}={model}: no such folder, and not in the Hub cache (HF_HUB_OFFLINE=1)")
        return
    try:
        exists = HfApi().repo_exists(model)
    except Exception as err:  # no network: the model loader will say more; the other checks still hold
        logger.warning("Could not check %s on the Hub (%s); assuming it exists", model, err)
        return
    if not exists:
        raise ValueError(f"Model {label}={model}: no such folder, nor a model on the Hub (private? log in first)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return {}
