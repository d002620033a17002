"""The Gradio Space (space/): results -> leaderboard and plots, the model allowlist, and side-by-side generation.

One app is launched for the module on 127.0.0.1 (`prevent_thread_lock=True`) with fake results rows and two tiny
models built here, and driven through `gradio_client` and a real headless Chromium (Debian's `chromium`, through
Python playwright). CI needs `apt-get install -y chromium` for the browser test; without it that test is skipped.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from spac_hf.hub import RESULT_COLUMNS, push_results_dataset, save_results_dataset

from hub_server import USER, hub_server  # noqa: F401  (`hub_server` is the fixture)


SPACE_DIR = Path(__file__).resolve().parents[1] / "space"
sys.path.insert(0, str(SPACE_DIR))  # the Space's modules import each other by plain name, as on a Hub Space

import app  # noqa: E402
import models  # noqa: E402
import plots  # noqa: E402
from build import build_commands  # noqa: E402
from generation import ModelCache, RequestRejected, SideBySide  # noqa: E402
from settings import Settings  # noqa: E402

import results  # noqa: E402


SFT, SPAC1 = "tiny: SFT", "tiny: SPAC iter 1"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def result_row(model, method, iteration, task, metric, value, stderr=None, num_fewshot=None):
    return {
        "model": model, "base_model": "tiny-sft", "method": method, "iteration": iteration, "task": task,
        "metric": metric, "value": value, "stderr": stderr, "num_fewshot": num_fewshot,
    }  # fmt: skip


# The SFT model (iteration 0, no method) and two iterations each of SPAC and DPO; the second task is missing for DPO.
SPAC_ROWS = [
    result_row("runs/sft", None, 0, "true_reward", "mean", 0.10, 0.02),
    result_row("runs/spac/iter_1", "spac", 1, "true_reward", "mean", 0.30, 0.02),
    result_row("runs/spac/iter_2", "spac", 2, "true_reward", "mean", 0.45, 0.02),
    result_row("runs/sft", None, 0, "arc_challenge", "acc_norm", 0.20, None, 25),
    result_row("runs/spac/iter_2", "spac", 2, "arc_challenge", "acc_norm", 0.25, None, 25),
]
DPO_ROWS = [
    result_row("runs/dpo/iter_1", "dpo", 1, "true_reward", "mean", 0.20),
    result_row("runs/dpo/iter_2", "dpo", 2, "true_reward", "mean", 0.15),
]
SINGLE_ROWS = SPAC_ROWS + DPO_ROWS


def benchmark_rows(model, method, iteration, mean, ci, seeds=5):
    """A multi-seed benchmark's rows for one model, as benchmarks/ground_truth/report.py writes them."""
    return [
        result_row(model, method, iteration, "true_reward", "mean_over_seeds", mean, ci / 2.78),
        result_row(model, method, iteration, "true_reward", "ci95_halfwidth_over_seeds", ci),
        result_row(model, method, iteration, "true_reward", "num_seeds", seeds),
    ]


# The case: a wide interval must not lift spac-iter2 (mean 0.106, CI 0.230) above spac-iter3 (mean 0.251).
# `dpo-iter1` is one-pass DPO; `iterative_dpo-iter<t>` iterative DPO (both written with method "dpo").
BENCHMARK_ROWS = [
    *benchmark_rows("sft", None, 0, 0.116, 0.032),
    *benchmark_rows("dpo-iter1", "dpo", 1, 0.264, 0.110),
    *benchmark_rows("iterative_dpo-iter1", "dpo", 1, 0.239, 0.025),
    *benchmark_rows("iterative_dpo-iter2", "dpo", 2, 0.306, 0.055),
    *benchmark_rows("spac-iter1", "spac", 1, 0.212, 0.024),
    *benchmark_rows("spac-iter2", "spac", 2, 0.106, 0.230),
    *benchmark_rows("spac-iter3", "spac", 3, 0.251, 0.041),
]
ALL_ROWS = SINGLE_ROWS + BENCHMARK_ROWS
SINGLE, MULTI = "single runs (1 seed each)", "means over 5 seeds"
REWARD, ARC = "true_reward (mean)", "arc_challenge (acc_norm, 25-shot)"
BENCH_REWARD = "true_reward (mean_over_seeds)"


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    """Two runs' results datasets, as the recipes write them (one per method), and a multi-seed benchmark's, under
    one folder the Space searches."""
    root = tmp_path_factory.mktemp("space-results")
    for method, rows in (("spac", SPAC_ROWS), ("dpo", DPO_ROWS)):
        save_results_dataset(rows, root / "default" / method / "results", dataset_name=method, description="test")
    save_results_dataset(BENCHMARK_ROWS, root / "benchmark" / "dataset", dataset_name="bench", description="test")
    return root


