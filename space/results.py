"""Results rows in, leaderboards out.

Rows have the columns of `spac_hf.hub.RESULT_COLUMNS` (model, base_model, method, variant, iteration, task, metric,
value, stderr, num_fewshot). They come from a Hub dataset (`data/*.jsonl`, the layout
`spac_hf.hub.save_results_dataset` writes) and/or from every `**/data/results.jsonl` under local folders, or
from the `table` of a protocol benchmark's `results.json` in a local folder (`results/coverage`). The Space
does not import spac_hf (a Space installs only `requirements.txt`); tests/test_space.py checks these column names
against spac_hf.hub, and the method list below against spac_hf.methods.

Some rows describe another row instead of scoring a task: a multi-seed benchmark writes, beside each model's
`mean_over_seeds`, the half-width of its 95% interval across seeds (`ci95_halfwidth_over_seeds`) and how many seeds
it averages (`num_seeds`). They become the model's "± CI" and "seeds" cells, never a task column, and never enter the
Average. A model without a `num_seeds` row is one run (one seed); its interval is 1.96 standard errors (over the
prompts or questions of its evaluation).

Rankings never mix single runs with means over seeds: `rankings` splits the models by their number of seeds, and each
group is its own leaderboard.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd


logger = logging.getLogger(__name__)

COLUMNS = ("model", "base_model", "method", "variant", "iteration", "task", "metric", "value", "stderr", "num_fewshot")
REQUIRED = ("model", "task", "metric", "value")
ROW_KEY = ["model", "task", "metric", "num_fewshot"]  # one value per key, as in spac_hf.hub.validate_results_rows
RESULTS_GLOB = "**/data/results.jsonl"
# A copy of `spac_hf.methods.METHODS` (name -> label, plot colour), in its order; tests/test_space.py checks it.
# Baselines first, SPAC last: the order of every table, plot and legend. One-pass DPO and iterative DPO are different
# methods: never one line, never one label.
METHODS = {
    "dpo": ("DPO (one pass, all pairs)", "#444444"),
    "iterative_dpo": ("iterative DPO", "#1f77b4"),
    "spin": ("SPIN", "#2ca02c"),
    "spac": ("SPAC", "#d62728"),
}
# Variants of a method (spac_hf.variants: a method at named settings, such as the theory preset), each its own line
# in every table and plot, never joined to its method's. A copy of the records whose name is not a method's, with a
# plot colour: name -> (label, colour, method); tests/test_space.py checks it against spac_hf.variants. A row names
# its variant in its `variant` column; rows written before that column existed name it in the model's name
# (`smollm2-if/spac_theory`, `spac_theory-iter4`).
VARIANTS = {
    "dpo_bounded": ("DPO, bounded reward", "#8c564b", "dpo"),
    "ipo": ("IPO", "#e377c2", "dpo"),
    "rpo": ("RPO (DPO + chosen NLL)", "#bcbd22", "dpo"),
    "sft_chosen": ("SFT on chosen", "#17becf", "dpo"),
    "spac_theory": ("SPAC (theory preset)", "#9467bd", "spac"),
    "spac_theory_no_pessimism": ("theory preset, pessimism off", "#ff7f0e", "spac"),
    "algorithm1": ("Algorithm 1 (bounded critic)", "#aec7e8", "spac"),
}
STYLES = {**METHODS, **{name: (label, colour) for name, (label, colour, _) in VARIANTS.items()}}
METHOD_ORDER = {name: index for index, name in enumerate(reversed(METHODS))}  # the model list shows SPAC first
SFT = "sft"  # the method of the starting model (iteration 0, no method in the rows)
SFT_STYLE = ("SFT", "#7f7f7f")
AVERAGE = "Average"
SEEDS = "seeds"
INFO_COLUMNS = ("model", "method", "iteration", SEEDS)
SUITE_METRIC = "average"  # the metric of a suite-score row: the mean of other rows, not a task of its own
# Rows about another row: metric -> the metric whose interval it is.
CI_METRICS = {"ci95_halfwidth_over_seeds": "mean_over_seeds"}
SEEDS_METRIC = "num_seeds"
UNKNOWN_SEEDS = 0
Z95 = 1.959964  # a 95% normal interval from a standard error, for single runs
CI_SUFFIX = " ± 95% CI"


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def local_result_files(folders: Iterable[Path]) -> list[Path]:
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob(RESULTS_GLOB))]


def hub_result_files(dataset_id: str, revision: str | None = None) -> list[Path]:
    """Download only the data files of a results dataset (its README is not needed) and list them."""
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(dataset_id, repo_type="dataset", revision=revision, allow_patterns=["data/*.jsonl"])
    )
    return sorted(folder.glob("data/*.jsonl"))


SOURCE = "source"  # beside the row's columns: the results folder (or `hub:<dataset id>`) it was read from


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """A frame with every column (missing ones as None), without rows lacking a required value, one row per key."""
    frame = pd.DataFrame(rows, columns=[*COLUMNS, SOURCE])
    complete = frame[list(REQUIRED)].notna().all(axis=1)
    if not complete.all():
        logger.warning("Skipping %d results rows without %s", (~complete).sum(), REQUIRED)
    frame = frame[complete]
    # Later files win: a re-run of a benchmark writes a newer row for the same key.
    frame = frame.drop_duplicates(subset=ROW_KEY, keep="last")
    frame["value"] = frame["value"].astype(float)
    frame["stderr"] = frame["stderr"].astype(float)
    frame["iteration"] = frame["iteration"].astype("Int64")
    # Rows written before the column existed have no variant: one dtype whether or not any row names one.
    frame["variant"] = frame["variant"].astype(object).where(frame["variant"].notna(), None)
    return frame.reset_index(drop=True)


# A protocol benchmark's results folder (results/coverage) holds no Hub-layout rows: its `results.json` has a `table`,
# one row per (regime, arm) with the test reward's mean over seeds and 95% CI, and `start`, pi_1's score per regime.
PROTOCOL_FILE = "results.json"
PROTOCOL_TABLE_KEYS = ("regime", "arm", "test_reward", "ci95", "seeds")
PROTOCOL_TASK = "true_reward_reviews"


def protocol_start(benchmark: str, regime: str) -> str:
    """A regime's starting model, as a ranking names it: each regime starts from its own pi_1, so ranks apart."""
    return f"tiny review model, {benchmark} regime {regime}"


