"""Shared fixtures. Tests run offline, build their own data, and keep temp files in tmp_path."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import io

import pytest
from PIL import Image


def png_bytes(color=(255, 0, 0), size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def message(role: str, text: str, image: bool = False) -> dict:
    parts = ([{"type": "image", "text": None}] if image else []) + [{"type": "text", "text": text}]
    return {"role": role, "content": parts}


@pytest.fixture
def hand_built_tables():
    """A small version built by hand: 3 examples (2 train, 1 test), 4 traces, 1 sft, 2 rl, 1 test, 3 rejects."""
    imgs = [png_bytes((i * 60, 0, 0)) for i in range(3)]
    ex = []
    for i, split in enumerate(["train", "train", "test"]):
        ex.append({"id": f"e{i}", "source": "hand", "source_id": str(i), "split": split,
                   "task": "counting" if i < 2 else "chart", "level": 1,
                   "images": [{"bytes": imgs[i], "path": None}], "width": 32, "height": 32,
                   "image_hash": f"{i:016x}", "question": f"How many? {i}", "choices": None,
                   "answer": str(i + 1), "answer_type": "integer", "scene": "{}",
                   "caption": f"caption {i}", "caption_teacher": "program"})
    traces = []
    for j, (eid, correct, length, selected) in enumerate(
            [("e0", True, 40, True), ("e0", False, 60, False), ("e1", False, 100, False), ("e1", False, 20, False)]):
        traces.append({"id": eid, "source": "hand", "source_id": eid[1:], "trace_id": f"t{j}", "split": "train",
                       "task": "counting", "question": "q", "choices": None, "answer": "1",
                       "answer_type": "integer", "caption": "c", "caption_teacher": "program",
                       "teacher": "program", "prompt_version": "v1", "sampling": "{}", "sample_index": j,
                       "raw_trace": "x" * length, "trace": "x" * length, "rewrite_edits": 0,
                       "extracted": "1" if correct else "2", "correct": correct, "format_ok": True,
                       "verdict_reason": "match" if correct else "mismatch", "length_chars": length,
                       "selected": selected, "status": "selected" if selected else "incorrect"})
    sft = [{"id": "e0", "source": "hand", "source_id": "0", "trace_id": "t0", "task": "counting",
            "teacher": "program",
            "messages": [message("user", "How many? 0", image=True), message("assistant", "<think>x</think><answer>1</answer>")],
            "images": [{"bytes": imgs[0], "path": None}]}]
    rl = [{"id": f"e{i}", "source": "hand", "source_id": str(i), "task": "counting", "level": 1,
           "prompt": [message("user", f"How many? {i}", image=True)], "images": [{"bytes": imgs[i], "path": None}],
           "solution": str(i + 1), "answer_type": "integer", "choices": None,
           "pass_rate": pr, "n_rollouts": None if pr is None else 8, "n_correct": None if pr is None else round(pr * 8)}
          for i, pr in [(0, 0.25), (1, None)]]
    test = [{"id": "e2", "source": "hand", "source_id": "2", "task": "chart", "level": 1,
             "prompt": [message("user", "How many? 2", image=True)], "images": [{"bytes": imgs[2], "path": None}],
             "solution": "3", "answer_type": "integer", "choices": None}]
    rejects = [{"id": f"r{i}", "source": "hand", "source_id": f"r{i}", "stage": st, "reason": rs, "detail": ""}
               for i, (st, rs) in enumerate([("validate", "not_an_image"), ("validate", "not_an_image"),
                                             ("verify", "no_correct_trace")])]
    return {"examples": ex, "traces": traces, "sft": sft, "rl": rl, "test": test, "rejects": rejects}


@pytest.fixture(scope="session")
def taught_policy_dir(tmp_path_factory):
    """The tiny policy taught to answer in the format (``tests.policy_model``), built once per session."""
    import torch

    from tests.policy_model import taught_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from a second thread on a shared machine
    try:
        return taught_policy(tmp_path_factory.mktemp("policy") / "round1")
    finally:
        torch.set_num_threads(threads)