@pytest.fixture(scope="module")
def models_file(tiny_model_dir, tmp_path_factory):
    """The allowlist: two differently initialised tiny models, one prompted through its chat template, one plain."""
    from transformers import AutoTokenizer

    from helpers import build_model

    folder = tmp_path_factory.mktemp("space-models")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for name, seed in (("sft", 0), ("spac-iter1", 1)):
        model = build_model(tokenizer, seed=seed)
        # An untrained model may sample its end token first: an empty pane, a flaky test. Never stop early here.
        model.config.eos_token_id = model.generation_config.eos_token_id = None
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    config = {"models": {SFT: {"path": "sft"}, SPAC1: {"path": "spac-iter1", "chat": False}}}
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def settings(results_root, models_file):
    return Settings(
        results_dirs=(results_root,),
        models_file=models_file,
        max_prompt_chars=200,
        max_prompt_tokens=24,
        max_new_tokens=16,
        default_new_tokens=12,
        example_prompts=("the cat sits:",),
    )


@pytest.fixture(scope="module")
def launched(settings):
    demo = app.build_demo(settings)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(launched):
    from gradio_client import Client

    return Client(launched.local_url, verbose=False)


# ---------------------------------------------------------------------------------------------------------------------
# Results: loading, leaderboard, plots
# ---------------------------------------------------------------------------------------------------------------------


def test_space_reads_the_columns_spac_hf_writes():
    # The Space does not depend on spac_hf (a Hub Space installs only requirements.txt): keep the two in step here.
    assert results.COLUMNS == tuple(RESULT_COLUMNS)


def test_space_copy_of_the_methods_matches_spac_hf():
    from spac_hf.methods import METHODS

    # Same names, same order, same labels and colours: a method added to spac_hf must be added here too.
    assert list(results.METHODS.items()) == [(name, (m.label, m.colour)) for name, m in METHODS.items()]


def test_space_copy_of_the_reward_metrics_matches_spac_hf():
    import rewards

    from spac_hf.tasks.metrics import METRICS_DIR, METRICS_NAMESPACE, TASK_METRICS

    assert rewards.METRICS_NAMESPACE == METRICS_NAMESPACE
    for task, name in rewards.REWARD_METRICS.items():
        assert TASK_METRICS[f"true_reward_{task}"] == name
        assert rewards.metric_location(name) == str(METRICS_DIR / name)  # in a checkout: the shipped folder
    assert rewards.metric_location("no_such_metric") == "spac-hf/no_such_metric"  # elsewhere: the Hub Space


def test_single_runs_and_means_over_seeds_are_separate_rankings(results_root):
    frame, notes = results.load_results([results_root])
    assert len(frame) == len(ALL_ROWS) and "3 `data/results.jsonl` file(s)" in notes[0]
    ranks = results.rankings(frame)
    assert list(ranks) == [SINGLE, MULTI]
    single = results.leaderboard(ranks[SINGLE])
    assert set(single["seeds"]) == {1} and not any(single["model"].str.contains("iter1$|iter2$|iter3$"))
    multi = results.leaderboard(ranks[MULTI])
    assert set(multi["seeds"]) == {5} and set(multi["model"]) >= {"spac-iter2", "spac-iter3", "dpo-iter1"}


def test_single_run_leaderboard_one_row_per_model_average_over_shared_tasks(results_root):
    frame, _ = results.load_results([results_root])
    table = results.leaderboard(results.rankings(frame)[SINGLE])
    assert list(table.columns) == [
        "model", "method", "iteration", "seeds", "Average", REWARD, REWARD + " ± 95% CI", ARC, ARC + " ± 95% CI",
    ]  # fmt: skip
    # The SFT model once, with its method; runs/dpo/iter_1 belongs to a run with two iterates: iterative DPO.
    assert list(table["model"]) == [
        "runs/spac/iter_2", "runs/spac/iter_1", "runs/dpo/iter_1", "runs/dpo/iter_2", "SFT: tiny-sft",
    ]  # fmt: skip
    assert list(table["method"]) == ["SPAC", "SPAC", "iterative DPO", "iterative DPO", "SFT"]
    best = table.iloc[0]
    assert (best["iteration"], best[REWARD], best[ARC]) == (2, 0.45, 0.25)
    # Only the task every model has is averaged: arc is missing for DPO, so it counts for nobody.
    assert best["Average"] == 0.45 and table.attrs["averaged_columns"] == [REWARD]
    assert best[REWARD + " ± 95% CI"] == pytest.approx(1.96 * 0.02, abs=1e-3)  # one run: 1.96 standard errors
    assert table[table["model"] == "runs/dpo/iter_1"][ARC].isna().all()  # not evaluated: an empty cell
    # Two models that both have both tasks: both are averaged.
    both = results.models_frame(results.rows_frame([r for r in SPAC_ROWS if r["model"] != "runs/spac/iter_1"]))
    table = results.leaderboard(both)
    assert table.attrs["averaged_columns"] == [REWARD, ARC]
    assert list(table["Average"]) == [pytest.approx((0.45 + 0.25) / 2), pytest.approx((0.10 + 0.20) / 2)]
    # The method filter keeps the SFT model the others start from.
    assert list(results.leaderboard(results.rankings(frame)[SINGLE], methods=["spac"])["method"]) == [
        "SPAC", "SPAC", "SFT",
    ]  # fmt: skip


