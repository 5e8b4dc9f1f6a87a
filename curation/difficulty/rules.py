"""The difficulty pass's rules: k rollouts of a policy per rl prompt -> ``n_correct`` -> pass rate.

A prompt's difficulty is the policy's empirical pass rate p = n_correct / n_rollouts over k sampled
rollouts, scored by the same ``curation.answers.verify.verify`` as GRPO's accuracy reward and evaluation (the
offline estimate VADE starts its Beta posteriors from and MMR1's variance-aware sampling weighs by
p(1 - p)). The pass writes a child version of the data (``curation.difficulty.derive.derive_version``): ``rl``
gets ``n_rollouts``, ``n_correct`` and ``pass_rate`` with its rows, order and shard names kept; a
prompt whose rollouts or verification fail is a ``rejects`` row (stage ``difficulty``) instead.

Rows are keyed ``"<shard>:<row>"`` (``row_key``) between the rollouts and the rewrite, so a score
finds its row whatever order the workers return them in.
"""
from __future__ import annotations

import pyarrow as pa

import curation.answers.verify
from curation.generation.judge import Judge, JudgeItem
from curation.rejects import Reject, reject_row

STAGE = "difficulty"


def row_key(shard: int, row: int) -> str:
    return f"{shard}:{row}"


def shard_jobs(rows_per_shard: list[int], limit: int | None) -> list[tuple[int, int]]:
    """``(shard index, index of its first row overall)`` for the shards holding one of the first ``limit`` rows."""
    jobs, offset = [], 0
    for shard, rows in enumerate(rows_per_shard):
        if rows and (limit is None or offset < limit):
            jobs.append((shard, offset))
        offset += rows
    return jobs


def rl_question(row: dict) -> str | None:
    """The text of an rl row's prompt (its first text part), for the rejects row a person reads."""
    return next((p["text"] for m in row.get("prompt") or [] for p in m.get("content") or []
                 if p.get("type") == "text"), None)


def score_rollouts(row: dict, texts: list[str] | None, error: str | None, judge: Judge | None = None) -> dict | Reject:
    """``{"n_rollouts", "n_correct"}`` of one rl row's rollouts, or why they cannot be scored. With ``judge``
    (an ``open`` row's sentence gold, which no rule decides), the rollouts the rule leaves at ``needs_judge``
    count as correct when judged correct, all of the row's in one judge call, as GRPO's reward counts them."""
    if error is not None or texts is None:
        return Reject("rollout_error", error or "no rollouts")
    try:
        verdicts = [curation.answers.verify.verify(t, row["solution"], choices=row.get("choices"),
                                                   answer_type=row.get("answer_type")) for t in texts]
    except Exception as e:  # noqa: BLE001 - a verifier bug must not take the batch down
        return Reject("verify_error", f"{type(e).__name__}: {e}")
    correct = [bool(v.correct) for v in verdicts]
    pending = [i for i, v in enumerate(verdicts) if v.reason == "needs_judge"]
    if judge is not None and pending:
        choices = tuple(row["choices"]) if row.get("choices") else None
        items = [JudgeItem(f"{row.get('id')}:{i}", rl_question(row) or "", row["solution"], texts[i] or "", choices)
                 for i in pending]
        for i, verdict in zip(pending, judge.judge(items), strict=True):
            correct[i] = verdict == "judged_correct"
    return {"n_rollouts": len(correct), "n_correct": sum(correct)}


def difficulty_reject(row: dict, verdict: Reject) -> dict:
    """The rejects row of an rl prompt (its question is its prompt's text), keyed like its scores."""
    rejected = reject_row(STAGE, {**row, "question": rl_question(row)}, verdict.reason, verdict.detail)
    return {"_key": row.get("_key"), **rejected}


def pass_rate(n_correct: int | None, n_rollouts: int | None) -> float | None:
    return n_correct / n_rollouts if n_rollouts else None


def with_scores(table: pa.Table, shard: int, scores: dict[str, dict], rejected: set[str]) -> pa.Table:
    """One rl shard with its scored rows' counts and pass rates filled in and its rejected rows left out.

    Rows without a score (past ``--limit``) keep the values they had.
    """
    keys = [row_key(shard, i) for i in range(table.num_rows)]
    n, c = table.column("n_rollouts").to_pylist(), table.column("n_correct").to_pylist()
    for i, key in enumerate(keys):
        if key in scores:
            n[i], c[i] = scores[key]["n_rollouts"], scores[key]["n_correct"]
    columns = {"n_rollouts": pa.array(n, pa.int32()), "n_correct": pa.array(c, pa.int32()),
               "pass_rate": pa.array([pass_rate(ci, ni) for ni, ci in zip(n, c)], pa.float64())}
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table.filter(pa.array([k not in rejected for k in keys], pa.bool_()))  # typed: a shard may be empty


def difficulty_counts(rows_in: int, scores: dict[str, dict], rejected: set[str], seconds: float) -> dict:
    """The manifest's ``stage_counts.difficulty``: in = out + rejected; out = scored + unscored."""
    out = rows_in - len(rejected)
    return {"in": rows_in, "out": out, "rejected": len(rejected), "scored": len(scores),
            "unscored": out - len(scores), "rollouts": sum(s["n_rollouts"] for s in scores.values()),
            "correct": sum(s["n_correct"] for s in scores.values()), "seconds": round(seconds, 2)}
