#!/usr/bin/env bash
# Download exactly the wheels that scripts/gpu_check.sh needs on the GPU machine into the ignored .gpu/ folder, stage
# the IFEval prompts and NLTK's Punkt data beside them, and print the total size, which must stay under the 64 MiB that
# travel with the working tree (the tree included).
#
#   bash scripts/gpu_wheels.sh                         # CPython 3.12, manylinux x86_64: the GPU machine
#   bash scripts/gpu_wheels.sh --with-bitsandbytes     # + bitsandbytes for the QLoRA step (41 MiB: only if it fits)
#   bash scripts/gpu_wheels.sh --python-version 3.11   # another interpreter (to rehearse the install elsewhere)
#
# The GPU machine's image has torch, transformers, accelerate, peft, numpy, pandas, pyarrow, tokenizers, safetensors,
# pytest and their dependencies; what the check imports beyond that is listed below, at the versions of
# constraints.txt where it pins them and of the tested environment otherwise. Packages the image has are not carried:
# gpu_check.sh puts the carried ones at the END of sys.path, so they only fill gaps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
PY_VERSION=3.12
DEST=.gpu
WITH_BNB=0
LIMIT_MIB=64
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PY_VERSION="$2"; shift 2 ;;
    --dest) DEST="$2"; shift 2 ;;
    --with-bitsandbytes) WITH_BNB=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
ABI="cp${PY_VERSION/./}"

# What the check imports that the image lacks (found by running the dry run in an environment built like the image).
WHEELS=(
  # training: TRL and its data sets (constraints.txt)
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0
  # evaluation: lm-eval (constraints.txt) and what it imports at load, IFEval's checkers (lm-eval[ifeval])
  lm-eval==0.4.13 evaluate==0.4.6 sacrebleu==2.6.0 portalocker==4.4.2 tabulate==0.10.0 colorama==0.4.6 lxml==6.1.3
  more-itertools==11.2.1 requests==2.34.2 urllib3==2.8.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3
  immutabledict==4.3.1 nltk==3.10.4 joblib==1.6.0 six==1.17.0
  # DeepSpeed's dependencies (its own wheel is built below): the ZeRO-3 step
  einops==0.8.2 hjson==3.1.0 msgpack==1.2.4 ninja==1.13.2 py-cpuinfo==9.0.0 nvidia-ml-py==13.615.71
)
# Pure-Python packages that PyPI serves only as sdists: built into py3-none-any wheels here. DeepSpeed too: without
# CUDA here its C++/CUDA ops are not prebuilt (DS_BUILD_OPS=0); ZeRO-3 with torch's own optimizer needs none of them.
SDISTS=(langdetect==1.0.9 sqlitedict==2.1.0 word2number==1.1 deepspeed==0.19.8)
[ "$WITH_BNB" = 1 ] && WHEELS+=(bitsandbytes==0.50.2)

# site/ is where gpu_check.sh installs them (a rehearsal here leaves one): never carried, it is rebuilt there.
rm -rf "$DEST/wheels" "$DEST/site" && mkdir -p "$DEST/wheels" "$DEST/data"
echo "downloading ${#WHEELS[@]} wheels for CPython $PY_VERSION manylinux x86_64 into $DEST/wheels"
"$PYTHON" -m pip download --disable-pip-version-check --quiet --no-deps --only-binary=:all: \
  --python-version "$PY_VERSION" --implementation cp --abi "$ABI" --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 --platform any -d "$DEST/wheels" "${WHEELS[@]}"
echo "building ${#SDISTS[@]} pure-Python wheels from sdists: ${SDISTS[*]}"
# deepspeed's setup.py imports torch: build it against this environment's torch, not an isolated download of it.
"$PYTHON" -m pip wheel --disable-pip-version-check --quiet --no-deps --no-build-isolation -w "$DEST/wheels" "${SDISTS[@]}"
for wheel in "$DEST"/wheels/*.whl; do
  case "$(basename "$wheel")" in *-none-any.whl|*-"$ABI"-*|*-abi3-*|*-py3*-none-manylinux*) ;;
    *) echo "gpu_wheels.sh: $wheel does not fit CPython $PY_VERSION" >&2; exit 1 ;; esac
done

echo "staging the IFEval prompts and NLTK's Punkt data (benchmarks.eval_data.fetch) into $DEST/data"
if ! PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" scripts/gpu_check.py --stage-data "$DEST/data"; then
  echo "gpu_wheels.sh: could not stage the IFEval data; the check's ifeval step will be skipped" >&2
fi

"$PYTHON" - "$DEST" "$LIMIT_MIB" "$PY_VERSION" <<'PY'
import hashlib, json, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path

dest, limit_mib, py_version = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
wheels = sorted((dest / "wheels").glob("*.whl"))
data = sorted(p for p in (dest / "data").rglob("*") if p.is_file())
tree = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True,
                      check=True).stdout.decode().split("\0")
tree_bytes = sum(Path(p).stat().st_size for p in tree if p and Path(p).is_file())
mib = lambda n: n / 2**20
wheel_bytes, data_bytes = sum(w.stat().st_size for w in wheels), sum(p.stat().st_size for p in data)
for w in sorted(wheels, key=lambda w: -w.stat().st_size):
    print(f"  {mib(w.stat().st_size):6.2f} MiB  {w.name}")
total = wheel_bytes + data_bytes + tree_bytes
manifest = {
    "python_version": py_version,
    "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "wheels": [{"file": w.name, "bytes": w.stat().st_size, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
               for w in wheels],
    "data": [str(p.relative_to(dest)) for p in data],
    "mib": {"wheels": round(mib(wheel_bytes), 2), "data": round(mib(data_bytes), 2),
            "working_tree": round(mib(tree_bytes), 2), "total": round(mib(total), 2), "limit": limit_mib},
}
(dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(f"wheels {mib(wheel_bytes):.1f} MiB ({len(wheels)} files) + data {mib(data_bytes):.1f} MiB "
      f"+ working tree {mib(tree_bytes):.1f} MiB = {mib(total):.1f} MiB of the {limit_mib} MiB that travel")
if total >= limit_mib * 2**20:
    sys.exit(f"gpu_wheels.sh: {mib(total):.1f} MiB is over the {limit_mib} MiB limit: drop an optional wheel")
PY