def protocol_rows(folder: Path) -> list[dict]:
    """Results rows from a protocol benchmark's `results.json` (none when the folder holds no such table): per
    (regime, arm) its mean over seeds, the 95% CI half-width and the number of seeds, and pi_1 as the starting model
    (iteration 0; its CI is not recorded). Each arm is the one model the budget trains (iteration 1)."""
    path = folder / PROTOCOL_FILE
    if not path.is_file():
        return []
    record = json.loads(path.read_text(encoding="utf-8"))
    table = record.get("table") if isinstance(record, dict) else None
    if not isinstance(table, list) or not all(all(k in row for k in PROTOCOL_TABLE_KEYS) for row in table):
        return []
    benchmark = record.get("benchmark", folder.name)
    rows = []

    def add(model, regime, method, variant, iteration, mean, ci, seeds):
        start = protocol_start(benchmark, regime)
        common = {"model": model, "base_model": start, "method": method, "variant": variant}
        common.update(iteration=iteration, task=PROTOCOL_TASK, num_fewshot=None)
        rows.append({**common, "metric": "mean_over_seeds", "value": mean, "stderr": None})
        if ci is not None:
            rows.append({**common, "metric": "ci95_halfwidth_over_seeds", "value": ci, "stderr": None})
        rows.append({**common, "metric": SEEDS_METRIC, "value": float(seeds), "stderr": None})

    for start in record.get("start", []):
        regime = start["regime"]
        add(f"{benchmark}/{regime}/pi_1", regime, None, None, 0, start["start_test_reward"], None, start["seeds"])
    for row in table:
        arm = row["arm"]
        method = VARIANTS[arm][2] if arm in VARIANTS else arm
        regime = row["regime"]
        add(f"{benchmark}/{regime}/{arm}", regime, method, arm, 1, row["test_reward"], row["ci95"], row["seeds"])
    return rows


