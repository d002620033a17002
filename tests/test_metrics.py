"""The tasks' rewards as `evaluate` metrics (metrics/<name>/): offline loading, equality with the task's function,
clear errors on malformed input, the Space's app, and the push to a metric Space through the real Hub client."""

from __future__ import annotations

import importlib.util
import random
import runpy
from pathlib import Path

import pytest
import yaml
from hub_server import USER


evaluate = pytest.importorskip("evaluate")

ROOT = Path(__file__).resolve().parent.parent
METRICS = ROOT / "metrics"
REVIEW = METRICS / "review_reward"


def _load_push_command():
    """metrics/push.py, the documented push command (a script beside the metric folders, not a package module)."""
    spec = importlib.util.spec_from_file_location("spac_hf_metrics_push", METRICS / "push.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


push = _load_push_command()
VENDORED, check_metric_folder, push_main = push.VENDORED, push.check_metric_folder, push.main


@pytest.fixture(scope="module")
def review_metric():
    return evaluate.load(str(REVIEW))


def review_cases(n: int = 300) -> tuple[list[str], list[str]]:
    """Responses drawn as the SFT corpus draws them (on and off topic, repeated, too long) plus hand-made edge cases."""
    from spac_hf.tasks import all_prompts, sample_review

    rng = random.Random(0)
    prompts = rng.sample(all_prompts(), n)
    responses = [sample_review(rng, p) for p in prompts]
    extra = [
        ("Review of the blue camera:", ""),  # empty: the minimum
        ("Review of the blue camera:", "   "),
        ("Review of the blue camera:", " The camera is great. I love it"),  # cut off: no sentence end
        ("Review of the blue camera:", " zork blorp quux flim."),  # gibberish
        ("Write anything:", " The lamp is great."),  # a prompt naming no product
        ("Review of the red kettle:", " The kettle is great great. The kettle is great great."),
    ]
    return prompts + [p for p, _ in extra], responses + [r for _, r in extra]


def test_loads_offline_from_the_local_folder(review_metric, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert review_metric.name == "review_reward"
    info = review_metric.info
    assert "true reward" in info.description and "@misc{spachf" in info.citation
    assert set(info.features) == {"predictions", "prompts"}
    assert "predictions (`list` of `str`)" in info.inputs_description


def test_equals_the_task_reward_function(review_metric):
    from spac_hf.tasks import reward

    prompts, responses = review_cases()
    result = review_metric.compute(predictions=responses, prompts=prompts)
    expected = [reward(p, r) for p, r in zip(prompts, responses)]
    assert result["rewards"] == expected  # exactly: the same code
    assert result["mean_reward"] == sum(expected) / len(expected)
    assert result["degenerate_fraction"] == sum(r == -1.0 for r in expected) / len(expected)
    assert len(set(expected)) > 20 and min(expected) == -1.0 and max(expected) > 0.7  # the cases span the range


def test_the_metric_carries_the_library_code_verbatim():
    for name, copies in VENDORED.items():
        for copy, original in copies.items():
            assert (METRICS / name / copy).read_bytes() == (ROOT / original).read_bytes(), (
                f"metrics/{name}/{copy} is stale: cp {original} metrics/{name}/{copy}"
            )


def test_batches_add_up_to_one_compute(review_metric):
    prompts, responses = review_cases(40)
    metric = evaluate.load(str(REVIEW))
    for start in range(0, len(prompts), 16):
        metric.add_batch(predictions=responses[start : start + 16], prompts=prompts[start : start + 16])
    assert metric.compute()["rewards"] == review_metric.compute(predictions=responses, prompts=prompts)["rewards"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predictions": [" It is good.", " It is bad."], "prompts": ["Review of the red lamp:"]},
         r"Mismatch in the number of predictions \(2\) and prompts \(1\)"),
        ({"predictions": [" It is good."], "prompts": [""]}, r"prompts\[0\] is an empty string"),
        ({"predictions": [" It is good.", " ok."], "prompts": ["Review of the red lamp:", "  "]},
         r"prompts\[1\] is an empty string"),
        ({"predictions": [" It is good.", None], "prompts": ["Review of the red lamp:"] * 2},
         r"predictions\[1\] is None, not a string"),
        ({"predictions": [], "prompts": []}, "nothing to score"),
        ({"predictions": [" It is good."], "references": ["Review of the red lamp:"]},
         r"inputs are missing: \['prompts'\]"),
    ],
)  # fmt: skip
def test_malformed_inputs_get_a_clear_error(review_metric, kwargs, message):
    with pytest.raises(ValueError, match=message):
        review_metric.compute(**kwargs)