def test_benchmark_ranking_is_by_mean_never_by_the_interval(results_root):
    frame, _ = results.load_results([results_root])
    table = results.leaderboard(results.rankings(frame)[MULTI])
    means = {r["model"]: r["value"] for r in BENCHMARK_ROWS if r["metric"] == "mean_over_seeds"}
    expected = sorted(means, key=means.get, reverse=True)
    assert list(table["model"]) == [("SFT: tiny-sft" if m == "sft" else m) for m in expected]
    assert list(table["Average"]) == sorted(means.values(), reverse=True)
    row = table.set_index("model").loc["spac-iter2"]
    assert (row[BENCH_REWARD], row[BENCH_REWARD + " ± 95% CI"], row["Average"]) == (0.106, 0.23, 0.106)
    methods = table.set_index("model")["method"]
    assert methods["dpo-iter1"] == "DPO (one pass, all pairs)" and methods["iterative_dpo-iter2"] == "iterative DPO"


def test_committed_ground_truth_ranking_matches_its_results_file():
    """The Space's ranking of the committed benchmark is the order of the means in results.json."""
    import json

    folder = SPACE_DIR.parent / "results" / "ground_truth"
    summary = json.loads((folder / "results.json").read_text())["summary"]
    frame, _ = results.load_results([folder])
    (name,) = results.rankings(frame)
    assert name == f"means over {len(summary['seeds'])} seeds"
    table = results.leaderboard(results.rankings(frame)[name])
    expected = {"sft": summary["sft"]["mean"]}
    expected.update({f"{c['method']}-iter{c['iteration']}": c["mean"] for c in summary["cells"]})
    shown = dict(
        zip(table["model"].str.replace("SFT: tiny review model (0.9M)", "sft", regex=False), table["Average"])
    )
    assert shown == pytest.approx({k: round(v, 3) for k, v in expected.items()}, abs=1e-9)
    assert list(table["Average"]) == sorted(table["Average"], reverse=True)
    assert (table["method"] == "SFT").sum() == 1


def test_the_instruction_following_results_rank_apart_from_the_review_task():
    """Read together (the Space's default), the two benchmarks never share a ranking: different starting models."""
    import json

    root = SPACE_DIR.parent / "results"
    summary = json.loads((root / "instruction_following" / "results.json").read_text())["summary"]
    frame, _ = results.load_results([root / "instruction_following" / "dataset", root / "ground_truth"])
    ranks = results.rankings(frame)
    bases = [set(models["base_model"]) for models in ranks.values()]
    assert len(ranks) >= 2 and all(len(b) == 1 for b in bases)
    base = json.loads((root / "instruction_following" / "results.json").read_text())["settings"]["base_model"]
    smollm2 = [models for models in ranks.values() if set(models["base_model"]) == {base}]
    assert smollm2 and list(ranks.values())[-1] is smollm2[-1]  # listed first: the ranking the page opens on
    smollm2 = pd.concat(smollm2)
    shown = smollm2[smollm2["column"].str.startswith("ifeval_inst_level_strict_acc")].set_index("model")["value"]
    expected = {f"smollm2-if/{m}": c["ifeval_inst_level_strict_acc"]["mean"] for m, c in summary["cells"].items()
                if "ifeval_inst_level_strict_acc" in c}  # fmt: skip
    assert expected and {m: shown[m] for m in expected} == pytest.approx(expected)


