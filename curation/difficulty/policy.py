"""The policy as a teacher: which checkpoint wrote a trace, which prompts it rolls out, and its rollouts as traces.

Rejection sampling (as OpenVLThinker's rounds and STaR do it): the policy's verified-correct rollouts of
an rl prompt become SFT traces for the next round. The difficulty pass samples k of them anyway to
measure pass rates, so it keeps them: every rollout is a ``traces`` row with its verdict and status,
and the selected ones (``curation.generation.distill.select_traces``, the curate pipeline's own rule: correct,
well-formed, shortest first, at most ``max_per_example`` per prompt) are ``sft`` rows whose user turn
is the rl prompt the policy answered. The teacher of those rows is ``curation.generation.teachers.policy_id``:
the checkpoint's folder name and a content hash of its weight files, so a re-trained checkpoint in the
same folder is a different teacher and ``sightline audit lineage`` names the weights that wrote a row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from curation.generation.assemble import sft_row, trace_rows
from curation.generation.distill import SelectConfig
from curation.generation.judge import Judge
from curation.generation.prompts import FORMAT_INSTRUCTION, LETTERS
from curation.rejects import Reject

# ---------------------------------------------------------------- which prompts are rolled out


def wanted(level: int | None, pass_rate: float | None, levels: list[int] | None, max_pass_rate: float | None) -> bool:
    """Is an rl prompt rolled out? At one of ``levels`` (when given) and, with ``max_pass_rate``, either
    never scored or scored at most that pass rate: the prompts the policy still fails."""
    if levels is not None and level not in levels:
        return False
    return max_pass_rate is None or pass_rate is None or pass_rate <= max_pass_rate


def chosen_rows(shards: list[tuple[list, list]], levels: list[int] | None, max_pass_rate: float | None,
                limit: int | None) -> list[list[int]]:
    """Per shard (its ``level`` and ``pass_rate`` columns), the indices of the rows to roll out: the
    ``wanted`` ones, the first ``limit`` of them in table order. Every other row is carried unscored."""
    out, taken = [], 0
    for shard_levels, shard_rates in shards:
        rows = []
        for i, (level, rate) in enumerate(zip(shard_levels, shard_rates)):
            if (limit is None or taken < limit) and wanted(level, rate, levels, max_pass_rate):
                rows.append(i)
                taken += 1
        out.append(rows)
    return out


# ---------------------------------------------------------------- rollouts as traces


def question_of(prompt_text: str, choices: list[str] | None) -> str:
    """The question of a student prompt (``curation.generation.prompts.user_prompt`` undone); the whole text when it
    was worded otherwise."""
    tail = [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices or [])] + [FORMAT_INSTRUCTION]
    lines = prompt_text.split("\n")
    if len(lines) > len(tail) and lines[-len(tail):] == tail:
        return "\n".join(lines[:-len(tail)])
    return prompt_text


def prompt_text(row: dict) -> str | None:
    """The text of an rl row's prompt (its first text part)."""
    return next((p["text"] for m in row.get("prompt") or [] for p in m.get("content") or []
                 if p.get("type") == "text"), None)


def as_example(row: dict) -> dict:
    """An rl row in the examples layout ``curation.generation.assemble.trace_rows`` reads (gold answer, question, train split)."""
    text = prompt_text(row) or ""
    return {**row, "answer": row["solution"], "question": question_of(text, row.get("choices")), "split": "train",
            "caption": None, "caption_teacher": None}


def pass_salt(parent: int) -> str:
    """What makes a difficulty pass's trace ids its own: the version it rolled out (its sampling is in the
    teacher's record already). Re-running the same pass on the same parent gives the same ids and texts."""
    return f"rollouts of v{parent:04d}"


@dataclass
class RolledOut:
    """One rl prompt's rollouts: its counts, every rollout as a trace, the selected ones as sft rows."""
    n_rollouts: int
    n_correct: int
    traces: list[dict] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)


def rollout_traces(row: dict, texts: list[str] | None, error: str | None, teacher: dict, select: SelectConfig,
                   salt: str = "", judge: Judge | None = None) -> RolledOut | Reject:
    """``row``'s rollouts verified (the reward's verifier), as traces with verdicts and the selected ones as
    sft rows, or why they cannot be used. ``teacher``: ``{"model", "prompt_version", "sampling"}``;
    ``salt`` names the pass in the trace ids (``pass_salt``: a later round may roll the same prompt out
    with the same policy and must not reuse its ids).

    The traces are not rewritten (the policy read the image; there is no caption to talk about), and the
    sft row's user turn is the rl prompt itself, so SFT trains on exactly what the policy answered. With
    ``judge``, the rollouts of an ``open`` row are judged (``curation.generation.judge.judge_traces``).
    """
    if error is not None or texts is None:
        return Reject("rollout_error", error or "no rollouts")
    try:
        example = as_example(row)
        traces = trace_rows(example, texts, teacher, select, rewrite=False, salt=salt, judge=judge)
    except Exception as e:  # noqa: BLE001 - a verifier bug must not take the batch down
        return Reject("verify_error", f"{type(e).__name__}: {e}")
    sft = []
    for t in traces:
        if t["selected"]:
            s = sft_row(example, t)
            sft.append({**s, "messages": [*row["prompt"], s["messages"][-1]]})
    return RolledOut(n_rollouts=len(traces), n_correct=sum(t["correct"] for t in traces), traces=traces, sft=sft)
