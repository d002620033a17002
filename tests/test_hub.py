"""Hub publishing: model cards, pushing model folders, and results datasets, end to end with the real client.

The round trips run `huggingface_hub` against the local server in `hub_server.py` (see its docstring for the
endpoints) and check what arrived there, byte for byte, then download it back the way a user would.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError

from spac_hf.hub import (
    RESULT_COLUMNS,
    build_model_card,
    push_folder,
    push_results_dataset,
    results_dataset_rows,
    save_model_card,
    save_results_dataset,
    validate_results_rows,
)

from hub_server import FAKE_TOKEN, USER


BASE = "alignment-handbook/zephyr-7b-sft-full"
DATA = "HuggingFaceH4/ultrafeedback_binarized"
HYPERPARAMETERS = {"beta": 0.1, "lambda": 1.0, "data_response": "average", "learning_rate": 5e-7}
EVAL_ROWS = [
    {
        "task": "arc_challenge",
        "metric": "acc_norm",
        "value": 0.61,
        "stderr": 0.014,
        "num_fewshot": 25,
        "dataset_name": "AI2 Reasoning Challenge (25-Shot)",
        "dataset_type": "ai2_arc",
    },
    {"task": "ground_truth_reward", "metric": "reward", "value": -0.25, "dataset_name": "held-out prompts"},
]


def card_kwargs(**overrides):
    kwargs = dict(
        model_name="zephyr-7b-spac-iter2",
        base_model=BASE,
        datasets=[DATA],
        method="spac",
        iteration=2,
        num_iterations=3,
        hyperparameters=HYPERPARAMETERS,
        repo_id=f"{USER}/zephyr-7b-spac-iter2",
    )
    return {**kwargs, **overrides}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---", 2)[1])


def local_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, leaving out the client's `.cache/huggingface` bookkeeping."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(folder).parts
    }


# --------------------------------------------------------------------------------------------------------------------
# Model cards (no network)
# --------------------------------------------------------------------------------------------------------------------


def test_model_card_metadata_and_body():
    card = build_model_card(**card_kwargs(eval_results=EVAL_ROWS, license="apache-2.0"))
    meta = front_matter(str(card))
    assert meta["base_model"] == BASE
    assert meta["datasets"] == [DATA]
    assert meta["library_name"] == "transformers"
    assert meta["license"] == "apache-2.0"
    assert meta["tags"] == ["trl", "spac-hf", "spac", "self-play"]

    # model-index: one entry per (task, dataset), in the Open LLM Leaderboard's shape.
    (index,) = meta["model-index"]
    assert index["name"] == "zephyr-7b-spac-iter2"
    arc, reward = index["results"]
    assert arc["task"] == {"type": "text-generation"}
    arc_dataset = {"name": "AI2 Reasoning Challenge (25-Shot)", "type": "ai2_arc", "args": {"num_few_shot": 25}}
    assert arc["dataset"] == arc_dataset
    assert arc["metrics"] == [{"type": "acc_norm", "value": 0.61}]
    assert reward["dataset"]["name"] == "held-out prompts"
    assert reward["metrics"] == [{"type": "reward", "value": -0.25}]
    # ... and huggingface_hub reads it back as the same EvalResults.
    results = ModelCard(str(card)).data.eval_results
    assert [(r.dataset_type, r.metric_type, r.metric_value) for r in results] == [
        ("ai2_arc", "acc_norm", 0.61),
        ("ground_truth_reward", "reward", -0.25),
    ]

    text = card.text
    assert "iterate 2 of 3" in text and "SPAC (Self-Play with Adversarial Critic)" in text and BASE in text
    assert "| beta | 0.1 |" in text and "| lambda | 1.0 |" in text and "| data_response | average |" in text
    assert "| iteration | 2 |" in text and "| num_iterations | 3 |" in text
    assert f'pipeline("text-generation", model="{USER}/zephyr-7b-spac-iter2")' in text
    assert "## Evaluation results" in text and "| arc_challenge | acc_norm | 0.61 | 0.014 | 25 |" in text
    assert "@article{ji2024spac" in text and "arXiv:2406.04274" in text and "Kulkarni" in text
    assert "@software{vonwerra2020trl" in text
    assert "chen2024spin" not in text and "rafailov2023dpo" not in text


def test_a_true_reward_result_names_the_evaluate_metric_that_computed_it():
    rows = [{"task": "true_reward_reviews", "metric": "degenerate_fraction", "value": 0.25}]
    (result,) = ModelCard(str(build_model_card(**card_kwargs(eval_results=rows)))).data.eval_results
    assert (result.metric_type, result.metric_name, result.metric_value) == (
        "spac-hf/review_reward", "degenerate_fraction (evaluate metric spac-hf/review_reward)", 0.25
    )  # fmt: skip


@pytest.mark.parametrize(
    "method, tags, citation",
    [
        ("spin", ["trl", "spac-hf", "spin", "self-play"], "@article{chen2024spin"),
        ("dpo", ["trl", "spac-hf", "dpo"], "@inproceedings{rafailov2023dpo"),
    ],
)
def test_model_card_baselines_without_eval_results(method, tags, citation):
    card = build_model_card(**card_kwargs(method=method))
    meta = front_matter(str(card))
    assert meta["tags"] == tags
    assert "model-index" not in meta and "license" not in meta
    assert "## Evaluation results" not in card.text
    assert citation in card.text and "@article{ji2024spac" in card.text and "@software{vonwerra2020trl" in card.text
    if method == "dpo":
        assert "iterative [DPO" in card.text  # T = 3 iterations of DPO, each from the previous iterate


def test_spac_trainer_writes_the_same_card_as_the_loop(tiny_model_dir, make_args):
    """One card path: `SPACTrainer.create_model_card` (TRL calls it at every checkpoint and push) writes the card of
    `spac_hf.hub`, with the method's tags (also the trainer's `_tag_names`), its paper and BibTeX, and TRL's extras."""
    from datasets import Dataset

    from spac_hf import SPACTrainer
    from spac_hf.methods import METHODS, SPAC_BIBTEX

    from helpers import preference_rows

    rows = [{**row, "generated": row["chosen"]} for row in preference_rows(4)]
    args = make_args()
    trainer = SPACTrainer(tiny_model_dir, args=args, train_dataset=Dataset.from_list(rows))
    trainer.create_model_card(model_name="tiny-spac", dataset_name="local/tiny", tags=["hf_jobs"])

    card = ModelCard.load(Path(args.output_dir) / "README.md")
    loop_card = build_model_card(**card_kwargs())
    assert card.data.tags == [*loop_card.data.tags, "hf_jobs"] == [*METHODS["spac"].tags, "hf_jobs"]
    assert SPACTrainer._tag_names == METHODS["spac"].tags
    assert f"```bibtex\n{SPAC_BIBTEX}\n```" in card.text and SPAC_BIBTEX == SPACTrainer._paper["citation"]
    assert "| beta | 0.1 |" in card.text and "| lam | 1.0 |" in card.text and "iterate 1 of 1" in card.text


