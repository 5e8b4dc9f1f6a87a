"""The policy as a teacher, without Beam or a model: its id, which prompts it rolls out, rollouts as traces."""
from __future__ import annotations

import hashlib

import pytest

from curation.generation.distill import SelectConfig
from curation.difficulty.policy import chosen_rows, pass_salt, question_of, rollout_traces, wanted
from curation.generation.prompts import user_message
from curation.rejects import Reject
from curation.generation.teachers import checkpoint_hash, policy_id

TEACHER = {"model": "policy:final@0123456789ab", "prompt_version": "v1", "sampling": {"n": 4}}


def _rl_row(solution="3", choices=None, answer_type="integer", level=2) -> dict:
    return {"id": "id0", "source": "synthetic", "source_id": "0", "task": "counting", "level": level,
            "prompt": [user_message("How many circles are there?", choices)],
            "images": [{"bytes": b"png", "path": None}], "solution": solution, "answer_type": answer_type,
            "choices": choices}


def test_policy_id_hashes_the_weight_files_only(tmp_path):
    ckpt = tmp_path / "final"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"weights")
    want = hashlib.sha256(b"model.safetensors\x007\x00weights").hexdigest()
    assert checkpoint_hash(ckpt) == want and policy_id(ckpt) == f"policy:final@{want[:12]}"
    (ckpt / "config.json").write_text('{"a": 1}')  # not a weight file
    (ckpt / "optimizer.pt").write_bytes(b"state")  # nor is the optimizer's state
    assert checkpoint_hash(ckpt) == want
    (ckpt / "model.safetensors").write_bytes(b"weightz")  # same size, new bytes: a new teacher
    assert checkpoint_hash(ckpt) != want
    with pytest.raises(ValueError, match="no weight files"):
        checkpoint_hash(tmp_path)


def test_prompts_rolled_out_by_level_pass_rate_and_limit():
    assert wanted(2, None, [2, 3], None) and not wanted(1, None, [2, 3], None)
    assert wanted(1, None, None, 0.5) and wanted(1, 0.5, None, 0.5) and not wanted(1, 0.75, None, 0.5)
    shards = [([1, 2, 2], [None, 0.25, 1.0]), ([], []), ([2, 3, 2], [0.0, None, None])]
    assert chosen_rows(shards, None, None, None) == [[0, 1, 2], [], [0, 1, 2]]
    assert chosen_rows(shards, [2], None, None) == [[1, 2], [], [0, 2]]
    assert chosen_rows(shards, [2], 0.5, None) == [[1], [], [0, 2]]
    assert chosen_rows(shards, [2], 0.5, 2) == [[1], [], [0]]  # the limit counts chosen rows, in table order
    assert chosen_rows(shards, None, None, 0) == [[], [], []]


def test_question_of_undoes_the_student_prompt():
    for choices in (None, ["2", "3"]):
        text = user_message("How many?\nCount them.", choices)["content"][-1]["text"]
        assert question_of(text, choices) == "How many?\nCount them."
    assert question_of("Worded otherwise.", None) == "Worded otherwise."


def test_rollouts_become_traces_and_the_shortest_correct_one_sft():
    texts = ["<think>one two three</think><answer>3</answer>", "<think>1 2 3</think><answer>3</answer>",
             "<think>four of them</think><answer>4</answer>", "3", "<think>counting: one, two, three</think><answer>3</answer>"]
    row = _rl_row()
    out = rollout_traces(row, texts, None, TEACHER, SelectConfig(max_per_example=2), pass_salt(1))
    assert (out.n_rollouts, out.n_correct) == (5, 4)
    assert [t["status"] for t in out.traces] == ["selected", "selected", "incorrect", "bad_format", "not_shortest"]
    assert [t["correct"] for t in out.traces] == [True, True, False, True, True]
    t = out.traces[1]
    assert (t["teacher"], t["level"], t["sample_index"], t["question"], t["answer"], t["split"]) == (
        TEACHER["model"], 2, 1, "How many circles are there?", "3", "train")
    assert t["trace"] == t["raw_trace"] == texts[1] and t["rewrite_edits"] == 0
    assert [s["trace_id"] for s in out.sft] == [out.traces[0]["trace_id"], out.traces[1]["trace_id"]]
    assert out.sft[1]["messages"] == [*row["prompt"], {"role": "assistant", "content": [
        {"type": "text", "text": texts[1]}]}]
    assert out.sft[0]["images"] == row["images"] and out.sft[0]["level"] == 2
    again = rollout_traces(row, texts, None, TEACHER, SelectConfig(max_per_example=2), pass_salt(3))
    assert not {t["trace_id"] for t in again.traces} & {t["trace_id"] for t in out.traces}  # another pass's ids


def test_multiple_choice_rollouts_are_verified_against_the_letter():
    row = _rl_row(solution="B", choices=["2", "3"], answer_type="multiple_choice")
    out = rollout_traces(row, ["<think>it is three</think><answer>B</answer>",
                               "<think>it is two, so</think><answer>A</answer>"], None, TEACHER, SelectConfig())
    assert [t["correct"] for t in out.traces] == [True, False] and len(out.sft) == 1
    assert out.traces[0]["question"] == "How many circles are there?"


def test_failed_rollouts_and_verifier_errors_are_rejects():
    assert rollout_traces(_rl_row(), None, "ValueError: bad", TEACHER, SelectConfig()) == Reject(
        "rollout_error", "ValueError: bad")
    no_gold = {k: v for k, v in _rl_row().items() if k != "solution"}
    assert rollout_traces(no_gold, ["3"], None, TEACHER, SelectConfig()).reason == "verify_error"


def test_a_policys_control_tokens_never_reach_its_traces_or_sft_rows():
    """Policy rollouts are decoded without special tokens, but a checkpoint may emit its chat markers as plain
    text: the trace (and the sft target made from it) is neutralised; raw_trace keeps what was generated."""
    raw = "<think>three shapes<|im_end|></think><answer>3</answer><|endoftext|>"
    out = rollout_traces(_rl_row(), [raw], None, TEACHER, SelectConfig())
    (trace,), (sft,) = out.traces, out.sft
    assert trace["raw_trace"] == raw and trace["correct"]
    assert "<|" not in trace["trace"] and trace["trace"].startswith("<think>three shapes")
    assert sft["messages"][-1]["content"][0]["text"] == trace["trace"]