def test_the_theory_preset_is_its_own_line_and_the_page_names_models_not_machine_paths():
    """The committed instruction-following results: the theory preset (rows of method `spac`, model
    `smollm2-if/spac_theory`) is its own method line, never SPAC's iteration 4; the starting model is named, never a
    path of the machine that made the results; every title fits its figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    root = SPACE_DIR.parent / "results"
    frame, _ = results.load_results([root / "instruction_following" / "dataset", root / "ground_truth"])
    ranks = results.rankings(frame)
    name = list(ranks)[-1]  # the ranking the page opens on
    assert name == "means over 3 seeds from SmolLM2-135M-Instruct"
    table = results.leaderboard(ranks[name]).set_index("model")
    assert table.loc["smollm2-if/spac_theory", "method"] == "SPAC (theory preset)"
    assert table.loc["smollm2-if/spac", "method"] == "SPAC"
    assert "SFT: SmolLM2-135M-Instruct" in table.index
    curves = plots.iteration_curves(ranks[name])
    for methods in curves.values():
        assert methods["spac"]["iteration"].tolist() == [0, 3]  # SPAC's own iterate, not the preset's
        assert methods["spac_theory"]["iteration"].tolist() == [0, 4]
    assert {results.model_name(b) for b in frame["base_model"]} == {
        "SmolLM2-135M-Instruct",
        "tiny review model (0.9M)",
    }
    assert results.model_name("/somewhere/on/a/machine/my-sft/model") == "my-sft"
    assert results.model_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"

    figure = app.ranking_view(ranks, name, None, None)[2]
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer, box = canvas.get_renderer(), figure.bbox
    titles = [figure._suptitle, *(ax.title for ax in figure.axes)]
    assert "SmolLM2-135M-Instruct" in figure.get_suptitle() and len(titles) == 4
    for title in titles:
        extent = title.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, title.get_text()  # never cut at either end
    for ax in figure.axes:
        legend = ax.get_legend()
        assert legend.get_title().get_text() == "error bars: 95% CI"  # the one uncertainty measure, labelled
        assert {"SPAC", "SPAC (theory preset)"} <= {t.get_text() for t in legend.get_texts()}


def test_space_copy_of_the_variants_matches_spac_hf():
    from spac_hf.methods import METHODS
    from spac_hf.variants import VARIANTS

    # Every variant that is not a method of its own, with its label and method: its own line, never its method's.
    expected = {v.name: (v.label, v.method) for v in VARIANTS.values() if v.name not in METHODS}
    assert {name: (label, method) for name, (label, _colour, method) in results.VARIANTS.items()} == expected
    colours = [colour for _, colour in results.STYLES.values()] + [results.SFT_STYLE[1]]
    assert len(set(colours)) == len(colours)  # every line tells itself apart
    # A row that names its variant is drawn on the variant's line, whatever the model is called.
    rows = [
        result_row("runs/a/iter_1", "spac", 1, "t", "mean", 0.2),
        result_row("runs/b/iter_1", "spac", 1, "t", "mean", 0.3),
    ]
    frame = results.rows_frame([{**rows[0], "variant": "spac_theory"}, {**rows[1], "variant": "spac"}])
    assert sorted(results.models_frame(frame)["method"]) == ["spac", "spac_theory"]


def test_the_coverage_benchmark_ranks_each_regime_apart_with_its_committed_means_and_95_cis():
    """results/coverage holds no Hub-layout rows: the Space reads its results.json table, one ranking per regime
    (each regime starts from its own pi_1), with the table's mean over seeds and its 95% CI, and says where from."""
    import json

    folder = SPACE_DIR.parent / "results" / "coverage"
    committed = json.loads((folder / "results.json").read_text())
    frame, notes = results.load_results([SPACE_DIR.parent / "results" / "ground_truth", folder])
    assert "1 benchmark `results.json` table(s)" in notes[0]
    ranks = results.rankings(frame)
    for regime in {row["regime"] for row in committed["table"]}:
        rows = [row for row in committed["table"] if row["regime"] == regime]
        start = next(s for s in committed["start"] if s["regime"] == regime)
        for seeds in {row["seeds"] for row in rows}:
            name = f"means over {seeds} seeds from tiny review model, coverage regime {regime}"
            table = results.leaderboard(ranks[name]).set_index("model")
            column = "true_reward_reviews (mean_over_seeds)"
            same = [r for r in rows if r["seeds"] == seeds]
            expected = {f"coverage/{regime}/{r['arm']}": (r["test_reward"], r["ci95"]) for r in same}
            shown = {m: (table.loc[m, column], table.loc[m, column + results.CI_SUFFIX]) for m in expected}
            assert shown == {m: pytest.approx((round(v, 3), round(c, 3)), abs=1e-9) for m, (v, c) in expected.items()}
            # Each arm is its own line (RPO and SFT on chosen are not DPO), pi_1 is the starting model.
            assert set(table["method"]) >= {results.method_label(r["arm"]) for r in same}
            if seeds == start["seeds"]:
                pi_1 = table[table["method"] == "SFT"]
                assert list(pi_1["Average"]) == [round(start["start_test_reward"], 3)]
            note = app.ranking_view(ranks, name, None, None)[1]
            assert f"Results from `results/coverage`, made by `{committed['command']}`" in note
            assert ("**PARTIAL**" in note) == committed["partial"] and "today's recipe YAMLs" not in note
    # The review task's benchmark keeps its own ranking: other starting models never share one.
    assert all(len(set(models["base_model"])) == 1 for models in ranks.values())