def test_model_card_keeps_local_paths_out_of_yaml(tmp_path):
    # The Hub rejects a `base_model` that is not a repo id; a local base is named in the text only, by its name (not
    # the path of the machine that wrote the card: spac_hf.utils.recorded_path).
    datasets = ["json", str(tmp_path / "d.jsonl"), DATA]
    card = build_model_card(**card_kwargs(base_model=str(tmp_path), datasets=datasets))
    meta = front_matter(str(card))
    assert "base_model" not in meta
    assert meta["datasets"] == [DATA]
    assert f"`{tmp_path.name}`" in card.text and str(tmp_path) not in card.text


def test_save_model_card_writes_readme(tmp_path):
    path = save_model_card(tmp_path, **card_kwargs(eval_results=EVAL_ROWS))
    assert path == tmp_path / "README.md"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left behind
    card = ModelCard.load(path)
    assert card.data.base_model == BASE and card.data.model_name == "zephyr-7b-spac-iter2"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"method": "ppo"}, "method must be one of"),
        ({"iteration": 4}, "iteration must be an integer in"),
        ({"num_iterations": 0}, "num_iterations must be"),
        ({"eval_results": [{"task": "arc", "metric": "acc"}]}, r"eval_results\[0\] is missing \['value'\]"),
        ({"eval_results": [{"task": "arc", "metric": "acc", "value": "0.5"}]}, "'value' must be a finite number"),
        ({"eval_results": [{"task": "arc", "metric": "acc", "value": 0.5, "shots": 5}]}, r"unknown keys \['shots'\]"),
    ],
)
def test_model_card_rejects_bad_arguments(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model_card(**card_kwargs(**overrides))


# --------------------------------------------------------------------------------------------------------------------
# Results rows (no network)
# --------------------------------------------------------------------------------------------------------------------

LM_EVAL_OUTPUT = {
    "results": {
        "arc_challenge": {"alias": "arc_challenge", "acc,none": 0.58, "acc_stderr,none": 0.01, "acc_norm,none": 0.61,
                          "acc_norm_stderr,none": 0.012},
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.3, "exact_match_stderr,strict-match": "N/A"},
    },
    "n-shot": {"arc_challenge": 25, "gsm8k": 5},
}  # fmt: skip


