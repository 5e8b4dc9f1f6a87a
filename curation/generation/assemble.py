"""From one example and its teachers' outputs to the rows of every table (examples, traces, sft, rl).

The rules the curate graph applies after the teachers, as plain functions: whether a row can be
served by the caption teacher at all, the caption verdict, trace verification and selection, and
the row layouts of ``traces``, ``sft`` and ``rl`` / ``val`` / ``test`` (the student's turn comes from
``curation.generation.prompts``, so training reads exactly what was written).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from curation.answers.learnable import exclusion
from curation.answers.verify import format_ok, verify
from curation.generation.distill import SelectConfig, rewrite_trace, select_traces
from curation.generation.judge import Judge, judge_traces
from curation.generation.prompts import (
    DISTILL_PROMPT_VERSION,
    PROMPT_VERSION,
    assistant_message,
    neutralise_control_tokens,
    user_message,
)
from curation.generation.teachers import TeacherSpec
from curation.rejects import Reject


def teachable(row: dict, caption: TeacherSpec, distill: TeacherSpec | None = None) -> bool:
    """Can the teachers serve ``row``? No when captioning is off (unless the reasoner reads the image
    itself: the ``policy`` backend), or when the program captioner (which writes from a synthetic
    scene) meets a row without one: such rows go to rl/test uncaptioned."""
    if caption.backend == "none":
        return distill is not None and distill.reads_image
    return caption.backend != "program" or bool(row.get("scene"))


def distill_record(distill: TeacherSpec) -> dict:
    """The reasoning teacher as traces and the manifest record it: a policy reads the student prompt
    (``PROMPT_VERSION``), a text reasoner the caption-based distill prompt."""
    return distill.record(PROMPT_VERSION if distill.reads_image else DISTILL_PROMPT_VERSION)


def rl_eligible(row: dict, keep_open: bool = False, judge: bool = False) -> Reject | None:
    """Why ``row`` stays out of rl/val/test (``curation.answers.learnable``: no answer type, a gold that
    does not verify against itself, an open gold without a judge or ``rl.keep_open``), or None."""
    found = exclusion(row, judge=judge, keep_open=keep_open)
    return Reject(*found) if found is not None else None


@dataclass(frozen=True)
class TeacherFailed:
    """A teacher that could not enrich a row. Not the row's fault: the row keeps its place in examples /
    rl / val / test without a caption or trace, and the stage counts ``<stage>.failed.<reason>``."""
    reason: str
    detail: str = ""


def captioned(row: dict, texts: list[str] | None, error: str | None, teacher_id: str) -> dict | TeacherFailed:
    """The row with its caption (control-token look-alikes neutralised, so they never reach the reasoner's
    prompt), or why the caption teacher's output cannot be used."""
    if error:
        return TeacherFailed("caption_failed", error)
    caption = neutralise_control_tokens((texts or [""])[0] or "")
    if not caption or not caption.strip():
        return TeacherFailed("empty_caption", "the caption teacher returned no text")
    return dict(row, caption=caption.strip(), caption_teacher=teacher_id)


def rl_row(row: dict) -> dict:
    """The rl / val / test layout of an example: a conversational prompt with one image part per image."""
    return {"id": row["id"], "source": row["source"], "source_id": row["source_id"], "task": row.get("task"),
            "level": row.get("level"), "prompt": [user_message(row["question"], row.get("choices"),
                                                                n_images=len(row["images"]))],
            "images": list(row["images"]), "solution": row["answer"], "answer_type": row.get("answer_type"),
            "choices": row.get("choices")}


def trace_id(example_id: str, teacher_model: str, sample_index: int) -> str:
    return hashlib.sha256(f"{example_id}\x00{teacher_model}\x00{sample_index}".encode()).hexdigest()[:24]