def test_each_ranking_says_where_its_rows_come_from_and_whether_they_are_todays_default(tmp_path):
    import json

    import provenance

    root = SPACE_DIR.parent / "results"
    frame, _ = results.load_results([root / "instruction_following" / "dataset", root / "ground_truth"])
    ranks = results.rankings(frame)
    notes = {name: app.ranking_view(ranks, name, None, None)[1] for name in ranks}
    ground_truth = notes["means over 5 seeds from tiny review model (0.9M)"]
    assert "Results from `results/ground_truth/dataset`" in ground_truth
    assert "`python benchmarks/ground_truth/run.py`" in ground_truth and "seeds [0, 1, 2, 3, 4]" in ground_truth
    # Run at learning rate 5e-4 before the default moved to 2e-4 (recipes/default/tuning): said, with both values,
    # against the YAML where it is today (recorded as recipes/default/dpo.yaml, now shipped in the package).
    assert "**Not today's default settings**" in ground_truth
    assert "learning_rate 0.0005 (today's src/spac_hf/default/dpo.yaml" in ground_truth and ": 0.0002)" in ground_truth
    following = notes["means over 3 seeds from SmolLM2-135M-Instruct"]
    assert "Results from `results/instruction_following/dataset`" in following

    # A benchmark folder of its own, against a YAML that then changes.
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "x.yaml").write_text("learning_rate: 0.001\nbeta: 0.5\n")
    per_method = {
        "spac": {"recipe_args": ["--config", "recipes/x.yaml", "--beta", "0.1"], "learning_rate": 0.001, "beta": 0.1}
    }
    bench = tmp_path / "bench"
    (bench / "dataset").mkdir(parents=True)
    (bench / "results.json").write_text(json.dumps({"command": "run it", "settings": {"per_method": per_method}}))
    assert provenance.describe(bench / "dataset", tmp_path).endswith("with the settings of today's recipe YAMLs.")
    (tmp_path / "recipes" / "x.yaml").write_text("learning_rate: 0.002\nbeta: 0.7\n")  # beta was set explicitly
    assert provenance.describe(bench / "dataset", tmp_path).endswith(
        "**Not today's default settings**: learning_rate 0.001 (today's recipes/x.yaml: 0.002)."
    )


def test_later_files_win_for_the_same_key_and_incomplete_rows_are_dropped():
    rows = [result_row("m", "spac", 1, "t", "mean", 0.1), result_row("m", "spac", 1, "t", "mean", 0.2)]
    rows.append({"model": "m", "task": "t2", "metric": "mean", "value": None})
    frame = results.rows_frame(rows)
    assert frame[["task", "value"]].values.tolist() == [["t", 0.2]]


def test_results_from_a_hub_dataset(hub_server, tmp_path):  # noqa: F811
    repo_id = f"{USER}/spac-results"
    push_results_dataset(ALL_ROWS, repo_id, local_dir=tmp_path / "pushed")
    frame, notes = results.load_results([], dataset_id=repo_id)
    assert notes == [f"Hub dataset `{repo_id}`: 1 file(s)."]
    expected = results.rows_frame([{**row, results.SOURCE: f"hub:{repo_id}"} for row in ALL_ROWS])
    pd.testing.assert_frame_equal(frame.sort_values(["model", "task"]), expected.sort_values(["model", "task"]))
    # A dataset that is not there leaves the page up, with the reason instead of rows.
    frame, notes = results.load_results([], dataset_id=f"{USER}/missing")
    assert frame.empty and "could not be loaded" in notes[0]


def test_plots_one_line_per_method_labelled_axes_error_bars(results_root):
    frame, _ = results.load_results([results_root])
    ranks = results.rankings(frame)
    curves = plots.iteration_curves(ranks[SINGLE])
    reward = curves[REWARD]
    assert list(reward) == ["iterative_dpo", "spac"]
    assert reward["spac"]["value"].tolist() == [0.10, 0.30, 0.45]  # from the SFT model
    assert reward["iterative_dpo"]["iteration"].tolist() == [0, 1, 2]
    fig = plots.results_figure(ranks[SINGLE], title="single runs")
    assert len(fig.axes) == 2 and fig.get_suptitle() == "single runs"
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    # Benchmark: one-pass DPO is a reference line of its own, never the first point of iterative DPO's line.
    bench = plots.results_figure(ranks[MULTI])
    (ax,) = bench.axes
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["DPO (one pass, all pairs)", "iterative DPO", "SPAC"]
    assert len(ax.containers) == 2  # error bars on both iterative lines
    spac = plots.iteration_curves(ranks[MULTI])[BENCH_REWARD]["spac"]
    assert spac["ci"].tolist() == [0.032, 0.024, 0.23, 0.041]
    assert len(plots.results_figure(results.models_frame(frame.iloc[0:0])).axes) == 1  # "no results yet" panel


# ---------------------------------------------------------------------------------------------------------------------
# Model allowlist
# ---------------------------------------------------------------------------------------------------------------------


def _fake_iterate(folder: Path, record: dict | None) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if record is not None:
        (folder / "iterate.json").write_text(__import__("json").dumps(record))


