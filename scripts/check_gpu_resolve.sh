#!/usr/bin/env bash
# Prove that the GPU environment resolves: pip's resolver over `.[vllm,gcp]` (the Dataflow worker's
# environment: Beam + vLLM + TRL + gcsfs) with constraints-gpu.txt, as a dry run against the package
# registry. Nothing is installed and no GPU is needed; the resolved set is written as pip's JSON report and
# the pins are checked against it.
#
#   bash scripts/check_gpu_resolve.sh                # ~6 min on a busy 2-core machine (CI runs it)
#   GPU_EXTRAS=vllm bash scripts/check_gpu_resolve.sh
#
# --ignore-installed: resolve as for an empty venv, whatever the running venv holds (the CPU venv pins
# transformers 5.23, which vllm 0.32.0 refuses). The resolve sees the registry as a fresh GPU machine does:
# pip's config files and PIP_FIND_LINKS are left out (a local folder of CPU torch wheels would otherwise
# satisfy torch==2.13.0 and hide the CUDA wheels' dependencies); PIP_INDEX_URL / PIP_EXTRA_INDEX_URL still
# apply. GPU_RESOLVE_PIP_CONFIG=1 keeps the machine's pip config.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
EXTRAS=${GPU_EXTRAS:-vllm,gcp}
export TMPDIR=${TMPDIR:-$PWD/.tmp}
OUT=${GPU_RESOLVE_REPORT:-$TMPDIR/gpu-resolve/report.json}
mkdir -p "$(dirname "$OUT")"
log="${OUT%.json}.log"
start=$SECONDS
echo "resolving .[$EXTRAS] with constraints-gpu.txt (dry run; log: $log) ..."
isolate=(env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null)
[[ ${GPU_RESOLVE_PIP_CONFIG:-0} == 1 ]] && isolate=()
if ! "${isolate[@]}" "$PY" -m pip install --dry-run --ignore-installed --report "$OUT" -c constraints-gpu.txt \
        ".[$EXTRAS]" > "$log" 2>&1; then
    tail -30 "$log"
    echo "the GPU environment does NOT resolve (.[$EXTRAS] -c constraints-gpu.txt); full log: $log"
    exit 1
fi
"$PY" - "$OUT" <<'PYEOF'
import json
import sys

report = json.load(open(sys.argv[1]))
got = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in report["install"]}
pins = {}
for line in open("constraints-gpu.txt"):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==")
        pins[name.strip().lower().replace("_", "-")] = version.strip()
wrong = {n: (v, got.get(n)) for n, v in pins.items() if got.get(n) != v}
if "+" in got.get("torch", ""):  # e.g. 2.13.0+cpu from a local wheel folder: not what a GPU machine gets
    sys.exit(f"resolved torch {got['torch']}, a local build; rerun without GPU_RESOLVE_PIP_CONFIG=1")
if wrong:
    sys.exit("resolved, but not to the pins: " + ", ".join(f"{n} wants {v}, got {g}" for n, (v, g) in wrong.items()))
print(f"GPU environment resolves: {len(got)} packages; " + ", ".join(
    f"{n} {got[n]}" for n in ("apache-beam", "vllm", "torch", "transformers", "trl", "datasets") if n in got))
PYEOF
echo "resolved in $((SECONDS - start)) s"
