"""Result writers record models and folders by name or relative to the checkout, never by the path of the machine
that made them (issue 20): one helper, `spac_hf.utils.recorded_path`, used by every writer."""

import os

import pytest

from spac_hf.utils import recorded_path


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A checkout at an absolute path of this machine, the current directory (as the commands run), holding a model."""
    model = tmp_path / "checkout" / "outputs" / "smollm2" / "model"
    model.mkdir(parents=True)
    elsewhere = tmp_path / "scratch" / "SmolLM2-135M-Instruct"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "checkout")
    return model, elsewhere


def test_recorded_path_names_a_model_and_keeps_a_hub_id(machine):
    model, elsewhere = machine
    assert recorded_path(model) == "outputs/smollm2/model"  # inside the checkout: relative to it
    assert recorded_path("./outputs/smollm2/../smollm2/model") == "outputs/smollm2/model"
    assert recorded_path(elsewhere) == "SmolLM2-135M-Instruct"  # outside it: the model's name
    assert recorded_path(model, root=model.parent.parent) == "smollm2/model"
    assert recorded_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_writers_given_absolute_paths_record_no_machine_path(machine):
    from spac_hf.hub import build_model_card, results_dataset_rows
    from spac_hf.scripts.compare import comparison_markdown, comparison_rows

    from benchmarks.leaderboard.models import ModelSpec

    model, elsewhere = machine
    machine_root = str(model.parents[3])  # what must appear nowhere
    rows = results_dataset_rows(
        {"reviews": {"mean": 0.3}}, model=str(model), method="spac", iteration=1, base_model=str(elsewhere)
    )
    assert (rows[0]["model"], rows[0]["base_model"]) == ("outputs/smollm2/model", "SmolLM2-135M-Instruct")

    card = build_model_card(
        model_name="tiny-spac-iter1",
        base_model=str(elsewhere),
        datasets=[str(model)],
        method="spac",
        iteration=1,
        num_iterations=2,
        hyperparameters={"beta": 0.1},
        repo_id=recorded_path(model),
    )
    assert "`SmolLM2-135M-Instruct`" in str(card) and "`outputs/smollm2/model`" in str(card)

    scores = {"true_reward_reviews": {"mean": 0.1, "mean_stderr": 0.02}}
    evaluations = {str(t): {"results": scores} for t in (0, 1)}
    run = {
        "summary": {"method": "spac", "iterates": [{"iteration": 1}], "evaluations": evaluations},
        "wall_seconds": 3.0,
        "output_dir": str(model.parent / "spac"),
    }
    compared = comparison_rows({"spac": run})
    assert compared["spac"]["output_dir"] == "outputs/smollm2/spac"

    spec = ModelSpec(label="base", model=str(elsewhere))
    written = [str(card), repr(rows), repr(compared), comparison_markdown(compared, 0), repr(spec.to_dict())]
    assert not [text for text in written if machine_root in text or os.sep + "tmp" + os.sep in text]


def test_leaderboard_writer_records_a_generated_tasks_config_source_by_the_cache_root(machine, tmp_path, monkeypatch):
    """lm-eval writes each task's `config_source`: for the tasks built from fetched data, a YAML in spac-hf's cache
    root, for lm-eval's own tasks a file of the installed package. Neither may name the machine's layout."""
    import json

    from benchmarks.leaderboard.run import write_json

    cache = tmp_path / "cache"
    monkeypatch.setenv("SPAC_HF_CACHE", str(cache))
    generated = cache / "lm_eval_tasks" / "leaderboard_ifeval.yaml"
    builtin = tmp_path / "venv" / "lm_eval" / "tasks" / "hellaswag.yaml"
    output = {
        "results": {"leaderboard_ifeval": {"inst_level_strict_acc,none": 0.3}},
        "configs": {
            "leaderboard_ifeval": {"metadata": {"version": 3.0, "config_source": str(generated)}},
            "hellaswag": {"metadata": {"config_source": str(builtin)}},
            "no_metadata": {"task": "x"},
        },
    }
    path = tmp_path / "checkout" / "base.json"
    write_json(path, output)
    written = json.loads(path.read_text(encoding="utf-8"))
    sources = {name: c.get("metadata", {}).get("config_source") for name, c in written["configs"].items()}
    assert sources == {
        "leaderboard_ifeval": "<spac-hf cache root>/lm_eval_tasks/leaderboard_ifeval.yaml",
        "hellaswag": "hellaswag.yaml",
        "no_metadata": None,
    }
    assert str(tmp_path) not in path.read_text(encoding="utf-8")
