"""The lm-eval model `spac-ct2` against lm-eval's `hf` model on small local tasks: loglikelihoods equal within float32
rounding, the same greedy answers, the same rolling loglikelihoods."""

import json
import random

import pytest


pytest.importorskip("ctranslate2")
pytest.importorskip("lm_eval")

from helpers import sentence  # noqa: E402


# The weights are scaled by 8 (clear greedy winners), so log-probs are large: 1e-3 is float32 rounding at that scale.
TOLERANCE = 1e-3


def _tasks(folder):
    rng = random.Random(0)
    rows = [
        {"question": sentence(rng, 2, 10), "choices": [sentence(rng, 1, 4) for _ in range(3)], "answer": k % 3}
        for k in range(6)
    ]
    data = folder / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    (folder / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n" + common + "output_type: multiple_choice\ndoc_to_text: '{{question}}:'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\nmetric_list:\n  - metric: acc\n"
    )
    (folder / "tiny_gen.yaml").write_text(
        "task: tiny_gen\n" + common + "output_type: generate_until\ndoc_to_text: '{{question}}:'\n"
        "doc_to_target: '{{choices[0]}}'\ngeneration_kwargs:\n  until: [' cat', '\\n']\n  max_gen_toks: 10\n"
        "  do_sample: false\nmetric_list:\n  - metric: exact_match\n"
    )
    (folder / "tiny_ppl.yaml").write_text(
        "task: tiny_ppl\n" + common + "output_type: loglikelihood_rolling\ndoc_to_text: ''\n"
        "doc_to_target: '{{question}} {{choices[0]}}'\nmetric_list:\n  - metric: word_perplexity\n"
    )


def _evaluate(model, model_args, folder):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import spac_hf.lm_eval_engine  # noqa: F401 (registers spac-ct2)

    manager = TaskManager(include_path=str(folder), include_defaults=False)
    out = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=["tiny_mc", "tiny_gen", "tiny_ppl"],
        task_manager=manager,
        log_samples=True,
        batch_size=4,
        device="cpu",
    )
    return {task: [s["resps"] for s in samples] for task, samples in out["samples"].items()}


def test_spac_ct2_matches_lm_evals_hf_model(sharp_dir, tmp_path):
    _tasks(tmp_path)
    expected = _evaluate("hf", {"pretrained": sharp_dir, "dtype": "float32"}, tmp_path)
    got = _evaluate("spac-ct2", {"pretrained": sharp_dir, "cache_dir": str(tmp_path / "ct2")}, tmp_path)
    # Multiple choice: 6 questions x 3 choices, each (loglikelihood, is_greedy).
    pairs = [(e[0], g[0]) for es, gs in zip(expected["tiny_mc"], got["tiny_mc"]) for e, g in zip(es, gs)]
    assert len(pairs) == 18
    assert max(abs(float(e[0]) - float(g[0])) for e, g in pairs) < TOLERANCE
    assert [bool(e[1]) for e, _ in pairs] == [bool(g[1]) for _, g in pairs]
    # Greedy answers: the same text for each of the 6 prompts, cut at the same stop string.
    assert got["tiny_gen"] == expected["tiny_gen"]
    assert len({r[0][0] for r in got["tiny_gen"]}) > 1
    rolling = [(float(e[0][0]), float(g[0][0])) for e, g in zip(expected["tiny_ppl"], got["tiny_ppl"])]
    assert len(rolling) == 6 and max(abs(e - g) for e, g in rolling) < 6 * TOLERANCE


def test_unknown_model_args_are_refused(sharp_dir):
    from lm_eval.api.registry import get_model

    import spac_hf.lm_eval_engine  # noqa: F401

    with pytest.raises(ValueError, match="unknown model_args \\['beams'\\]"):
        get_model("spac-ct2")(pretrained=sharp_dir, beams=4)