def load_results(
    results_dirs: Iterable[Path], dataset_id: str | None = None, revision: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """All results rows, and one line per source saying what was read (or why it could not be) for the page."""
    rows, notes = [], []
    if dataset_id:
        try:
            files = hub_result_files(dataset_id, revision)
            for path in files:
                rows.extend({**row, SOURCE: f"hub:{dataset_id}"} for row in read_jsonl(path))
            notes.append(f"Hub dataset `{dataset_id}`: {len(files)} file(s).")
        except Exception as err:  # a Space should still show its demo when the Hub is unreachable
            logger.exception("Could not load results dataset %s", dataset_id)
            notes.append(f"Hub dataset `{dataset_id}` could not be loaded: {type(err).__name__}: {err}")
    results_dirs = list(results_dirs)
    files = local_result_files(results_dirs)
    for path in files:
        rows.extend({**row, SOURCE: str(path.parent.parent)} for row in read_jsonl(path))
    tables = 0
    for folder in results_dirs:
        table = protocol_rows(folder) if not any(folder in f.parents for f in files) else []
        rows.extend({**row, SOURCE: str(folder)} for row in table)
        tables += bool(table)
    if results_dirs:
        shown = ", ".join(f"`{d}`" for d in results_dirs)
        also = f" and {tables} benchmark `{PROTOCOL_FILE}` table(s)" if tables else ""
        notes.append(f"Local folders {shown}: {len(files)} `data/results.jsonl` file(s){also}.")
    return rows_frame(rows), notes


def task_column(task: str, metric: str, num_fewshot) -> str:
    shots = "" if pd.isna(num_fewshot) else f", {int(num_fewshot)}-shot"
    return f"{task} ({metric}{shots})"


def method_label(method: str) -> str:
    return SFT_STYLE[0] if method == SFT else STYLES.get(method, (method,))[0]


def style(method: str) -> tuple[str, str | None]:
    """(label, colour) of a method, a variant or the SFT model."""
    return SFT_STYLE if method == SFT else STYLES.get(method, (method, None))


_TABLE_ORDER = {name: index for index, name in enumerate([SFT, *METHODS, *VARIANTS])}
_NAME_PARTS = re.compile(r"[-/]")


def variant_of(model: str, method: str, variant=None) -> str:
    """The line a model is drawn on: its variant when it was trained as one (the row's `variant`, else a part of its
    name that is a variant's name), else its method."""
    if isinstance(variant, str) and variant in VARIANTS:
        return variant
    parts = set(_NAME_PARTS.split(str(model)))
    return next((name for name, (_, _, of) in VARIANTS.items() if of == method and name in parts), method)


# The name of a local starting model, by the folder its recipe writes it to: results name a model, not a machine path.
MODEL_NAMES = {"recipes/default/model": "tiny review model (0.9M)", "outputs/smollm2/model": "SmolLM2-135M-Instruct"}


def model_name(base_model) -> str:
    """What the page calls a starting model: its name, never the path of the machine that made the results."""
    if base_model is None or (isinstance(base_model, float) and math.isnan(base_model)) or base_model == "":
        return ""
    text = str(base_model).replace("\\", "/")
    for path, name in MODEL_NAMES.items():
        if text == path or text.endswith("/" + path):
            return name
    if text.startswith(("/", "~", ".")):  # another local folder: its last meaningful part
        parts = [p for p in text.split("/") if p and p not in (".", "..", "model")]
        return parts[-1] if parts else text
    return text  # a Hub id


def _method_key(method: str) -> tuple[int, str]:
    """The SFT model, then the methods in `METHODS` order (baselines first, SPAC last), then anything else."""
    return _TABLE_ORDER.get(method, len(_TABLE_ORDER)), method


_ITER_SUFFIX = re.compile(r"[-/](iter_?\d+|base)$")


def _run_of(model: str) -> str:
    """`default-dpo-iter2` -> `default-dpo` (spac_hf.run.loop's labels), `runs/dpo/iter_2` -> `runs/dpo` (paths): the
    run a model belongs to."""
    return _ITER_SUFFIX.sub("", model)


def models_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model and task column: model, base_model, method, iteration, seeds, column, value, ci.

    - The starting model (iteration 0, no method) is one model per base model and number of seeds, whichever runs
      evaluated it: its method is `sft` and its name says what it is. Runs that scored it differently (other seeds or
      settings) are averaged.
    - `dpo` rows of a run that has more than one iterate are iterative DPO (results written before spac-hf named
      iterative DPO a method of its own); `dpo` is otherwise one pass over all the pairs.
    - The CI is the model's `ci95_halfwidth_over_seeds` row when it has one, else 1.96 standard errors.
    """
    if frame.empty:
        return no_models()
    seeds = frame[frame["metric"] == SEEDS_METRIC].set_index("model")["value"].astype(int).to_dict()
    # A mean over seeds written without its `num_seeds` row: several seeds, how many is not known (never "1").
    for model in frame.loc[frame["metric"].isin(list(CI_METRICS.values())), "model"]:
        seeds.setdefault(model, UNKNOWN_SEEDS)
    cis = {(row.model, CI_METRICS[row.metric], row.task, row.num_fewshot if pd.notna(row.num_fewshot) else None):
           row.value for row in frame[frame["metric"].isin(list(CI_METRICS))].itertuples()}  # fmt: skip
    scores = frame[~frame["metric"].isin([*CI_METRICS, SEEDS_METRIC])].copy()
    runs_max = scores.assign(run=scores["model"].map(_run_of)).groupby("run")["iteration"].max()

    def method(row) -> str:
        if pd.isna(row.method):
            return SFT if row.iteration == 0 else ""
        if row.method == "dpo" and runs_max.get(_run_of(row.model), 1) > 1:
            return "iterative_dpo"
        return variant_of(row.model, row.method, row.variant)

    scores["method"] = [method(row) for row in scores.itertuples()]
    scores[SEEDS] = scores["model"].map(seeds).fillna(1).astype(int)
    scores["column"] = [task_column(*key) for key in zip(scores.task, scores.metric, scores.num_fewshot)]
    scores["ci"] = [
        cis.get((row.model, row.metric, row.task, row.num_fewshot if pd.notna(row.num_fewshot) else None),
                Z95 * row.stderr if pd.notna(row.stderr) else math.nan)
        for row in scores.itertuples()
    ]  # fmt: skip
    sft = scores["method"] == SFT
    base = scores.loc[sft, "base_model"].fillna(scores.loc[sft, "model"])
    scores.loc[sft, "model"] = "SFT: " + base.map(model_name)
    return scores.groupby(["model", SEEDS, "column"], sort=False, as_index=False, dropna=False).agg(
        base_model=("base_model", "first"), method=("method", "first"), iteration=("iteration", "first"),
        value=("value", "mean"), ci=("ci", "mean"), metric=("metric", "first"),
        source=(SOURCE, lambda sources: "|".join(sorted({str(x) for x in sources if isinstance(x, str)}))),
    )  # fmt: skip


MODEL_COLUMNS = ["model", SEEDS, "column", "base_model", "method", "iteration", "value", "ci", "metric", SOURCE]


def sources_of(models: pd.DataFrame) -> list[str]:
    """The results folders (or Hub datasets) a ranking's rows were read from."""
    if SOURCE not in models:
        return []
    return sorted({s for joined in models[SOURCE].dropna() for s in str(joined).split("|") if s})


def no_models() -> pd.DataFrame:
    """An empty `models_frame`: what a ranking with no results shows."""
    return pd.DataFrame(columns=MODEL_COLUMNS)


def ranking_name(seeds: int) -> str:
    if seeds == UNKNOWN_SEEDS:
        return "means over several seeds (count not recorded)"
    return "single runs (1 seed each)" if seeds == 1 else f"means over {seeds} seeds"


def rankings(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The models split by their number of seeds and, when the rows come from several starting models (the review
    task's tiny model, SmolLM2 on instruction following), by starting model too: a ranking only compares models
    trained from the same model. Name -> that group's `models_frame` rows: single runs first, and the rankings of the
    first source's starting model last (the Space shows the last one first: its results sources list the headline
    benchmark first)."""
    models = models_frame(frame)
    base = models["base_model"].fillna("")
    several = base.nunique() > 1
    headline = frame["base_model"].fillna("").iloc[0] if len(frame) else ""
    groups = sorted(models.groupby([SEEDS, base]), key=lambda item: (item[0][1] == headline, item[0]))
    return {
        ranking_name(int(n)) + (f" from {model_name(start)}" if several and start else ""): group
        for (n, start), group in groups
    }


def leaderboard(models: pd.DataFrame, methods: Sequence[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """One row per model of one ranking: model, method, iteration, seeds, Average, then per task column its value
    and its ± CI. `methods` keeps only those methods (the SFT model is always shown: it is what the others start
    from).

    The Average is the plain mean of the task columns that *every* model shown has (a model evaluated on more tasks
    does not get a different average); suite scores (metric `average`) are shown but never averaged again. Rows are
    sorted by it, best first.
    """
    if methods is not None:
        models = models[models["method"].isin([*methods, SFT])]
    if models.empty:
        return pd.DataFrame(columns=[*INFO_COLUMNS, AVERAGE])
    columns = list(dict.fromkeys(models["column"]))
    values = models.pivot(index="model", columns="column", values="value")[columns]
    cis = models.pivot(index="model", columns="column", values="ci")[columns]
    info = models.groupby("model", sort=False)[["method", "iteration", SEEDS]].first()
    suite = set(models.loc[models["metric"] == SUITE_METRIC, "column"])
    shared = [c for c in columns if c not in suite and values[c].notna().all()]
    table = info.copy()
    table[AVERAGE] = values[shared].mean(axis=1) if shared else math.nan
    for column in columns:
        table[column] = values[column]
        table[column + CI_SUFFIX] = cis[column]
    table = table.reset_index()
    table = table.sort_values([AVERAGE, "iteration"], ascending=[False, True], kind="stable", na_position="last")
    number_columns = [AVERAGE, *columns, *(c + CI_SUFFIX for c in columns)]
    table[number_columns] = table[number_columns].astype(float).round(digits)
    table["method"] = table["method"].map(method_label)
    table["iteration"] = table["iteration"].astype(object).where(table["iteration"].notna(), None)
    table.attrs["averaged_columns"] = shared
    return table.reset_index(drop=True)


def average_note(table: pd.DataFrame) -> str:
    """What the Average of `table` is the mean of, for the page."""
    shared = table.attrs.get("averaged_columns", [])
    if not shared:
        return "No task is shared by every model shown: no Average."
    return f"Average = mean of {', '.join(f'`{c}`' for c in shared)}: the task scores every model shown has."