def test_results_rows_from_lm_eval_and_plain_mappings():
    model = f"{USER}/spac-iter1"
    rows = results_dataset_rows(LM_EVAL_OUTPUT, model=model, method="spac", iteration=1, base_model=BASE)
    assert [(r["task"], r["metric"], r["value"], r["stderr"], r["num_fewshot"]) for r in rows] == [
        ("arc_challenge", "acc", 0.58, 0.01, 25),
        ("arc_challenge", "acc_norm", 0.61, 0.012, 25),
        ("gsm8k", "exact_match,strict-match", 0.3, None, 5),
    ]
    assert all(list(r) == list(RESULT_COLUMNS) and r["iteration"] == 1 and r["base_model"] == BASE for r in rows)

    (reward,) = results_dataset_rows({"ground_truth_reward": {"reward": 1}}, model="base", iteration=0)
    assert reward["value"] == 1.0 and isinstance(reward["value"], float)  # one JSON type per column
    assert reward["method"] is None and reward["num_fewshot"] is None


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"model": "m", "task": "t", "metric": "acc"}, r"Result row 1 is missing \['value'\]"),
        ({"model": "m", "task": "t", "metric": "acc", "value": "0.5"}, "Result row 1: 'value' must be a finite"),
        ({"model": "m", "task": "t", "metric": "acc", "value": True}, "'value' must be a finite number"),
        ({"model": "m", "task": "t", "metric": "acc", "value": math.nan}, "'value' must be a finite number"),
        ({"model": "m", "task": "t", "metric": "acc", "value": 1, "score": 2}, r"Result row 1 has unknown keys"),
        ({"model": "m", "task": "t", "metric": "acc", "value": 1, "iteration": 1.5}, "'iteration' must be an integer"),
        ({"model": "m", "task": "t", "metric": "acc", "value": 1, "method": "ppo"}, "method must be one of"),
        ({"model": "m", "task": "t", "metric": "acc", "value": 0.2}, r"Result rows 0 and 1 are both for"),
    ],
)
def test_results_rows_validation_names_the_bad_row(bad_row, message):
    good = {"model": "m", "task": "t", "metric": "acc", "value": 0.1}
    with pytest.raises(ValueError, match=message):
        validate_results_rows([good, bad_row])


def test_save_results_dataset_layout(tmp_path):
    from datasets import load_dataset

    folder = tmp_path / "results"
    first = results_dataset_rows(LM_EVAL_OUTPUT, model="base", iteration=0)
    save_results_dataset(first, folder, dataset_name="spac-results", description="Test results.")
    second = results_dataset_rows({"arc_challenge": {"acc": 0.7}}, model="base", iteration=0)
    save_results_dataset(first + second, folder, dataset_name="spac-results", description="Test results.")  # replaces

    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "data/results.jsonl",
    ]
    meta = front_matter((folder / "README.md").read_text())
    data_files = [{"split": "train", "path": "data/results.jsonl"}]
    assert meta["configs"] == [{"config_name": "default", "data_files": data_files}]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(RESULT_COLUMNS)
    rows = load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "datasets-cache")).to_list()
    assert [(r["task"], r["metric"], r["value"]) for r in rows] == [
        ("arc_challenge", "acc", 0.58),
        ("arc_challenge", "acc_norm", 0.61),
        ("gsm8k", "exact_match,strict-match", 0.3),
        ("arc_challenge", "acc", 0.7),
    ]


def test_push_is_refused_offline_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeIsEnabled, match="HF_HUB_OFFLINE is set.*hf upload"):
        push_folder(tmp_path, f"{USER}/model")


# --------------------------------------------------------------------------------------------------------------------
# Round trips through the local Hub server
# --------------------------------------------------------------------------------------------------------------------