def test_allowlist_from_file_and_discovered_iterates(tmp_path):
    out = tmp_path / "outputs" / "default"
    _fake_iterate(out / "spac" / "iter_2", {"method": "spac", "iteration": 2})
    _fake_iterate(out / "spac" / "iter_1", {"method": "spac", "iteration": 1})
    _fake_iterate(out / "spac" / "iter_average", {"iteration": "average", "of": []})
    _fake_iterate(out / "dpo" / "iter_1", {"method": "dpo", "iteration": 1})
    _fake_iterate(out / "spin" / "iter_1", None)  # an iteration in progress: no iterate.json yet
    _fake_iterate(tmp_path / "sft", None)
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "default: SFT": {"path": "sft"},
                    "not built": {"path": "nowhere"},  # skipped: no model there
                    "hub: SPAC iter 3": {"repo": "someone/spac-model", "revision": "iter_3"},
                    "same as iter 1": {"path": "outputs/default/spac/iter_1"},  # its discovered twin is dropped
                }
            }
        )
    )
    allowlist = models.load_allowlist(models_file, discover_root=tmp_path)
    assert list(allowlist) == [
        "default: SFT", "hub: SPAC iter 3", "same as iter 1",
        "default: SPAC iter 2", "default: SPAC average", "default: DPO (one pass, all pairs) iter 1",
    ]  # fmt: skip
    assert allowlist["hub: SPAC iter 3"].source == "someone/spac-model" and not allowlist["hub: SPAC iter 3"].is_local
    assert models.default_pair(allowlist) == ("default: SFT", "default: SPAC iter 2")
    assert models.load_allowlist(models_file, discover_root=None).keys() == {
        "default: SFT", "hub: SPAC iter 3", "same as iter 1",
    }  # fmt: skip

    models_file.write_text(yaml.safe_dump({"models": {"both": {"path": "sft", "repo": "a/b"}}}))
    with pytest.raises(ValueError, match="exactly one of"):
        models.load_allowlist(models_file)


def test_no_iterates_note_and_build_commands(tmp_path, models_file):
    (tmp_path / "recipes" / "default").mkdir(parents=True)
    settings = Settings(models_file=models_file, discover_root=tmp_path)
    with_note = app.build_demo(settings)
    assert any(c.get("props", {}).get("elem_id") == "no-iterates" for c in with_note.config["components"])
    commands = [" ".join(c[-4:]) for c in build_commands(tmp_path)]
    assert commands[0].endswith("recipes/default/build_assets.py")  # no shipped model in this fake checkout
    assert commands[1:] == [f"accelerate launch -m spac_hf.scripts.{m}" for m in ("spac", "dpo", "spin")]


def test_model_cache_keeps_the_most_recently_used():
    loads = []
    cache = ModelCache(2, loader=lambda entry: loads.append(entry.label) or entry.label)
    a, b, c = (models.ModelEntry(name, f"/models/{name}") for name in "abc")
    for entry in (a, b, a, c, a, b):
        assert cache.get(entry) == entry.label
    assert loads == ["a", "b", "c", "b"]  # c evicted b (a was used more recently), then b evicted c


