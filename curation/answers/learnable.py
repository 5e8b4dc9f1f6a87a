"""The learnable-row rule: what a row of ``rl``, ``val`` or ``test`` must be for a reward (and an
evaluation) to score it.

A row is learnable when

- it has an ``answer_type`` (the source's, mapped, or the one its gold implies), so a set can be
  audited by type and the verifier knows what it compares;
- its own gold, given back as an answer (``<answer>gold</answer>``), verifies as correct: a gold
  the verifier cannot match to itself gives every rollout reward 0 and can never be scored;
- it is ``open`` (a sentence-length gold, which no rule decides) only when a judge is configured,
  or when the recipe keeps open rows on purpose (``rl.keep_open``).

Rows that break it are not rejected (they are still good SFT and caption material): they stay in
``examples`` only, and the pipeline counts them per reason (``EXCLUSIONS``).
"""
from __future__ import annotations

from curation.answers.verify import verify
from schemas.tables import OPEN

EXCLUSIONS = ("no_answer_type", "open_answer", "gold_does_not_verify")


def gold_as_answer(gold: str) -> str:
    """The gold written as a model's final answer, the way the prompts ask for it."""
    return f"<answer>{gold}</answer>"


def exclusion(row: dict, *, judge: bool = False, keep_open: bool = False) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``row`` may not be written to rl / val / test, else None.

    ``judge``: a judge is configured (open rows can be scored); ``keep_open``: keep them anyway.
    """
    kind = row.get("answer_type")
    if not kind:
        return "no_answer_type", "the row has no answer_type"
    gold = row.get("answer")
    if kind == OPEN:
        if judge or keep_open:
            return None
        return "open_answer", "sentence-length gold needs a judge (configure judge:, or set rl.keep_open: true)"
    if not isinstance(gold, str) or not gold.strip():
        return "gold_does_not_verify", "the row has no gold answer"
    v = verify(gold_as_answer(gold), gold, choices=row.get("choices"), answer_type=kind,
               question=row.get("question"))
    if not v.correct:
        return "gold_does_not_verify", (f"gold {gold[:60]!r} given back as the answer is {v.reason} "
                                        f"(answer_type {kind})")
    return None


__all__ = ["EXCLUSIONS", "exclusion", "gold_as_answer"]
