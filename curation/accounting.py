"""Counting what happened to every row: counter names, per-stage counts, and the books that must balance.

Stages count ``<stage>.<what>`` (``ingest.in``, ``validate.rejected``, ``split.test``, ...) under one
namespace; ``stage_counts`` turns those counters and the rejects into the manifest's
``stage_counts`` and ``accounting``: rows in = rows written + rows rejected + rows dropped as duplicates.
"""
from __future__ import annotations

from curation.split import SPLITS

NAMESPACE = "sightline"
# One name per stage, in the order rows meet them. ``distill`` is the reasoning teacher's stage
# (its teacher role has the same name); ``verify`` and ``select`` count traces, not rows.
STAGES = ("ingest", "validate", "dedup", "decontam", "split", "caption", "distill", "verify", "select")
ROW_STAGES = ("ingest", "validate", "dedup", "decontam", "caption", "distill")
OTHER_STAGES = ("difficulty",)  # the difficulty pass: k rollouts of a policy per rl prompt


def counter_name(stage: str, what: str) -> str:
    assert stage in STAGES or stage in OTHER_STAGES, f"unknown stage {stage!r}"
    return f"{stage}.{what}"


def model_metrics_namespace(stage: str) -> str:
    """Where Beam's RunInference puts a model stage's timings (``<namespace>_<stage>``; the runner reads them)."""
    assert stage in STAGES or stage in OTHER_STAGES, f"unknown stage {stage!r}"
    return f"{NAMESPACE}_{stage}"


def stage_counts(c: dict[str, int], rejects_by_stage: dict[str, int], seconds: dict[str, float]) -> dict:
    """The manifest's per-stage counts from the pipeline counters and the rejects per stage."""
    g = lambda k: c.get(k, 0)
    counts = {
        "ingest": {"in": g("ingest.in"), "out": g("ingest.out"), "rejected": rejects_by_stage.get("ingest", 0),
                   "turns_left_out": g("ingest.turns_left_out")},
        "validate": {"in": g("validate.in"), "out": g("validate.out"),
                     "rejected": rejects_by_stage.get("validate", 0)},
        "dedup": {"in": g("dedup.in"), "out": g("dedup.out"), "rejected": 0,
                  "duplicates": rejects_by_stage.get("dedup", 0), "exact": g("dedup.exact"),
                  "near": g("dedup.near"), "rows_grouped_with_a_near_copy": g("dedup.grouped_rows")},
        "decontam": {"in": g("decontam.in"), "out": g("decontam.out"),
                     "rejected": rejects_by_stage.get("decontam", 0)},
        "split": {s: g(f"split.{s}") for s in SPLITS} | {
            "kept_out_of_rl": sum(v for k, v in c.items() if k.startswith("split.kept_out.")),
            "kept_out_by_reason": {k[len("split.kept_out."):]: v for k, v in sorted(c.items())
                                   if k.startswith("split.kept_out.")}},
        "caption": {"in": g("caption.in"), "out": g("caption.out"), "rejected": rejects_by_stage.get("caption", 0),
                    "skipped": g("caption.skipped"), "failed": g("caption.failed"),
                    "failed_by_reason": _by_prefix(c, "caption.failed.")},
        "distill": {"in": g("distill.in"), "out": g("distill.out"), "rejected": rejects_by_stage.get("distill", 0),
                    "skipped": g("distill.skipped"), "failed": g("distill.failed"),
                    "failed_by_reason": _by_prefix(c, "distill.failed.")},
        "verify": {"traces": g("verify.traces"), "correct": g("verify.correct")},
        "select": {k[len("verify.status_"):]: v for k, v in sorted(c.items()) if k.startswith("verify.status_")},
    }
    # seconds spent inside each stage's functions (summed over workers), teachers included
    for stage, keys in (("ingest", ["ingest.usecs"]), ("validate", ["validate.usecs"]),
                        ("caption", ["caption.teacher_usecs"]), ("distill", ["distill.teacher_usecs", "distill.usecs"])):
        counts[stage]["cpu_seconds"] = round(sum(g(k) for k in keys) / 1e6, 2)
    counts["passes"] = {k: round(v, 2) for k, v in seconds.items()}
    return counts


def _by_prefix(c: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in sorted(c.items()) if k.startswith(prefix)}


def accounting(c: dict[str, int], rejects_by_stage: dict[str, int], examples_written: int) -> dict:
    """Rows in = written + rejected + duplicates; ``balanced`` says whether it holds (the store refuses otherwise)."""
    books = {"rows_in": c.get("ingest.in", 0), "rows_written": examples_written,
             "rows_rejected": sum(v for k, v in rejects_by_stage.items() if k != "dedup"),
             "rows_duplicate": rejects_by_stage.get("dedup", 0)}
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
