"""Malformed inputs and configurations are rejected before any compute, naming what the user wrote; damaged files are
named or recomputed; a run's identity covers every option that changes results.

Every rejection test checks three things: the message names the user's argument, row, column or option; no model ran
(a forward pass or a training step would fail the test); and `output_dir` holds nothing new afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset, IterableDataset
from transformers import Trainer

from spac_hf import SelfPlayConfig, SPACConfig, run_self_play
from spac_hf.data import DatasetValidationError
from spac_hf.run.folder import RUN_FILE, RunFolder, remove_leftovers
from spac_hf.run.identity import (
    IGNORED_FIELDS,
    RESULT_FIELDS,
    RUN_KEYS,
    RunRecordError,
    changed_fields,
    run_identity,
    write_run_record,
)
from spac_hf.run.integrity import DamagedRunError, load_cached_dataset, read_json_cache
from spac_hf.run.preflight import validate_run

from helpers import preference_rows


@pytest.fixture
def no_compute(monkeypatch):
    """Any model forward pass (generation, log-probs) or training step fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model ran before the input was rejected")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    monkeypatch.setattr(Trainer, "train", refuse)


def files(folder: Path) -> dict[str, int]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def conversational(n: int = 6) -> list[dict]:
    return preference_rows(n, conversational=True)


def edit(rows: list[dict], index: int, column: str, value) -> list[dict]:
    rows[index][column] = value
    return rows


def message_content(rows: list[dict], index: int, content) -> list[dict]:
    rows[index]["chosen"] = [{"role": "assistant", "content": content}]
    return rows


LONG_PROMPT = " ".join(["river"] * 80) + ":"


def _long_prompt_at(index: int, n: int = 24) -> list[dict]:
    return edit(preference_rows(n), index, "prompt", LONG_PROMPT)


