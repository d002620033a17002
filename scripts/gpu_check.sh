#!/usr/bin/env bash
# One prepared command for the GPU machine: installs the carried wheels, then checks every GPU path of spac-hf, each
# step with its own time limit, in at most 8 minutes. Writes gpu_check.json, gpu_check.log and the cost results to
# $OUT (or --out), and prints a table. See scripts/gpu_check.py for the steps, README.md ("GPU check") for the how-to.
#
#   bash scripts/gpu_check.sh              # on the GPU machine (after scripts/gpu_wheels.sh here)
#   bash scripts/gpu_check.sh --dry-run    # on any machine: the same steps on the CPU with tiny sizes
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
# spac-hf is not installed on the GPU machine: it runs from the source tree (src/, and benchmarks/ at the root).
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" scripts/gpu_check.py "$@"
