"""Counting what happened to every row: per-stage counts, and the books that must balance.

The pipelines count ``schemas.counters.Count(stage, outcome[, detail])``s; ``stage_counts`` reads them by
stage and outcome (never by a name prefix) with the rejects per stage into the manifest's
``stage_counts``, and ``accounting`` checks rows in = rows written + rows rejected + rows dropped as duplicates.
"""
from __future__ import annotations

from curation.split import SPLITS
from schemas.counters import Count, Outcome, Stage

# The stages a row passes through, in order (the manifest's row stages; split, verify and select count
# sides and traces).
ROW_STAGES = (Stage.INGEST, Stage.VALIDATE, Stage.DEDUP, Stage.DECONTAM, Stage.CAPTION, Stage.DISTILL)


def by_detail(c: dict[Count, int], stage: Stage, outcome: Outcome) -> dict[str, int]:
    """``{detail: n}`` of one stage's outcome counted per detail (a split, a status, a reason)."""
    return {k.detail: v for k, v in sorted(c.items()) if k.stage == stage and k.outcome == outcome and k.detail}


def stage_counts(c: dict[Count, int], rejects_by_stage: dict[str, int], seconds: dict[str, float]) -> dict:
    """The manifest's per-stage counts from the pipeline's counts and the rejects per stage."""
    O = Outcome

    def g(stage: Stage, outcome: Outcome) -> int:
        return c.get(Count(stage, outcome), 0)

    def rows(stage: Stage, *extra: Outcome) -> dict:
        out = {"in": g(stage, O.IN), "out": g(stage, O.OUT), "rejected": rejects_by_stage.get(stage, 0)}
        return out | {str(o): g(stage, o) for o in extra}

    def taught(stage: Stage) -> dict:  # a teacher's stage: rows it let through, and rows it failed on per reason
        return rows(stage, O.SKIPPED, O.FAILED) | {"failed_by_reason": by_detail(c, stage, O.FAILED)}

    kept_out = by_detail(c, Stage.SPLIT, O.KEPT_OUT)
    counts = {
        "ingest": rows(Stage.INGEST, O.TURNS_LEFT_OUT),
        "validate": rows(Stage.VALIDATE),
        "dedup": rows(Stage.DEDUP) | {"rejected": 0, "duplicates": rejects_by_stage.get(Stage.DEDUP, 0),
                                      "exact": g(Stage.DEDUP, O.EXACT), "near": g(Stage.DEDUP, O.NEAR),
                                      "rows_grouped_with_a_near_copy": g(Stage.DEDUP, O.GROUPED_ROWS)},
        "decontam": rows(Stage.DECONTAM),
        "split": {s: by_detail(c, Stage.SPLIT, O.PLACED).get(s, 0) for s in SPLITS} | {
            "kept_out_of_rl": sum(kept_out.values()), "kept_out_by_reason": kept_out},
        "caption": taught(Stage.CAPTION),
        "distill": taught(Stage.DISTILL),
        "verify": {"traces": g(Stage.VERIFY, O.TRACES), "correct": g(Stage.VERIFY, O.CORRECT),
                   "judged": by_detail(c, Stage.VERIFY, O.JUDGED)},  # needs_judge traces a judge decided
        "select": by_detail(c, Stage.VERIFY, O.STATUS),
    }
    # seconds spent inside each stage's functions (summed over workers), teachers included
    for stage, keys in ((Stage.INGEST, [O.USECS]), (Stage.VALIDATE, [O.USECS]), (Stage.CAPTION, [O.TEACHER_USECS]),
                        (Stage.DISTILL, [O.TEACHER_USECS, O.USECS])):
        counts[stage]["cpu_seconds"] = round(sum(g(stage, k) for k in keys) / 1e6, 2)
    counts["passes"] = {k: round(v, 2) for k, v in seconds.items()}
    return counts


def accounting(c: dict[Count, int], rejects_by_stage: dict[str, int], examples_written: int) -> dict:
    """Rows in = written + rejected + duplicates; ``balanced`` says whether it holds (the store refuses otherwise)."""
    books = {"rows_in": c.get(Count(Stage.INGEST, Outcome.IN), 0), "rows_written": examples_written,
             "rows_rejected": sum(v for k, v in rejects_by_stage.items() if k != Stage.DEDUP),
             "rows_duplicate": rejects_by_stage.get(Stage.DEDUP, 0)}
    books["balanced"] = books["rows_in"] == books["rows_written"] + books["rows_rejected"] + books["rows_duplicate"]
    return books


def ingest_reject_counts(rejects: list[tuple[str, str, str, str]], stage_wanted: str = "ingest") -> dict[str, dict]:
    """``(stage, source, reason, detail)`` rejects of one stage -> per source: {reason: count} and one
    example detail each."""
    out: dict[str, dict] = {}
    for stage, source, reason, detail in rejects:
        if stage != stage_wanted:
            continue
        s = out.setdefault(source, {"reasons": {}, "details": {}})
        s["reasons"][reason] = s["reasons"].get(reason, 0) + 1
        s["details"].setdefault(reason, detail or "")
    return out


HINTS = {
    "open_answer": "configure a judge (judge: backend ...) or set rl.keep_open: true to keep open answers",
    "no_answer_type": "map the source's answer_type column or set answer_type on the source entry",
    "gold_does_not_verify": "the golds do not verify against themselves: check the answer column and answer_type",
}


def empty_result(rows_in: int, tables: dict[str, int], kept_out: dict[str, int],
                 rejects_by_reason: dict[str, int]) -> str | None:
    """One line when a run that read rows wrote no trainable row (rl + val + test empty and no sft),
    naming the top reason with a hint; None otherwise."""
    trainable = sum(tables.get(t, 0) for t in ("rl", "val", "test", "sft"))
    if rows_in <= 0 or trainable:
        return None
    causes = {f"kept out of rl/val/test: {k}": v for k, v in kept_out.items() if v}
    causes.update({f"rejected: {k}": v for k, v in rejects_by_reason.items() if v})
    if not causes:
        return f"{rows_in} rows read but no trainable row written (rl, val, test and sft are empty)"
    top, n = max(causes.items(), key=lambda kv: (kv[1], kv[0]))
    reason = top.rsplit(": ", 1)[-1].split("/")[-1]
    hint = HINTS.get(reason)
    if reason == "image_lfs_pointer":
        hint = f"{n} images are Git LFS pointers: fetch them with git lfs pull"
    line = f"{rows_in} rows read but no trainable row written (rl, val, test and sft are empty); top: {top} x{n}"
    return f"{line}; {hint}" if hint else line
