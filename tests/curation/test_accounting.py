import pytest

from curation.accounting import ROW_STAGES, accounting, stage_counts
from schemas.counters import Count, Outcome, Stage, counts_of

O, S = Outcome, Stage


def test_a_count_writes_one_name_and_reads_it_back():
    for count in (Count(S.INGEST, O.IN), Count(S.INGEST, O.IN, "scienceqa"), Count(S.VERIFY, O.STATUS, "selected"),
                  Count(S.SPLIT, O.KEPT_OUT, "open_answer.v2")):
        assert Count.parse(count.name) == count
    assert Count(S.INGEST, O.IN, "sqa").name == "ingest.in.sqa"
    with pytest.raises(ValueError):
        Count.parse("ingest.arrived")        # not an outcome
    with pytest.raises(ValueError):
        Count.parse("digest.in")             # not a stage


def test_stage_counts_read_counts_by_stage_and_outcome():
    c = counts_of({"ingest.in": 10, "ingest.in.syn": 10, "ingest.out": 10, "validate.in": 10, "validate.out": 9,
                   "dedup.in": 9, "dedup.out": 8, "dedup.duplicates": 1, "dedup.near": 1, "decontam.in": 8,
                   "decontam.out": 8, "split.placed.train": 5, "split.placed.test": 3, "split.kept_out.open_answer": 2,
                   "distill.failed": 1, "distill.failed.ValueError": 1,
                   "caption.in": 5, "caption.out": 5, "distill.in": 5, "distill.out": 4, "verify.traces": 8,
                   "verify.correct": 6, "verify.status.selected": 4, "verify.status.incorrect": 2,
                   "verify.status.not_shortest": 2, "distill.usecs": 2_000_000, "distill.teacher_usecs": 500_000})
    counts = stage_counts(c, {"validate": 1, "dedup": 1, "distill": 1}, {"scan": 1.234})
    assert counts["validate"] == {"in": 10, "out": 9, "rejected": 1, "cpu_seconds": 0.0}
    assert counts["dedup"] == {"in": 9, "out": 8, "rejected": 0, "duplicates": 1, "exact": 0, "near": 1,
                               "rows_grouped_with_a_near_copy": 0}
    assert counts["split"] == {"train": 5, "val": 0, "test": 3, "kept_out_of_rl": 2,
                               "kept_out_by_reason": {"open_answer": 2}}
    assert counts["select"] == {"incorrect": 2, "not_shortest": 2, "selected": 4}
    assert counts["distill"] == {"in": 5, "out": 4, "rejected": 1, "skipped": 0, "failed": 1,
                                 "failed_by_reason": {"ValueError": 1}, "cpu_seconds": 2.5}
    assert counts["passes"] == {"scan": 1.23}
    books = accounting(c, {"validate": 1, "dedup": 1, "distill": 1}, examples_written=8)
    assert books == {"rows_in": 10, "rows_written": 8, "rows_rejected": 2, "rows_duplicate": 1, "balanced": False}
    assert [str(s) for s in ROW_STAGES] == ["ingest", "validate", "dedup", "decontam", "caption", "distill"]


def test_counter_names_are_written_in_one_place():
    """Every Beam counter goes through CountingDoFn.finish_bundle, which writes Count.name (schemas.counters); the
    one other is the profile's count of rows inside batches (pipelines.profile.rows_counter), not Sightline's."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    calls = [(p.relative_to(root).as_posix(), line.strip()) for pkg in ("curation", "training", "pipelines")
             for p in (root / pkg).rglob("*.py") for line in p.read_text().splitlines() if "Metrics.counter(" in line]
    assert sorted(calls) == [("pipelines/profile.py", 'return Metrics.counter(ROWS, "rows")'),
                     ("pipelines/transforms.py", "Metrics.counter(NAMESPACE, key.name).inc(n)")]