def save_tiny_model(folder: Path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return model


def test_push_model_folder_round_trip(hub_server, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "iter_1"
    model = save_tiny_model(folder)
    save_model_card(folder, **card_kwargs(model_name="tiny-spac-iter1", iteration=1, eval_results=EVAL_ROWS))
    repo_id = f"{USER}/tiny-spac-iter1"

    url = push_folder(folder, repo_id)

    assert url.startswith(f"{hub_server.url}/{repo_id}/commit/")
    # What arrived: every local file, byte for byte, the weights through LFS and the card as a regular file.
    sent = local_files(folder)
    assert "model.safetensors" in sent
    stored = hub_server.files(repo_id)
    assert {path: stored[path] for path in sent} == sent
    assert set(stored) - set(sent) == {".gitattributes"}  # the Hub's initial commit
    assert hub_server.lfs_files(repo_id) == {"model.safetensors"}
    head = hub_server.repo(repo_id).resolve("main")
    assert head.message == "Upload iter_1 with spac-hf" and url.endswith(head.oid)

    info = HfApi().model_info(repo_id)
    assert info.sha == head.oid
    assert info.card_data.base_model == BASE and "spac" in info.card_data.tags
    assert info.card_data.eval_results[0].metric_value == 0.61

    download = Path(snapshot_download(repo_id, local_dir=tmp_path / "download"))
    assert {path: data for path, data in local_files(download).items() if path != ".gitattributes"} == sent
    reloaded = AutoModelForCausalLM.from_pretrained(download)
    for (name, expected), (_, actual) in zip(model.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert torch.equal(expected, actual), name

    # Pushing the same folder again changes nothing: the client skips unchanged files and makes no commit.
    assert push_folder(folder, repo_id) == url
    assert len(hub_server.repo(repo_id).commits) == 2
    assert hub_server.unhandled == []


def test_push_private_and_without_namespace(hub_server, tmp_path):
    folder = tmp_path / "iter_2"
    folder.mkdir()
    save_model_card(folder, **card_kwargs(iteration=2))
    (folder / "notes.txt").write_text("iterate 2\n")

    push_folder(folder, "tiny-spac", private=True)

    repo = hub_server.repo(f"{USER}/tiny-spac")  # the namespace came from the token's user
    assert repo.private
    assert set(hub_server.files(repo.repo_id)) == {".gitattributes", "README.md", "notes.txt"}
    assert set(HfApi().list_repo_files(repo.repo_id)) == {".gitattributes", "README.md", "notes.txt"}
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the token
        HfApi(token=False).model_info(repo.repo_id)
    assert hub_server.unhandled == []


def test_push_results_dataset_round_trip(hub_server, tmp_path):
    from datasets import load_dataset

    rows = results_dataset_rows(LM_EVAL_OUTPUT, model=f"{USER}/spac-iter3", method="spac", iteration=3)
    rows += results_dataset_rows({"ground_truth_reward": {"reward": 0.42}}, model=f"{USER}/spac-iter3", iteration=3)
    repo_id = f"{USER}/spac-results"

    url = push_results_dataset(rows, repo_id, local_dir=tmp_path / "results", description="SPAC vs SPIN vs DPO.")

    assert url.startswith(f"{hub_server.url}/datasets/{repo_id}/commit/")
    stored = hub_server.files(repo_id, repo_type="dataset")
    assert set(stored) == {".gitattributes", "README.md", "data/results.jsonl"}
    assert stored["data/results.jsonl"] == (tmp_path / "results" / "data" / "results.jsonl").read_bytes()
    assert [json.loads(line) for line in stored["data/results.jsonl"].splitlines()] == rows
    card = front_matter(stored["README.md"].decode())
    assert card["pretty_name"] == "spac-results" and f'load_dataset("{repo_id}"' in stored["README.md"].decode()

    api = HfApi()
    listing = {(type(item).__name__, item.path) for item in api.list_repo_tree(repo_id, repo_type="dataset")}
    assert listing == {("RepoFile", ".gitattributes"), ("RepoFile", "README.md"), ("RepoFolder", "data")}
    one_file = hf_hub_download(repo_id, "data/results.jsonl", repo_type="dataset")  # into the fixture's cache
    assert Path(one_file).read_bytes() == stored["data/results.jsonl"]

    download = snapshot_download(repo_id, repo_type="dataset", local_dir=tmp_path / "download")
    loaded = load_dataset(download, split="train", cache_dir=str(tmp_path / "datasets-cache"))
    assert loaded.to_list() == rows
    assert loaded.features["value"].dtype == "float64" and loaded.features["num_fewshot"].dtype == "int64"
    assert hub_server.unhandled == []


def test_bad_repo_id_or_rows_fail_before_any_request(hub_server, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for bad in ("", "a/b/c", "bad name!", "ns/name.git", "ns/--name"):
        with pytest.raises(ValueError, match="repo_id"):
            push_folder(folder, bad)
    with pytest.raises(ValueError, match="repo_type must be one of"):
        push_folder(folder, f"{USER}/model", repo_type="modle")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        push_folder(tmp_path / "missing", f"{USER}/model")
    good_row, bad_row = {"model": "m", "task": "t", "metric": "acc", "value": 0.5}, {"model": "m", "task": "t2"}
    bad_rows = [good_row, bad_row]
    with pytest.raises(ValueError, match=r"Result row 1 is missing \['metric', 'value'\]"):
        push_results_dataset(bad_rows, f"{USER}/results", local_dir=tmp_path / "results")
    with pytest.raises(ValueError, match="Invalid repo_id"):
        push_results_dataset(bad_rows[:1], "a/b/c", local_dir=tmp_path / "results")

    assert hub_server.requests == []
    assert not (tmp_path / "results").exists()


def test_server_rejects_an_unknown_token(hub_server, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(token="hf_not_the_right_token").create_repo(f"{USER}/x")
    assert FAKE_TOKEN not in str(hub_server.requests)  # tokens are checked, never logged
    assert hub_server.repos == {}


def test_the_hub_module_loads_without_the_training_stack():
    """Cards, results datasets and pushes are for machines that never train: `import spac_hf.hub` loads no torch."""
    code = "import sys, spac_hf.hub; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
