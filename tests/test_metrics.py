"""The tasks' rewards as `evaluate` metrics (src/spac_hf/metrics/<name>/): offline loading, equality with the task's
function, clear errors on malformed input, the Space's app, and the push to a metric Space through the real Hub
client."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import runpy
from pathlib import Path

import pytest
import yaml

from hub_server import USER


evaluate = pytest.importorskip("evaluate")

ROOT = Path(__file__).resolve().parent.parent
METRICS = ROOT / "src" / "spac_hf" / "metrics"
REVIEW = METRICS / "review_reward"
IF_METRIC = METRICS / "instruction_following_reward"


def _load_push_command():
    """src/spac_hf/metrics/push.py, the documented push command (a script beside the metric folders, not a module)."""
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
    """Responses drawn as the SFT corpus draws them (on and off topic, repeated, too long), and edge cases."""
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
    # A metric Space cannot import spac-hf: it carries the paper's BibTeX, which must stay the library's one.
    from spac_hf.methods import SPAC_BIBTEX

    assert SPAC_BIBTEX in info.citation
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
    from spac_hf.tasks.reviews import reward_breakdown

    with_parts = review_metric.compute(predictions=responses[:40], prompts=prompts[:40], breakdown=True)
    assert with_parts["breakdowns"] == [reward_breakdown(p, r) for p, r in zip(prompts[:40], responses[:40])]
    assert "breakdowns" not in result


def test_the_evaluators_score_through_the_metric(monkeypatch, tiny_model_dir):
    """One scoring path: `mean_true_reward` takes its rewards from the metric, so a changed metric changes them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spac_hf.tasks import metrics, true_reward

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["Review of the blue camera:", "Review of the red phone:"]
    honest = true_reward.mean_true_reward(model, tokenizer, prompts, max_new_tokens=6)
    real_metric = metrics.load_metric("true_reward_reviews")

    class Shifted:
        def compute(self, **inputs):
            result = real_metric.compute(**inputs)
            return {**result, "rewards": [r + 1.0 for r in result["rewards"]]}

    monkeypatch.setattr(metrics, "load_metric", lambda task: Shifted())
    shifted = true_reward.mean_true_reward(model, tokenizer, prompts, max_new_tokens=6)
    assert shifted["per_prompt"] == pytest.approx([r + 1.0 for r in honest["per_prompt"]])


def test_the_metric_carries_the_library_code_itself():
    """One file: in the repository the metric's copy is a link to the library's module (the Space upload, evaluate's
    module cache and the wheel copy its content)."""
    for name, copies in VENDORED.items():
        for copy, original in copies.items():
            assert (METRICS / name / copy).is_symlink(), f"src/spac_hf/metrics/{name}/{copy} should link {original}"
            assert (METRICS / name / copy).resolve() == (ROOT / original).resolve()
            assert (METRICS / name / copy).read_bytes() == (ROOT / original).read_bytes()


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


