"""The difficulty pass's rules without Beam or a model: scoring rollouts, rewriting rl shards, the books."""
from __future__ import annotations

import pytest

from curation.difficulty.rules import (
    STAGE,
    difficulty_counts,
    difficulty_reject,
    pass_rate,
    rl_question,
    row_key,
    score_rollouts,
    shard_jobs,
    with_scores,
)
from curation.generation.prompts import user_message
from curation.rejects import Reject
from schemas import to_table


def _rl_row(i: int, solution: str = "3", choices=None, answer_type="integer", **extra) -> dict:
    return {"id": f"id{i}", "source": "synthetic", "source_id": str(i), "task": "counting", "level": 1,
            "prompt": [user_message(f"How many circles are in image {i}?", choices)], "images": [],
            "solution": solution, "answer_type": answer_type, "choices": choices, **extra}


def test_score_counts_the_verifier_verdicts():
    texts = ["<think>one, two, three</think><answer>3</answer>", "<answer>4</answer>", "<answer>three</answer>",
             "no answer at all"]
    assert score_rollouts(_rl_row(0), texts, None) == {"n_rollouts": 4, "n_correct": 2}
    letters = ["<answer>B</answer>", "<answer>A</answer>", "<answer>(B)</answer>"]
    row = _rl_row(1, solution="B", choices=["2", "3", "4"], answer_type="multiple_choice")
    assert score_rollouts(row, letters, None) == {"n_rollouts": 3, "n_correct": 2}


def test_failed_rollouts_and_verifier_errors_are_rejects():
    assert score_rollouts(_rl_row(0), None, "ValueError: bad image") == Reject("rollout_error", "ValueError: bad image")
    assert score_rollouts(_rl_row(0), None, None).reason == "rollout_error"
    no_gold = {k: v for k, v in _rl_row(0).items() if k != "solution"}
    verdict = score_rollouts(no_gold, ["<answer>3</answer>"], None)
    assert verdict.reason == "verify_error" and verdict.detail.startswith("KeyError")


def test_reject_row_carries_lineage_question_and_key():
    row = {**_rl_row(7), "_key": row_key(2, 5)}
    out = difficulty_reject(row, Reject("rollout_error", "boom"))
    assert out["_key"] == "2:5" and out["stage"] == STAGE and out["reason"] == "rollout_error"
    assert (out["id"], out["source"], out["source_id"], out["detail"]) == ("id7", "synthetic", "7", "boom")
    assert out["question"].startswith("How many circles are in image 7?")
    assert rl_question({"prompt": []}) is None


def test_shard_jobs_skip_empty_shards_and_rows_past_the_limit():
    assert shard_jobs([3, 0, 3, 1], None) == [(0, 0), (2, 3), (3, 6)]
    assert shard_jobs([3, 0, 3, 1], 4) == [(0, 0), (2, 3)]
    assert shard_jobs([3, 0, 3, 1], 3) == [(0, 0)]
    assert shard_jobs([3, 3], 0) == []


def test_with_scores_fills_counts_keeps_order_and_drops_rejected():
    table = to_table("rl", [_rl_row(i) for i in range(4)])
    scores = {row_key(1, 0): {"n_rollouts": 4, "n_correct": 1}, row_key(1, 2): {"n_rollouts": 4, "n_correct": 0},
              row_key(0, 0): {"n_rollouts": 8, "n_correct": 8}}  # another shard's key: not this shard's row 0
    out = with_scores(table, 1, scores, rejected={row_key(1, 1)}).to_pylist()
    assert [r["id"] for r in out] == ["id0", "id2", "id3"]
    assert [(r["n_rollouts"], r["n_correct"], r["pass_rate"]) for r in out] == [
        (4, 1, 0.25), (4, 0, 0.0), (None, None, None)]  # id3 unscored (past the limit): carried as it was
    assert {k: v for k, v in out[0].items() if k not in ("n_rollouts", "n_correct", "pass_rate")} == \
           {k: v for k, v in table.to_pylist()[0].items() if k not in ("n_rollouts", "n_correct", "pass_rate")}


def test_pass_rate_and_counts_balance():
    assert pass_rate(3, 4) == 0.75 and pass_rate(None, None) is None and pass_rate(0, 0) is None
    scores = {"0:0": {"n_rollouts": 4, "n_correct": 3}, "0:1": {"n_rollouts": 4, "n_correct": 0}}
    c = difficulty_counts(5, scores, {"0:2"}, seconds=1.234)
    assert c == {"in": 5, "out": 4, "rejected": 1, "scored": 2, "unscored": 2, "rollouts": 8, "correct": 3,
                 "seconds": 1.23}
    assert c["in"] == c["out"] + c["rejected"] and c["out"] == c["scored"] + c["unscored"]


@pytest.mark.parametrize("backend", ["program", "none"])
def test_policy_needs_a_model_backend(backend):
    from curation.errors import SightlineError
    from curation.generation.teachers import TeacherSpec

    with pytest.raises(SightlineError, match="policy: backend must be one of transformers, vllm"):
        TeacherSpec(role="policy", backend=backend)


def test_score_rollouts_judges_an_open_rows_rollouts():
    from curation.difficulty.rules import score_rollouts
    from curation.generation.judge import Judge, JudgeSpec

    row = {"id": "r", "solution": "Looking at the picture, there are 3 shapes.", "answer_type": "open",
           "prompt": [{"role": "user", "content": [{"type": "text", "text": "How many shapes?"}]}]}
    texts = ["<answer>3</answer>", "<think>1 2 3</think><answer>3</answer>", "<answer>4</answer>", "no idea"]
    assert score_rollouts(row, texts, None) == {"n_rollouts": 4, "n_correct": 0}  # no rule reads a sentence gold
    assert score_rollouts(row, texts, None, Judge(JudgeSpec(backend="program"))) == {"n_rollouts": 4, "n_correct": 2}
    closed = dict(row, solution="3", answer_type="integer")
    assert score_rollouts(closed, texts, None, Judge(JudgeSpec(backend="program"))) == score_rollouts(closed, texts, None)