# (id, train rows or data set, run_self_play keyword overrides, config overrides, error, message)
LOOP_CASES = [
    ("train-not-a-dataset", preference_rows(6), {}, {}, TypeError,
     r"train_dataset: the self-play loop needs a map-style"),
    ("train-iterable", "iterable", {}, {}, TypeError, r"train_dataset: .*IterableDataset"),
    ("missing-column", [{"prompt": "a:", "chosen": " b"}] * 4, {}, {}, DatasetValidationError,
     r"train_dataset: missing column\(s\) \['rejected'\]"),
    ("empty-dataset", "empty", {}, {}, DatasetValidationError, r"train_dataset: the data set is empty"),
    ("empty-prompt", edit(preference_rows(6), 3, "prompt", "  "), {}, {}, DatasetValidationError,
     r"train_dataset: column `prompt` .* row 3: is empty"),
    ("response-not-text", [{**r, "chosen": 7} for r in preference_rows(6)], {}, {}, DatasetValidationError,
     r"train_dataset: column `chosen` .* row 0: expected a string, got int"),
    ("content-none", message_content(conversational(), 2, None), {}, {}, DatasetValidationError,
     r"column `chosen` .* row 2: turn 0 \(assistant\): `content` must be a string, got NoneType"),
    ("content-not-text", [{**r, "rejected": [{"role": "assistant", "content": 3}]} for r in conversational()], {}, {},
     DatasetValidationError, r"column `rejected` .* row 0: turn 0 \(assistant\): `content` must be a string, got int"),
    ("role-none", edit(conversational(), 4, "rejected", [{"role": None, "content": "x"}]), {}, {},
     DatasetValidationError, r"column `rejected` .* row 4: turn 0: `role` must be a non-empty string, got None"),
    ("empty-last-message", message_content(conversational(), 1, " "), {}, {}, DatasetValidationError,
     r"column `chosen` .* row 1: turn 0 \(assistant\): the last message is empty"),
    ("prompt-messages-with-text-responses",
     [{**r, "prompt": [{"role": "user", "content": r["prompt"]}]} for r in preference_rows(6)], {}, {},
     DatasetValidationError, r"column `prompt` is invalid for a standard data set .* row 0: expected a string"),
    ("implicit-prompt-missing",
     edit([{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in preference_rows(6)],
          4, "chosen", "x yes"), {}, {}, DatasetValidationError, r"train_dataset: row 4: no `prompt` column"),
    ("generated-column", [{**r, "generated": " g"} for r in preference_rows(6)], {}, {}, ValueError,
     r"train_dataset: the loop generates the `generated` responses itself"),
    ("eval-malformed", preference_rows(6), {"eval_dataset": edit(preference_rows(3), 1, "chosen", "")}, {},
     DatasetValidationError, r"eval_dataset: column `chosen` .* row 1: is empty"),
    ("eval-other-format", conversational(), {"eval_dataset": preference_rows(3)}, {}, ValueError,
     r"`train_dataset` is conversational but `eval_dataset` is standard"),
    ("long-prompt-in-a-later-part", _long_prompt_at(17), {}, {"num_iterations": 3}, DatasetValidationError,
     r"train_dataset: 1 prompt\(s\) are at least `max_length`=64 .* row 17 \(\d+ tokens\)"),
    ("long-eval-prompt", preference_rows(6), {"eval_dataset": _long_prompt_at(2, 4)}, {}, DatasetValidationError,
     r"eval_dataset: 1 prompt\(s\) .* row 2 \(\d+ tokens\)"),
    ("no-chat-template", conversational(), {"processing_class": "no-template"}, {}, DatasetValidationError,
     r"train_dataset is conversational, but the tokenizer \(`processing_class`\) has no chat template"),
    ("more-iterations-than-rows", preference_rows(6), {}, {"num_iterations": 8}, DatasetValidationError,
     r"Cannot split the 6 rows of `train_dataset` into `num_iterations`=8"),
    ("unknown-method", preference_rows(6), {"method": "ppo"}, {}, ValueError, r"`method` must be one of"),
    ("spac-without-spac-config", preference_rows(6), {}, {"config_class": SelfPlayConfig}, TypeError,
     r"method='spac' needs a `SPACConfig`"),
    ("model-not-a-path", preference_rows(6), {"model": "in-memory"}, {}, TypeError, r"`model` must be a path"),
    ("model-without-tokenizer", preference_rows(6), {"model": "empty-folder"}, {}, ValueError,
     r"`model`=.*cannot load its tokenizer.*`processing_class`"),
    ("bad-hub-id", preference_rows(6), {}, {"push_to_hub": True, "hub_model_id": "bad id with spaces"}, ValueError,
     r"`push_to_hub=True` with `hub_model_id`='bad id with spaces'"),
]  # fmt: skip


def _dataset(rows):
    if rows == "iterable":
        return IterableDataset.from_generator(lambda: iter(preference_rows(4)))
    if rows == "empty":
        return Dataset.from_list(preference_rows(1)).select([])
    return Dataset.from_list(rows)


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c[0] for c in LOOP_CASES])
def test_loop_rejects_before_any_compute(case, tiny_model_dir, tokenizer, make_args, model, no_compute, tmp_path):
    name, rows, overrides, config_overrides, error, message = case
    config_overrides = dict(config_overrides)
    config_class = config_overrides.pop("config_class", SPACConfig)
    args = make_args(config_class, **config_overrides)
    out = Path(args.output_dir)
    overrides = dict(overrides)
    train = rows if name == "train-not-a-dataset" else _dataset(rows)
    if "eval_dataset" in overrides:
        overrides["eval_dataset"] = Dataset.from_list(overrides["eval_dataset"])
    if overrides.get("processing_class") == "no-template":
        tokenizer.chat_template = None
        overrides["processing_class"] = tokenizer
    targets = {"in-memory": model, "empty-folder": str(tmp_path / "empty")}
    target = targets.get(overrides.pop("model", None), tiny_model_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=message):
        run_self_play(target, args, train, **overrides)
    assert files(out) == {}, "a rejected run wrote to output_dir"


