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
from hub_server import USER, hub_server  # noqa: F401  (`hub_server` is the fixture)

from spac_hf.hub import RESULT_COLUMNS, push_results_dataset, save_results_dataset


SPACE_DIR = Path(__file__).resolve().parents[1] / "space"
sys.path.insert(0, str(SPACE_DIR))  # the Space's modules import each other by plain name, as on a Hub Space

import app  # noqa: E402
import models  # noqa: E402
import plots  # noqa: E402
import results  # noqa: E402
from build import build_commands  # noqa: E402
from generation import ModelCache, RequestRejected, SideBySide  # noqa: E402
from settings import Settings  # noqa: E402


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
ALL_ROWS = SPAC_ROWS + DPO_ROWS


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    """Two results datasets, as the recipes write them (one per method), under one folder the Space searches."""
    root = tmp_path_factory.mktemp("space-results")
    for method, rows in (("spac", SPAC_ROWS), ("dpo", DPO_ROWS)):
        save_results_dataset(rows, root / "default" / method / "results", dataset_name=method, description="test")
    return root


@pytest.fixture(scope="module")
def models_file(tiny_model_dir, tmp_path_factory):
    """The allowlist: two differently initialised tiny models, one prompted through its chat template, one plain."""
    from helpers import build_model
    from transformers import AutoTokenizer

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


def test_leaderboard_has_one_row_per_model_sorted_by_average(results_root):
    frame, notes = results.load_results([results_root])
    assert len(frame) == len(ALL_ROWS) and "2 `data/results.jsonl` file(s)" in notes[0]
    table = results.leaderboard(frame)
    reward, arc = "true_reward (mean)", "arc_challenge (acc_norm, 25-shot)"
    assert list(table.columns) == ["model", "method", "iteration", "Average", reward, arc]
    assert list(table["model"]) == [
        "runs/spac/iter_2", "runs/spac/iter_1", "runs/dpo/iter_1", "runs/sft", "runs/dpo/iter_2",
    ]  # fmt: skip
    best = table.iloc[0]
    assert (best["method"], best["iteration"], best[reward], best[arc]) == ("spac", 2, 0.45, 0.25)
    assert best["Average"] == pytest.approx(0.35)
    sft = table[table["model"] == "runs/sft"].iloc[0]
    assert sft["method"] == "" and sft["iteration"] == 0  # the starting model has no method
    assert table[table["model"] == "runs/dpo/iter_1"][arc].isna().all()  # not evaluated: an empty cell


def test_suite_averages_are_shown_but_not_averaged_again():
    rows = [result_row("m", "spac", 1, task, "acc", value) for task, value in (("a", 0.2), ("b", 0.4))]
    rows.append(result_row("m", "spac", 1, "suite", "average", 0.9))  # inconsistent on purpose: must not count
    table = results.leaderboard(results.rows_frame(rows))
    assert table.loc[0, "Average"] == pytest.approx(0.3) and table.loc[0, "suite (average)"] == 0.9


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
    expected = results.rows_frame(ALL_ROWS)
    pd.testing.assert_frame_equal(frame.sort_values(["model", "task"]), expected.sort_values(["model", "task"]))
    # A dataset that is not there leaves the page up, with the reason instead of rows.
    frame, notes = results.load_results([], dataset_id=f"{USER}/missing")
    assert frame.empty and "could not be loaded" in notes[0]


def test_plot_lines_start_from_the_sft_model(results_root):
    frame, _ = results.load_results([results_root])
    curves = plots.iteration_curves(frame)
    reward = curves["true_reward (mean)"]
    assert list(reward) == ["spac", "dpo"]
    assert reward["spac"]["value"].tolist() == [0.10, 0.30, 0.45]
    assert reward["dpo"]["iteration"].tolist() == [0, 1, 2]
    assert len(plots.results_figure(frame).axes) == 2
    assert len(plots.results_figure(frame.iloc[0:0]).axes) == 1  # "no results yet" panel


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
    commands = [" ".join(c[-3:]) for c in build_commands(tmp_path)]
    assert commands[0].endswith("recipes/default/build_assets.py")  # no shipped model in this fake checkout
    assert commands[1:] == [f"accelerate launch recipes/{m}.py" for m in ("spac", "dpo", "spin")]


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
    assert local.results_dirs == (SPACE_DIR.parent / "outputs" / "default", SPACE_DIR.parent / "results" / "ground_truth")
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
    table, sources, _plot = client.predict(api_name="/results")
    assert "2 `data/results.jsonl` file(s)" in sources
    headers, data = table["headers"], table["data"]
    assert headers[:4] == ["model", "method", "iteration", "Average"]
    by_model = {row[0]: dict(zip(headers, row)) for row in data}
    assert set(by_model) == {row["model"] for row in ALL_ROWS}
    for row in ALL_ROWS:
        column = results.task_column(row["task"], row["metric"], row["num_fewshot"])
        assert by_model[row["model"]][column] == pytest.approx(row["value"])


def test_client_generates_with_two_allowed_models(client, launched, settings):
    job = client.submit("the cat sits", SFT, SPAC1, 12, 1.0, api_name="/generate")
    left, right = job.result(timeout=60)
    assert left.strip() and right.strip()
    assert len(job.outputs()) >= 2  # streamed: more than the final update came back
    # Queued, one generation at a time, and a bounded queue.
    (generate,) = [fn for fn in launched.fns.values() if fn.api_name == "generate"]
    assert generate.queue and generate.concurrency_limit == settings.generation_concurrency == 1
    assert launched._queue.max_size == settings.queue_size


@pytest.mark.parametrize("label", ["no such model", "gpt2", "../recipes/default/model", "/etc", ""])
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


@pytest.mark.browser
def test_browser_shows_table_and_fills_both_panes(launched, tmp_path):
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
            # Best average first; every model of the results rows has its row (cells are `cell-<row>-<column>`).
            expect(table.get_by_test_id("cell-0-0")).to_have_text("runs/spac/iter_2", timeout=20_000)
            models_shown = {table.get_by_test_id(f"cell-{i}-0").inner_text().strip() for i in range(5)}
            assert models_shown == {row["model"] for row in ALL_ROWS}
            page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

            page.get_by_role("tab", name="Side by side").click()
            page.locator("#prompt textarea").fill("the dog runs")
            page.locator("#generate").click()
            page.wait_for_function(
                """() => ['#left-output', '#right-output'].every(
                    id => document.querySelector(id + ' textarea')?.value.trim().length > 0)""",
                timeout=30_000,
            )
            page.screenshot(path=str(tmp_path / "side_by_side.png"), full_page=True)
        finally:
            browser.close()