def trace_rows(row: dict, texts: list[str], teacher: dict, select: SelectConfig, rewrite: bool = True,
               salt: str = "", judge: Judge | None = None) -> list[dict]:
    """Every sampled trace of ``row``: rewritten (caption -> image; not when the teacher read the image
    itself, ``rewrite=False``), verified, and marked selected or why not. ``salt`` joins the teacher in
    the trace ids (a pass that may sample the same teacher on the same row again names its pass). With
    ``judge``, the traces the rule leaves at ``needs_judge`` are judged before selection (``judge_traces``)."""
    traces = []
    for i, raw in enumerate(texts):
        text, edits = rewrite_trace(raw or "") if rewrite else (raw or "", 0)
        text = neutralise_control_tokens(text)  # a policy's own control tokens never reach an sft target
        v = verify(text, row["answer"], choices=row.get("choices"), answer_type=row.get("answer_type"))
        traces.append({
            "id": row["id"], "source": row["source"], "source_id": row["source_id"],
            "trace_id": trace_id(row["id"], f"{teacher['model']}\x00{salt}" if salt else teacher["model"], i), "split": row["split"], "task": row.get("task"),
            "level": row.get("level"), "question": row["question"], "choices": row.get("choices"), "answer": row["answer"],
            "answer_type": row.get("answer_type"), "caption": row.get("caption"),
            "caption_teacher": row.get("caption_teacher"), "teacher": teacher["model"],
            "prompt_version": teacher["prompt_version"], "sampling": json.dumps(teacher["sampling"], sort_keys=True),
            "sample_index": i, "raw_trace": raw, "trace": text, "rewrite_edits": edits, "extracted": v.extracted,
            "correct": bool(v.correct), "format_ok": bool(format_ok(text)), "verdict_reason": v.reason,
            "length_chars": len(text)})
    return select_traces(judge_traces(traces, judge), select)


def sft_row(row: dict, trace: dict) -> dict:
    """A selected trace as a chat: the student's user turn (image parts + question) and the trace."""
    user = user_message(row["question"], row.get("choices"), n_images=len(row["images"]))
    return {"id": row["id"], "source": row["source"], "source_id": row["source_id"], "trace_id": trace["trace_id"],
            "task": row.get("task"), "level": row.get("level"), "teacher": trace["teacher"],
            "messages": [user, assistant_message(trace["trace"])], "images": list(row["images"])}


@dataclass
class Distilled:
    """What one train example becomes after distillation."""
    traces: list[dict] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)


def distilled(row: dict, texts: list[str] | None, error: str | None, teacher: dict,
              select: SelectConfig, rewrite: bool = True, judge: Judge | None = None) -> Distilled | TeacherFailed:
    """Traces (all, with verdicts; ``judge`` decides the needs_judge ones) and sft rows (the selected ones) of
    ``row``, or why there are none."""
    if error:
        return TeacherFailed("distill_failed", error)
    if not texts:
        return TeacherFailed("no_traces", "the reasoning teacher returned no text")
    traces = trace_rows(row, texts, teacher, select, rewrite, judge=judge)
    return Distilled(traces=traces, sft=[sft_row(row, t) for t in traces if t["selected"]])


def distilled_batch(results: list[tuple[dict, list[str] | None, str | None]], teacher: dict, select: SelectConfig,
                    rewrite: bool = True, judge: Judge | None = None) -> list[Distilled | TeacherFailed]:
    """``distilled`` for several ``(row, texts, error)`` at once, the needs_judge traces of all of them judged
    in one batch (a model judge generates for many rows per call), then each row's traces selected again."""
    outs = [distilled(row, texts, error, teacher, select, rewrite) for row, texts, error in results]
    done = [(row, out) for (row, _, _), out in zip(results, outs) if isinstance(out, Distilled)]
    judge_traces([t for _, out in done for t in out.traces], judge)
    for row, out in done:
        if any(t.get("judge") for t in out.traces):
            select_traces(out.traces, select)
            out.sft = [sft_row(row, t) for t in out.traces if t["selected"]]
    return outs