@pytest.mark.parametrize(
    "overrides, option",
    [
        ({"real_response": "foo"}, "real_response"),
        ({"smoothing": "hinge"}, "smoothing"),
        ({"lam": -1.0}, "lam"),
        ({"beta": 0.0}, "beta"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"generation_batch_size": 0}, "generation_batch_size"),
        ({"generation_backend": "tgi"}, "generation_backend"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"iteration_data": "half"}, "iteration_data"),
        ({"history_iterations": -1}, "history_iterations"),
        ({"loss_type": ["ipo"]}, "loss_type"),
        ({"label_smoothing": 0.1}, "label_smoothing"),
    ],
)
def test_bad_options_are_named_as_the_user_spelt_them(make_args, overrides, option, tmp_path):
    with pytest.raises(ValueError, match=rf"`{option}[`=]") as raised:
        make_args(**overrides)
    if option == "real_response":
        assert "`real`" not in str(raised.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "config_class, overrides, option",
    [
        ("SPACConfig", {"learning_rate": -1.0}, "learning_rate"),
        ("SPACConfig", {"learning_rate": float("nan")}, "learning_rate"),
        ("SPACConfig", {"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
        ("SPACConfig", {"per_device_eval_batch_size": 0}, "per_device_eval_batch_size"),
        ("SPACConfig", {"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
        ("SPACConfig", {"max_steps": 0}, "max_steps"),
        ("SPACConfig", {"num_train_epochs": 0}, "num_train_epochs"),
        ("SPACConfig", {"warmup_steps": -1}, "warmup_steps"),
        ("SPACConfig", {"seed": -1}, "seed"),
        ("SPACConfig", {"lam_scaling": "cubic"}, "lam_scaling"),
        ("SelfPlayConfig", {"beta": -1.0}, "beta"),  # DPO and SPIN: TRL's beta, checked like SPAC's
        ("SelfPlayConfig", {"logging_steps": 0}, "logging_steps"),
    ],
)
def test_the_trainers_own_options_are_checked_when_the_config_is_made(
    make_args, config_class, overrides, option, tmp_path
):
    import spac_hf
    from spac_hf.config import OptionError

    with pytest.raises(OptionError, match=rf"^`{option}` must be ") as raised:
        make_args(getattr(spac_hf, config_class), **overrides)
    assert [p[0] for p in raised.value.problems] == [option]
    assert not (tmp_path / "out").exists()


def test_every_bad_option_is_reported_at_once_one_line_each(make_args):
    from spac_hf.config import OptionError

    with pytest.raises(OptionError) as raised:
        make_args(learning_rate=-1.0, per_device_train_batch_size=0, lam=-1.0, real_response="best")
    lines = str(raised.value).splitlines()
    assert [line.split("`")[1] for line in lines] == [
        "learning_rate",
        "per_device_train_batch_size",
        "lam",
        "real_response",
    ]
    # max_steps set: the epochs no longer decide the length of training, so 0 epochs is not an error then.
    assert make_args(max_steps=3, num_train_epochs=0).max_steps == 3


# ---------------------------------------------------------------------------------------------------------------------
# A prompt too long in a later part: the user's row, before iteration 1 runs; the corrected rerun is not refused
# ---------------------------------------------------------------------------------------------------------------------


def test_long_prompt_names_the_users_row_not_the_parts(tiny_model_dir, make_args, no_compute):
    args = make_args(num_iterations=3)
    rows = _long_prompt_at(17)
    with pytest.raises(DatasetValidationError, match=r"row 17 ") as raised:
        run_self_play(tiny_model_dir, args, Dataset.from_list(rows))
    assert "train_dataset" in str(raised.value) and "`train`" not in str(raised.value)


def test_trainer_names_the_argument_the_user_passed(tiny_model_dir, tokenizer, make_args, no_compute):
    from spac_hf import SPACTrainer

    rows = [{**r, "generated": " g"} for r in _long_prompt_at(3, 6)]
    with pytest.raises(DatasetValidationError, match=r"^train_dataset: 1 prompt\(s\) .* row 3 ") as raised:
        SPACTrainer(
            tiny_model_dir, args=make_args(), train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
    assert "`train`" not in str(raised.value)


def test_a_rejected_run_leaves_no_record_so_the_corrected_rerun_starts(tiny_model_dir, make_args, no_compute):
    data = Dataset.from_list(preference_rows(6))
    args = make_args(num_iterations=8)
    with pytest.raises(DatasetValidationError):
        run_self_play(tiny_model_dir, args, data)
    assert not Path(args.output_dir).exists()
    checked = validate_run(tiny_model_dir, make_args(num_iterations=2), data)  # what the rerun checks first
    assert not checked.resuming and [len(p) for p in checked.parts] == [3, 3]


# ---------------------------------------------------------------------------------------------------------------------
# Run identity
# ---------------------------------------------------------------------------------------------------------------------


def test_every_config_field_is_classified():
    """A field added by TRL or transformers must be put in IGNORED_FIELDS or RESULT_FIELDS before it can pass."""
    names = {f.name for f in dataclasses.fields(SPACConfig)}
    unclassified = names - set(IGNORED_FIELDS) - RESULT_FIELDS
    assert not unclassified, f"classify these fields in spac_hf/run/identity.py: {sorted(unclassified)}"
    assert not set(IGNORED_FIELDS) & RESULT_FIELDS
    assert not names & set(RUN_KEYS)


def _identity(make_args, data, **overrides):
    return run_identity(method="spac", base_model="m", args=make_args(**overrides), train_dataset=data)


def test_identity_counts_every_field_but_the_ignored_ones(make_args):
    data = Dataset.from_list(preference_rows(6))
    base = _identity(make_args, data)
    assert {"data_seed", "weight_decay", "adam_beta2", "warmup_steps", "max_grad_norm", "seed"} <= set(base)
    assert "hub_token" not in base and "output_dir" not in base and "logging_steps" not in base
    # Options that do not change results may change on resume ...
    same = _identity(make_args, data, logging_steps=7, save_steps=3, report_to=[], dataloader_num_workers=0,
                     hub_token="secret", output_dir="/elsewhere", average_iterates=True)  # fmt: skip
    assert changed_fields(base, same) == {}
    # ... the others may not, and the message names each one as the user spelt it.
    for option, value in {"data_seed": 5, "weight_decay": 0.1, "lr_scheduler_type": "cosine", "warmup_steps": 2,
                          "adam_beta1": 0.8, "max_grad_norm": 0.5, "lam": 0.5}.items():  # fmt: skip
        changed = changed_fields(base, _identity(make_args, data, **{option: value}))
        assert list(changed) == [option], option
    changed = changed_fields(base, _identity(make_args, data, model_init_kwargs={"dtype": torch.bfloat16}))
    assert list(changed) == ["model_init_kwargs"]  # a dtype is recorded by its name, not as an opaque object
    other = Dataset.from_list(preference_rows(6, seed=1))
    assert "train_data_hash" in changed_fields(base, _identity(make_args, other))


@pytest.mark.parametrize("option, old, new", [("data_seed", 1, 2), ("weight_decay", 0.0, 0.1)])
def test_resume_with_a_changed_option_is_refused_before_any_compute(tiny_model_dir, make_args, no_compute, option,
                                                                     old, new):  # fmt: skip
    data = Dataset.from_list(preference_rows(6))
    first = validate_run(tiny_model_dir, make_args(num_iterations=2, **{option: old}), data)
    out = Path(first.args.output_dir)
    write_run_record(out / RUN_FILE, first.identity)
    before = files(out)
    with pytest.raises(RunRecordError, match=rf"holds another run \({option}: {old!r} -> {new!r}\)"):
        run_self_play(tiny_model_dir, make_args(num_iterations=2, **{option: new}), data)
    assert files(out) == before


def test_damaged_run_record_names_the_file_and_what_to_delete(tiny_model_dir, make_args, no_compute):
    args = make_args(num_iterations=2)
    out = Path(args.output_dir)
    out.mkdir(parents=True)
    (out / RUN_FILE).write_text('{"method": "spac", "num_it')
    before = files(out)
    with pytest.raises(RunRecordError, match=rf"run record '{out / RUN_FILE}' is damaged .*delete '{out / RUN_FILE}'"):
        run_self_play(tiny_model_dir, args, Dataset.from_list(preference_rows(6)))
    assert files(out) == before


@pytest.mark.parametrize("damage", ["weights", "record", "missing-weights"])
def test_damaged_iterate_names_the_file_and_the_folder_to_delete(tiny_model_dir, model, tokenizer, make_args,
                                                                 no_compute, damage):  # fmt: skip
    data = Dataset.from_list(preference_rows(6))
    args = make_args(num_iterations=2)
    checked = validate_run(tiny_model_dir, args, data)
    out = Path(args.output_dir)
    write_run_record(out / RUN_FILE, checked.identity)
    iterate = out / "iter_1"
    model.save_pretrained(iterate)
    tokenizer.save_pretrained(iterate)
    (iterate / "iterate.json").write_text(json.dumps({"iteration": 1}))
    weights = iterate / "model.safetensors"
    if damage == "weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        damaged = weights
    elif damage == "record":
        (iterate / "iterate.json").write_text('{"iterat')
        damaged = iterate / "iterate.json"
    else:
        weights.unlink()
        damaged = iterate
    before = files(out)
    with pytest.raises(DamagedRunError, match=rf"'{damaged}' .*damaged.*delete the folder '{iterate}'"):
        run_self_play(tiny_model_dir, args, data)
    assert files(out) == before


# ---------------------------------------------------------------------------------------------------------------------
# Recomputable caches and leftovers
# ---------------------------------------------------------------------------------------------------------------------


def test_damaged_cached_data_is_discarded_with_a_warning(tmp_path, caplog):
    data = Dataset.from_list(preference_rows(40))
    path = tmp_path / "generated"
    data.save_to_disk(str(path))
    reloaded = load_cached_dataset(path)
    assert reloaded is not None and reloaded["prompt"] == data["prompt"]
    cache = path / "cache-0123.arrow"  # what `datasets` (and TRL's reference log-probs) cache beside the data
    Dataset.from_list(preference_rows(3)).map(lambda r: r, cache_file_name=str(cache), keep_in_memory=False)
    cache.write_bytes(cache.read_bytes()[:100])
    (arrow,) = path.glob("data-*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:-300])
    with caplog.at_level(logging.WARNING, logger="spac_hf.utils"):
        assert load_cached_dataset(path, "the generated responses of iteration 2") is None
    assert f"Discarding the cache file {cache}" in caplog.text
    assert f"Discarding the generated responses of iteration 2 {path}: it is damaged" in caplog.text
    assert not path.exists()  # computed again by the loop
    assert load_cached_dataset(tmp_path / "missing") is None


def test_damaged_evaluation_is_discarded(tmp_path, caplog):
    path = tmp_path / "eval.json"
    path.write_text('{"results": {"a": 1}}')
    assert read_json_cache(path) == {"results": {"a": 1}}
    path.write_text('{"results": {"a"')
    with caplog.at_level(logging.WARNING, logger="spac_hf.utils"):
        assert read_json_cache(path, "the evaluation") is None
    assert f"Discarding the evaluation {path}" in caplog.text and not path.exists()


def test_a_damaged_checkpoint_is_passed_over_for_an_earlier_one(tmp_path, model, caplog):
    from accelerate import PartialState

    from spac_hf.run.folder import last_complete_checkpoint

    PartialState()  # the library logs through accelerate's logger, as inside the loop
    for step in (1, 2):
        folder = tmp_path / f"checkpoint-{step}"
        model.save_pretrained(folder)
        torch.save({"step": step}, folder / "optimizer.pt")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    optimizer = tmp_path / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-40])  # trainer_state.json intact: only the file check sees it
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-1"
    assert "checkpoint-2: optimizer.pt is damaged" in caplog.text


def test_a_kill_while_replacing_a_folder_leaves_only_what_resume_removes(tmp_path):
    """The one kill point of `atomic_directory` a run does not reach (it replaces a folder only after damage)."""
    import os

    from spac_hf.utils import KILL_ENV, atomic_directory

    out = tmp_path / "run"
    target = out / "work" / "iter_1" / "generated"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    pid = os.fork()
    if pid == 0:  # the child is killed between moving the old folder aside and moving the new one in
        os.environ[KILL_ENV] = "write_folder.between_renames"
        with atomic_directory(target) as tmp:
            (tmp / "new.txt").write_text("new")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 137
    assert not target.exists()  # neither old nor new in place: the loop sees it missing and generates it again
    removed = remove_leftovers(RunFolder(out), 1)
    names = {p.name for p in removed}  # the old folder set aside, and the new one never moved in
    assert len(names) == 2 and ".generated.tmp-old" in names and all(n.startswith(".generated.tmp-") for n in names)
    assert list((out / "work" / "iter_1").iterdir()) == []


def test_remove_leftovers_says_what_it_removed(tmp_path, caplog):
    from accelerate import PartialState

    out = tmp_path / "run"
    keep = [out / RUN_FILE, out / "iter_1" / "iterate.json", out / "work" / "iter_2" / "checkpoints" / "checkpoint-2",
            out / "work" / "iter_1" / "generated" / "data-00000-of-00001.arrow"]  # fmt: skip
    leftovers = [
        out / ".iter_2.tmp",
        out / f".{RUN_FILE}.abc123.tmp",
        out / "iter_1" / ".README.md.x1.tmp",
        out / "work" / "iter_2" / ".generated.tmp-k2j3",
        out / "work" / "iter_2" / ".generated.tmp-old",
        out / "results" / "data" / ".results.jsonl.q1w2.tmp",
        out / "work" / "iter_1" / "generated" / "tmpa1b2c3",
        out / "work" / "iter_1" / "checkpoints",
    ]
    for path in keep + leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix or path.name.startswith("tmp") or "data-" in path.name:
            path.write_text("x")
        else:
            path.mkdir()
    PartialState()  # the run folder logs through accelerate's logger, as inside the loop
    with caplog.at_level(logging.WARNING, logger="spac_hf.run.folder"):
        removed = remove_leftovers(RunFolder(out), 2, finished=[1])
    assert sorted(removed) == sorted(leftovers)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in leftovers)
    assert "Removed what an interrupted run left behind" in caplog.text and ".iter_2.tmp" in caplog.text
    assert remove_leftovers(RunFolder(out), 2, finished=[1]) == []


# ---------------------------------------------------------------------------------------------------------------------
# The Space: an over-long prompt is rejected with a message, not cut by the textbox, and logged on one line
# ---------------------------------------------------------------------------------------------------------------------


def test_space_rejects_a_long_prompt_visibly_and_logs_one_line(tmp_path, caplog):
    space = Path(__file__).parent.parent / "space"
    sys.path.insert(0, str(space))
    try:
        import gradio as gr
        from app import build_demo
        from models import ModelEntry
        from settings import Settings
    finally:
        sys.path.remove(str(space))
    settings = Settings(results_dirs=(), models_file=tmp_path / "none.yaml", max_prompt_chars=50)
    allowlist = {"a": ModelEntry("a", str(tmp_path / "never-loaded")), "b": ModelEntry("b", str(tmp_path / "nope"))}
    demo = build_demo(settings, allowlist)
    (box,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "prompt"]
    assert box.max_length is None  # the textbox does not cut: the handler sees the whole prompt
    (handler,) = [f.fn for f in demo.fns.values() if f.api_name == "generate"]
    with caplog.at_level(logging.INFO, logger="spac_hf.space"), pytest.raises(gr.Error) as raised:
        list(handler("x" * 51, "a", "b", 8, 1.0))
    assert "Prompt too long: 51 characters, at most 50" in raised.value.message
    assert raised.value.print_exception is False  # Gradio prints no traceback for it
    lines = [r.getMessage() for r in caplog.records if r.name == "spac_hf.space"]
    assert lines == ["Rejected a generation request: Prompt too long: 51 characters, at most 50 are accepted."]