@pytest.mark.parametrize(
    "folder, requirements",
    [(REVIEW, ["evaluate", "datasets"]), (IF_METRIC, ["evaluate", "datasets", "lm-eval[ifeval]"])],
)
def test_metric_card_header(folder, requirements):
    readme = (folder / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(readme.split("---", 2)[1])
    assert header["title"] == folder.name
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert {"evaluate", "metric"} <= set(header["tags"])
    assert header["description"].strip()
    lines = (folder / "requirements.txt").read_text().splitlines()
    names = [re.split(r"[<>=]", line)[0] for line in lines if line.strip() and not line.startswith("#")]
    assert names == requirements  # the Space needs nothing of spac-hf
    check_metric_folder(folder)


@pytest.mark.parametrize("name", ["review_reward", "instruction_following_reward"])
def test_app_launches_the_evaluate_widget_on_this_metric(monkeypatch, name, request):
    """app.py loads the metric from its own folder and hands it to `launch_gradio_widget` (gradio 3 on the Hub;
    gradio 6 here lacks the `gr.inputs` API that widget uses, so the launch itself is replaced)."""
    import evaluate.utils

    inputs = {
        "review_reward": {"predictions": [" The camera is great. I love it."],
                          "prompts": ["Review of the blue camera:"]},
        "instruction_following_reward": {"predictions": ["all lower case."], "prompts": ["Say something."],
                                         "constraints": [LOWER]},
    }[name]  # fmt: skip
    if name == "instruction_following_reward":
        request.getfixturevalue("if_task")  # the Punkt data, offline
    launched = []
    monkeypatch.setattr(evaluate.utils, "launch_gradio_widget", launched.append)
    runpy.run_path(str(METRICS / name / "app.py"), run_name="__main__")
    (module,) = launched
    assert module.name == name
    expected = 0.7 * 2 / 3 + 0.3 if name == "review_reward" else 1.0
    assert module.compute(**inputs)["rewards"] == [pytest.approx(expected)]


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

    url = hub_server.url + "/spaces/{path}/resolve/{revision}/{name}"
    monkeypatch.setattr(evaluate.config, "HUB_EVALUATE_URL", url)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", False)
    metric = evaluate.load(repo_id, cache_dir=str(tmp_path / "cache"))
    result = metric.compute(predictions=[" The camera is awful."], prompts=["Review of the blue camera:"])
    assert result["rewards"] == [pytest.approx(-0.05)]
    assert f"/spaces/{repo_id}/resolve/main/reviews.py" in hub_server.paths("GET")


def test_every_task_metric_names_an_existing_metric_folder():
    from spac_hf.tasks.metrics import TASK_METRICS, metric_fields

    for task, name in TASK_METRICS.items():
        check_metric_folder(METRICS / name)
        fields = metric_fields(task, "degenerate_fraction")
        assert fields["metric_type"] == f"spac-hf/{name}"
        assert fields["metric_name"] == f"degenerate_fraction (evaluate metric spac-hf/{name})"
    assert metric_fields("arc_challenge") == {}


# ------------------------------------------------------------------------------------------- instruction following


@pytest.fixture(scope="module")
def if_task():
    task = pytest.importorskip("spac_hf.tasks.instruction_following")
    from benchmarks.eval_data.fetch import ensure_punkt

    ensure_punkt()  # NLTK's Punkt data on NLTK_DATA, as the metric's card tells offline users to do
    return task


@pytest.fixture(scope="module")
def if_metric(if_task):
    return evaluate.load(str(IF_METRIC))


def if_responses(base: str) -> list[str]:
    """Responses that follow or break the registry's usual constraints in different ways."""
    body = base.strip().splitlines()[0][:200] or "A reply."
    return [
        body.lower().replace(",", ""),
        body.upper(),
        f'"{body}"',
        f"<<A Title>>\n{body}\n\nP.S. thanks.",
        "* one point\n* another point\n* a third point",
        '{"answer": "' + body.replace('"', "") + '"}',
        "SECTION 1\nfirst part.\nSECTION 2\nsecond part. [name] at [address].",
        " ".join(["word"] * 350) + ". Is there anything else I can help with?",
        "My answer is yes.",
        "",
    ]


def test_instruction_following_metric_equals_the_task_reward(if_task, if_metric):
    from benchmarks.instruction_following.data import build_prompts

    rows = build_prompts(seed=0)[::40]  # 39 real prompts, every kind of constraint the registry draws
    cases = [(row, r) for i, row in enumerate(rows) for r in if_responses(row["base_prompt"])[i % 3 :: 3]]
    hand = {"id": "hand/0", "prompt": "Describe a cat.", "instruction_id_list":
            ["change_case:english_lowercase", "punctuation:no_comma"], "kwargs": [{}, {}]}  # fmt: skip
    cases += [(hand, "cats are small furry animals. they purr."), (hand, "Cats, dogs.")]
    result = if_metric.compute(
        predictions=[response for _, response in cases],
        prompts=[row["prompt"] for row, _ in cases],
        constraints=[if_task.constraints_json(row) for row, _ in cases],
    )
    expected = [if_task.reward(row, response) for row, response in cases]
    assert result["rewards"] == expected  # exactly: lm-eval's checkers, called the same way
    assert result["mean_reward"] == pytest.approx(sum(expected) / len(expected))
    assert result["prompt_level_strict_acc"] == pytest.approx(sum(r == 1.0 for r in expected) / len(expected))
    assert len(set(expected)) >= 3 and 0.0 in expected and 1.0 in expected  # the cases span the range
    assert result["inst_level_loose_acc"] >= result["inst_level_strict_acc"]


def test_instruction_following_metric_agrees_with_lm_eval_ifeval_scores(if_metric):
    """On a response to an IFEval-style row, the accuracies are lm-eval's `ifeval` task's `process_results`."""
    from lm_eval.tasks.ifeval.utils import process_results

    doc = {"key": 1, "prompt": "Describe a cat. Answer in lower case, with no commas, in at least 3 sentences.",
           "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma",
                                   "length_constraints:number_sentences"],
           "kwargs": [{}, {}, {"relation": "at least", "num_sentences": 3}]}  # fmt: skip
    response = "**cats purr.** they sleep a lot. they like fish, mostly."
    expected = process_results(doc, [response])
    spec = json.dumps({"instruction_id_list": doc["instruction_id_list"], "kwargs": doc["kwargs"]})
    result = if_metric.compute(predictions=[response], prompts=[doc["prompt"]], constraints=[spec])
    assert result["prompt_level_strict_acc"] == float(expected["prompt_level_strict_acc"])
    assert result["inst_level_strict_acc"] == sum(expected["inst_level_strict_acc"]) / 3
    assert result["inst_level_loose_acc"] == sum(expected["inst_level_loose_acc"]) / 3