def test_metric_card_header():
    readme = (REVIEW / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(readme.split("---", 2)[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert {"evaluate", "metric"} <= set(header["tags"])
    assert header["description"].strip()
    lines = (REVIEW / "requirements.txt").read_text().splitlines()
    requirements = [line.split(">=")[0] for line in lines if line.strip() and not line.startswith("#")]
    assert requirements == ["evaluate", "datasets"]  # the Space needs nothing of spac-hf


def test_app_launches_the_evaluate_widget_on_this_metric(monkeypatch):
    """app.py loads the metric from its own folder and hands it to `launch_gradio_widget` (gradio 3 on the Hub;
    gradio 6 here lacks the `gr.inputs` API that widget uses, so the launch itself is replaced)."""
    import evaluate.utils

    launched = []
    monkeypatch.setattr(evaluate.utils, "launch_gradio_widget", launched.append)
    runpy.run_path(str(REVIEW / "app.py"), run_name="__main__")
    (module,) = launched
    result = module.compute(predictions=[" The camera is great. I love it."], prompts=["Review of the blue camera:"])
    assert result["rewards"] == [pytest.approx(0.7 * 2 / 3 + 0.3)]


def test_push_checks_the_folder_first(tmp_path):
    with pytest.raises(ValueError, match="missing app.py"):
        bad = tmp_path / "review_reward"
        bad.mkdir()
        for name in ("review_reward.py", "README.md", "requirements.txt"):
            (bad / name).write_text("---\n")
        check_metric_folder(bad)
    stale = tmp_path / "stale" / "review_reward"
    stale.parent.mkdir()
    import shutil

    shutil.copytree(REVIEW, stale)
    (stale / "reviews.py").write_text("# an old copy\n")
    with pytest.raises(ValueError, match="differs from src/spac_hf/tasks/reviews.py"):
        check_metric_folder(stale)


def test_push_to_a_metric_space_and_load_it_back(hub_server, monkeypatch, tmp_path, capsys):
    assert push_main([str(REVIEW), "--repo-id", "review_reward"]) == 0
    assert f"/spaces/{USER}/review_reward/commit/" in capsys.readouterr().out
    repo_id = f"{USER}/review_reward"
    files = hub_server.files(repo_id, repo_type="space")
    expected = {p.name: p.read_bytes() for p in REVIEW.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert set(files) == set(expected) | {".gitattributes"}  # no __pycache__, nothing else
    assert all(files[name] == data for name, data in expected.items())
    assert not hub_server.unhandled

    # `evaluate.load("<namespace>/<name>")` fetches a metric from the Hub's Space: here from the local server.
    import evaluate.config

    monkeypatch.setattr(evaluate.config, "HUB_EVALUATE_URL", hub_server.url + "/spaces/{path}/resolve/{revision}/{name}")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", False)
    metric = evaluate.load(repo_id, cache_dir=str(tmp_path / "cache"))
    result = metric.compute(predictions=[" The camera is awful."], prompts=["Review of the blue camera:"])
    assert result["rewards"] == [pytest.approx(-0.05)]
    assert f"/spaces/{repo_id}/resolve/main/reviews.py" in hub_server.paths("GET")


def test_every_task_metric_names_an_existing_metric_folder():
    from spac_hf.tasks.metrics import TASK_METRICS, metric_fields

    for task, name in TASK_METRICS.items():
        check_metric_folder(METRICS / name)
        fields = metric_fields(task)
        assert fields["metric_type"] == f"spac-hf/{name}" and name in fields["metric_name"]
    assert metric_fields("arc_challenge") == {}
