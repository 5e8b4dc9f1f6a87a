"""transforms.stage_step: a rule's exception becomes a ``<stage>_error`` reject, in a real in-process Beam run."""
from __future__ import annotations

import apache_beam as beam
import pytest

from curation.rejects import Reject
from pipelines import transforms
from pipelines.batched import BatchedMap
from pipelines.runner import counters, dead_letters, new_pipeline
from schemas.counters import Count, Outcome, Stage


def _halve(row: dict):
    if row["n"] == 3:
        raise ValueError("three is odd here")
    if row["n"] == 5:
        return Reject("too_big", "n=5")
    return dict(row, half=row["n"] / 2)


def _reader(spec: dict):
    for i in range(spec["rows"]):
        if spec.get("fail_at") == i:
            raise OSError(f"{spec['name']}: truncated at row {i}")
        yield {"id": f"{spec['name']}-{i}", "n": i}
    yield transforms.Routed(counts=((Count(Stage.INGEST, Outcome.TURNS_LEFT_OUT), 1),))


_SEEN: dict[str, list] = {}  # what the in-process run emitted (a module-level function is pickled by name)


def _keep(x, name: str) -> None:
    _SEEN.setdefault(name, []).append(x)


def _run(build):
    _SEEN.clear()
    p = new_pipeline(1)
    for name, pcoll in build(p).items():
        pcoll | f"Keep {name}" >> beam.Map(_keep, name)
    result = p.run()
    result.wait_until_finish()
    return {k: list(v) for k, v in _SEEN.items()}, counters(result)


def test_a_rule_that_raises_is_a_reject_row_and_is_not_counted():
    def build(p):
        out = (p | beam.Create([{"id": f"r{n}", "n": n} for n in range(6)])
               | "Halve" >> transforms.stage_step(transforms.RunStage(Stage.VALIDATE, _halve, timed=True)))
        return {"rows": out["rows"], "rejects": out[transforms.REJECTS],
                "errors": dead_letters(out[transforms.BAD], "validate")}

    got, c = _run(build)
    assert sorted(r["n"] for r in got["rows"]) == [0, 1, 2, 4]
    assert all(r["half"] == r["n"] / 2 for r in got["rows"])
    assert [(r["reason"], r["detail"]) for r in got["rejects"]] == [("too_big", "n=5")]
    (err,) = got["errors"]
    assert err["stage"] == "validate" and err["reason"] == "validate_error"
    assert err["detail"].startswith("ValueError: ValueError('three is odd here')")
    assert err["id"] == "r3"
    # the row that raised was neither in nor out: 5 met the rule, 4 kept, 1 rejected (the error is the reject row)
    assert c[Count(Stage.VALIDATE, Outcome.IN)] == 5
    assert c[Count(Stage.VALIDATE, Outcome.OUT)] == 4
    assert c[Count(Stage.VALIDATE, Outcome.REJECTED)] == 1
    assert c[Count(Stage.VALIDATE, Outcome.USECS)] > 0


def test_a_reader_that_raises_keeps_the_rows_before_the_error_and_the_books_balance():
    specs = [{"name": "good", "rows": 4}, {"name": "bad", "rows": 4, "fail_at": 2}]

    def build(p):
        out = (p | beam.Create(specs)
               | "Read" >> transforms.stage_step(transforms.RunStage(Stage.INGEST, _reader, many=True)))
        return {"rows": out["rows"], "errors": dead_letters(out[transforms.BAD], "ingest")}

    got, c = _run(build)
    assert sorted(r["id"] for r in got["rows"]) == ["bad-0", "bad-1", "good-0", "good-1", "good-2", "good-3"]
    (err,) = got["errors"]
    assert err["reason"] == "ingest_error" and "truncated at row 2" in err["detail"]
    # rows in = rows out + the error reject: 6 rows read, and the failed read counted once
    assert c[Count(Stage.INGEST, Outcome.IN)] == 7 and c[Count(Stage.INGEST, Outcome.OUT)] == 6
    assert c[Count(Stage.INGEST, Outcome.TURNS_LEFT_OUT)] == 1  # the good reader's totals only


def test_a_failed_batch_counts_no_row_in_its_rows_become_rejects_downstream():
    def build(p):
        out = (p | beam.Create([{"name": "batch", "rows": 3, "fail_at": 0}])
               | "Judge" >> transforms.stage_step(transforms.RunStage(Stage.DISTILL, _reader, many=True, batch=True)))
        return {"rows": out["rows"], "errors": dead_letters(out[transforms.BAD], "distill")}

    got, c = _run(build)
    assert "rows" not in got and len(got["errors"]) == 1
    assert c.get(Count(Stage.DISTILL, Outcome.IN), 0) == 0


_SEEN_WHEN_READ: list[int] = []


def _watched_reader(spec: dict):
    for i in range(spec["rows"]):
        _SEEN_WHEN_READ.append(len(_SEEN.get("rows", [])))  # rows the next step had when row i was made
        yield {"id": f"r{i}", "n": i}


def test_a_reader_streams_its_rows_to_the_next_step():
    _SEEN_WHEN_READ.clear()

    def build(p):
        out = (p | beam.Create([{"rows": 50}])
               | "Read" >> transforms.stage_step(transforms.RunStage(Stage.INGEST, _watched_reader, many=True,
                                                                      timed=True)))
        return {"rows": out["rows"]}

    got, c = _run(build)
    assert len(got["rows"]) == 50 and c[Count(Stage.INGEST, Outcome.OUT)] == 50
    # fused in one bundle: row i reached the next step before row i + 1 was read (none held back)
    assert _SEEN_WHEN_READ == list(range(50))


def test_without_stage_step_an_exception_fails_the_run():
    p = new_pipeline(1)
    _ = (p | beam.Create([{"id": "r3", "n": 3}])
         | "Halve" >> beam.ParDo(transforms.RunStage(Stage.VALIDATE, _halve)).with_outputs(transforms.REJECTS, main="rows"))
    with pytest.raises(Exception, match="three is odd here"):
        p.run().wait_until_finish()


_LOG: list = []


def _logged_square(x: int) -> int:
    _LOG.append(("fn", x))
    return x * x


def _log_out(y: int) -> None:
    _LOG.append(("out", y))


def test_a_batched_map_runs_its_function_over_a_batch_then_sends_the_batch_on_and_the_rest_at_the_end():
    _LOG.clear()

    def build(p):
        out = (p | beam.Create([7]) | "Spread" >> beam.FlatMap(range)
               | "Square" >> beam.ParDo(BatchedMap(_logged_square, size=3)))
        out | "Log" >> beam.Map(_log_out)
        return {"squares": out}

    got, _ = _run(build)
    assert sorted(got["squares"]) == [x * x for x in range(7)]
    fn, out = (lambda x: ("fn", x)), (lambda x: ("out", x * x))
    # one bundle: three calls, their three outputs, ... and the last one from the end of the bundle
    assert _LOG == [fn(0), fn(1), fn(2), out(0), out(1), out(2), fn(3), fn(4), fn(5), out(3), out(4), out(5),
                    fn(6), out(6)]