def test_settings_in_a_checkout_and_on_a_space(tmp_path, monkeypatch):
    for name in ("SPAC_RESULTS_DATASET", "SPAC_RESULTS_DIRS", "SPAC_MODELS_FILE", "SPAC_MAX_NEW_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    local = Settings.from_env(root=SPACE_DIR.parent)
    assert local.discover_root == SPACE_DIR.parent
    # The embedded default's runs and the ground-truth benchmark; never the leaderboard's fixture smoke run.
    root = SPACE_DIR.parent
    results = root / "results"
    assert local.results_dirs == (
        results / "instruction_following" / "dataset",
        root / "outputs" / "default",
        results / "ground_truth",
        results / "coverage",
    )
    # A Space's folder alone: no discovery, no local results unless asked, the Hub dataset from the environment.
    monkeypatch.setenv("SPAC_RESULTS_DATASET", "someone/results")
    monkeypatch.setenv("SPAC_MAX_NEW_TOKENS", "32")
    space = Settings.from_env(root=tmp_path)
    assert (space.discover_root, space.results_dirs, space.results_dataset) == (None, (), "someone/results")
    assert space.max_new_tokens == 32 and space.example_prompts  # fallback prompts of the default task's form


# ---------------------------------------------------------------------------------------------------------------------
# The launched app, through gradio_client
# ---------------------------------------------------------------------------------------------------------------------


def test_client_table_matches_the_results_rows(client):
    sources, ranking, methods, columns, table, note, _plot = client.predict(MULTI, api_name="/results")
    # The ranking chosen is kept; its methods and columns are offered, all ticked.
    assert ranking["value"] == MULTI and [c[0] for c in ranking["choices"]] == [SINGLE, MULTI]
    assert methods["value"] == ["DPO (one pass, all pairs)", "iterative DPO", "SPAC"]
    assert columns["value"] == ["iteration", "seeds", "± 95% CI", BENCH_REWARD]
    assert "3 `data/results.jsonl` file(s)" in sources and "true_reward (mean_over_seeds)" in note
    headers, data = table["headers"], table["data"]
    assert headers[:5] == ["model", "method", "iteration", "seeds", "Average"]
    by_model = {row[0]: dict(zip(headers, row)) for row in data}
    rows = [r for r in BENCHMARK_ROWS if r["metric"] == "mean_over_seeds"]
    assert set(by_model) == {"SFT: tiny-sft" if r["model"] == "sft" else r["model"] for r in rows}
    for row in rows:
        shown = by_model["SFT: tiny-sft" if row["model"] == "sft" else row["model"]]
        assert shown[BENCH_REWARD] == pytest.approx(row["value"]) == pytest.approx(shown["Average"])
    # The method filter and the column chooser.
    table, note, _plot = client.predict(MULTI, ["SPAC"], ["seeds", BENCH_REWARD], api_name="/ranking")
    assert table["headers"] == ["model", "method", "seeds", "Average", BENCH_REWARD]
    assert {row[1] for row in table["data"]} == {"SPAC", "SFT"}


def test_client_generates_with_two_allowed_models(client, launched, settings):
    job = client.submit("the cat sits", SFT, SPAC1, 12, 1.0, api_name="/generate")
    left, right, left_reward, right_reward = job.result(timeout=60)
    assert left.strip() and right.strip()
    # The true reward of each answer, computed by the task's program on exactly that answer (through its metric).
    from spac_hf.tasks.reviews import reward

    for text, shown in ((left, left_reward), (right, right_reward)):
        assert f"True reward (reviews task): {reward('the cat sits', text):+.3f}" in shown
    assert len(job.outputs()) >= 2  # streamed: more than the final update came back
    # Queued, one generation at a time, and a bounded queue.
    (generate,) = [fn for fn in launched.fns.values() if fn.api_name == "generate"]
    assert generate.queue and generate.concurrency_limit == settings.generation_concurrency == 1
    assert launched._queue.max_size == settings.queue_size


@pytest.mark.parametrize("label", ["no such model", "gpt2", "../src/spac_hf/default/model", "/etc", ""])
def test_client_cannot_choose_a_model_outside_the_allowlist(client, launched, label, tiny_model_dir):
    from gradio_client.exceptions import AppError

    for left, right in ((label, SFT), (SFT, label)):
        with pytest.raises(AppError):
            client.predict("the cat sits", left, right, 8, 1.0, api_name="/generate")
    with pytest.raises(AppError):
        client.predict("the cat sits", tiny_model_dir, SFT, 8, 1.0, api_name="/generate")


def test_handler_itself_rejects_labels_outside_the_allowlist(settings, tiny_model_dir):
    # Gradio's dropdown already refuses values it does not list; the handler must not rely on it.
    loads = []
    cache = ModelCache(2, loader=loads.append)
    side_by_side = SideBySide(models.load_allowlist(settings.models_file), settings, cache)
    for label in ("gpt2", tiny_model_dir, "tiny", None, ["a"]):
        with pytest.raises(RequestRejected, match="Unknown model"):
            next(side_by_side.run("hello", label, SFT, 8, 1.0))
        with pytest.raises(RequestRejected, match="Unknown model"):
            next(side_by_side.run("hello", SFT, label, 8, 1.0))
    assert loads == []  # rejected before anything was loaded


def test_client_rejects_long_prompts_and_out_of_range_options(client, settings):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Prompt too long: 201 characters"):
        client.predict("x" * (settings.max_prompt_chars + 1), SFT, SPAC1, 8, 1.0, api_name="/generate")
    # Under the character cap but over the token cap: the byte-level tokenizer spends bytes on unknown characters.
    with pytest.raises(AppError, match=r"tokens, at most 24"):
        client.predict("\u2603" * 60, SFT, SPAC1, 8, 1.0, api_name="/generate")
    with pytest.raises(AppError):
        client.predict("the cat", SFT, SPAC1, settings.max_new_tokens + 1, 1.0, api_name="/generate")
    with pytest.raises(AppError, match="Write a prompt"):
        client.predict("   ", SFT, SPAC1, 8, 1.0, api_name="/generate")


def test_documented_deploy_command_uploads_the_space(hub_server, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    readme = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    front_matter = yaml.safe_load(readme.split("---")[1])
    assert front_matter["sdk"] == "gradio" and front_matter["app_file"] == "app.py"
    import gradio

    assert front_matter["sdk_version"] == gradio.__version__  # the version the tests ran
    (command,) = [line for line in readme.splitlines() if line.startswith("hf upload <user>/spac-hf-space")]
    (SPACE_DIR / "__pycache__").mkdir(exist_ok=True)  # there after any local run; must not be uploaded
    hf = shutil.which("hf") or str(Path(sys.executable).with_name("hf"))
    args = [hf, *shlex.split(command.replace("<user>", USER))[1:]]
    subprocess.run(args, cwd=SPACE_DIR.parent, check=True, capture_output=True, timeout=60)
    uploaded = set(HfApi().list_repo_files(f"{USER}/spac-hf-space", repo_type="space"))
    expected = {p.name for p in SPACE_DIR.iterdir() if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", "models.yaml"} <= expected
    assert uploaded - {".gitattributes"} == expected


# ---------------------------------------------------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------------------------------------------------


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot (also to $SPAC_SCREENSHOTS when set, to look at them) and check it is not blank."""
    import os

    from PIL import Image

    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SPAC_SCREENSHOTS"):
        Path(os.environ["SPAC_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["SPAC_SCREENSHOTS"]) / path.name)
    colours = Image.open(path).convert("L").getextrema()
    assert colours[1] - colours[0] > 100, f"{name}.png is blank"
    return path


def _column_texts(table, column: int, rows: int) -> list[str]:
    return [table.get_by_test_id(f"cell-{i}-{column}").inner_text().strip() for i in range(rows)]


@pytest.mark.browser
def test_browser_rankings_filters_plots_and_side_by_side(launched, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (CI: `apt-get install -y chromium`)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(launched.local_url, wait_until="domcontentloaded")
            table = page.locator("#leaderboard")
            expect(page.locator("#ranking").get_by_label(MULTI)).to_be_checked(timeout=20_000)
            expect(page.locator(".progress-text, .eta-bar")).to_have_count(0, timeout=20_000)  # the page has loaded
            # The means over 5 seeds first, best mean first (never the widest interval): cells are `cell-<row>-<col>`.
            expect(table.get_by_test_id("cell-0-0")).to_have_text("iterative_dpo-iter2", timeout=20_000)
            means = [r for r in BENCHMARK_ROWS if r["metric"] == "mean_over_seeds"]
            shown = _column_texts(table, 0, len(means))
            assert shown.index("spac-iter3") < shown.index("spac-iter2")
            assert _column_texts(table, 1, len(means)).count("SFT") == 1
            _screenshot(page, tmp_path, "leaderboard_multi_seed")

            # The single runs are their own ranking.
            page.locator("#ranking").get_by_label(SINGLE).check()
            expect(table.get_by_test_id("cell-0-0")).to_have_text("runs/spac/iter_2", timeout=20_000)
            expect(page.locator("#average-note")).to_contain_text("true_reward (mean)")
            # Method filter: without SPAC, only iterative DPO and the SFT model remain.
            page.locator("#method-filter").get_by_label("SPAC").uncheck()
            expect(table.get_by_test_id("cell-0-0")).to_have_text("runs/dpo/iter_1", timeout=20_000)
            assert set(_column_texts(table, 1, 3)) == {"iterative DPO", "SFT"}
            # Column chooser: the intervals go.
            expect(table).to_contain_text("± 95% CI")
            page.locator("#column-chooser").get_by_label("± 95% CI").uncheck()
            expect(table).not_to_contain_text("± 95% CI", timeout=20_000)
            _screenshot(page, tmp_path, "leaderboard_single_filtered")

            page.get_by_role("tab", name="Plots").click()
            figure = page.locator(".matplotlib img").first  # Gradio's matplotlib figure
            expect(figure).to_be_visible(timeout=20_000)
            assert figure.evaluate("img => img.naturalWidth") > 500
            _screenshot(page, tmp_path, "plots")

            page.get_by_role("tab", name="Side by side").click()
            page.locator("#prompt textarea").fill("Review of the blue camera:")
            page.locator("#generate").click()
            for side in ("left", "right"):
                expect(page.locator(f"#{side}-reward")).to_contain_text("True reward (reviews task)", timeout=60_000)
            first = page.locator("#left-output textarea").input_value()
            assert first.strip() and page.locator("#right-output textarea").input_value().strip()
            _screenshot(page, tmp_path, "side_by_side")
            # A rejected prompt clears the previous answers: none stays on screen under the error as if it answered.
            page.locator("#prompt textarea").fill("x" * 201)
            page.locator("#generate").click()
            expect(page.get_by_text("Prompt too long").first).to_be_visible(timeout=20_000)
            for side in ("left", "right"):
                expect(page.locator(f"#{side}-output textarea")).to_have_value("", timeout=20_000)
                expect(page.locator(f"#{side}-reward")).not_to_contain_text("True reward")
            page.locator("#prompt textarea").fill("Review of the blue camera:")
            page.locator("#generate").click()
            expect(page.locator("#left-reward")).to_contain_text("True reward (reviews task)", timeout=60_000)
            first = page.locator("#left-output textarea").input_value()
            page.locator("#regenerate").click()
            page.wait_for_function(
                "(first) => { const v = document.querySelector('#left-output textarea')?.value;"
                " return v && v !== first && document.querySelector('#left-reward')?.innerText.includes('True'); }",
                arg=first, timeout=60_000,
            )  # fmt: skip
        finally:
            browser.close()