LOWER = json.dumps({"instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predictions": ["a.", "b."], "prompts": ["Hi."], "constraints": [LOWER]},
         r"Mismatch in the number of predictions \(2\) and prompts \(1\)"),
        ({"predictions": ["a."], "prompts": [" "], "constraints": [LOWER]}, r"row 0: the prompt is an empty string"),
        ({"predictions": ["a.", "b."], "prompts": ["Hi."] * 2, "constraints": [LOWER, ""]},
         r"row 1: `constraints` is not JSON"),
        ({"predictions": ["a."], "prompts": ["Hi."], "constraints": ['{"instruction_id_list": [], "kwargs": []}']},
         r"row 0: `constraints` must be .* at least one instruction"),
        ({"predictions": ["a."], "prompts": ["Hi."],
          "constraints": ['{"instruction_id_list": ["punctuation:no_comma"], "kwargs": []}']},
         r"one dict per id"),
        ({"predictions": ["a."], "prompts": ["Hi."],
          "constraints": ['{"instruction_id_list": ["format:haiku"], "kwargs": [{}]}']},
         r"row 0: unknown IFEval instruction 'format:haiku'"),
        ({"predictions": ["a.", None], "prompts": ["Hi."] * 2, "constraints": [LOWER] * 2},
         r"predictions\[1\] is None"),
        ({"predictions": [], "prompts": [], "constraints": []}, "nothing to score"),
    ],
)  # fmt: skip
def test_instruction_following_metric_malformed_inputs(if_metric, kwargs, message):
    with pytest.raises(ValueError, match=message):
        if_metric.compute(**kwargs)


def test_load_metric_by_task_key_from_the_source_tree():
    from spac_hf.tasks.metrics import load_metric, metric_location

    assert metric_location("true_reward_reviews") == str(REVIEW)
    metric = load_metric("true_reward_reviews")
    assert metric.name == "review_reward"
    with pytest.raises(ValueError, match="No evaluate metric for task 'arc_challenge'"):
        metric_location("arc_challenge")
