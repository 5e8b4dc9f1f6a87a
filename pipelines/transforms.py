"""Beam adapters over `curation/` rules: one DoFn, ``RunStage``, runs every curate stage's rule.

A rule takes an element and returns the row to keep, a ``curation.rejects.Reject``, or a ``Routed``
(the kept row, rows for other outputs, and counts beyond in / out / rejected); a reader's rule returns
an iterable of those. ``RunStage`` counts ``Count(stage, outcome)``s (``schemas.counters``), sends a
reject to the ``rejects`` output with its reason and every other row to its output. Unexpected
exceptions in a rule are caught by the stage itself (``stage_step``: the dead letter Beam's
``with_exception_handling`` would make, on output ``bad``, without its wrapper per element) and become
``<stage>_error`` rejects (``pipelines.runner.dead_letters``).
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from curation.generation.assemble import (
    TeacherFailed,
    captioned,
    distilled,
    distilled_batch,
    rl_eligible,
    rl_row,
)
from curation.generation.rollouts import generator_for, request_for, texts_or_errors
from curation.rejects import Reject, error_reject_row, reject_row
from curation.sources import read_source
from curation.synthetic import generate
from schemas import TABLES
from schemas.counters import NAMESPACE, Count, Outcome, Stage

REJECTS = "rejects"
BAD = "bad"  # dead letters: (element, (exception type, repr, traceback lines)), as with_exception_handling makes them


_COLUMNS = {table: tuple(schema.names) for table, schema in TABLES.items()}


def table_row(table: str, row: dict) -> dict:
    """Exactly the table's columns (missing nullable ones as None), as Beam's Parquet sink needs."""
    return {name: row.get(name) for name in _COLUMNS[table]}


@dataclass(frozen=True)
class Routed:
    """A rule's verdict when a kept row or a reject is not all: ``row`` goes to the main output (counted
    ``out``), ``reject`` to ``rejects``; ``outputs`` are ``(output tag, row)`` pairs for other tables
    and ``counts`` are ``(Count, n)`` pairs beyond in / out / rejected."""

    row: Any = None
    reject: Reject | None = None
    outputs: tuple[tuple[str, dict], ...] = ()
    counts: tuple[tuple[Count, int], ...] = ()

    @property
    def counts_only(self) -> bool:
        """Counts about no row (a reader's totals): no row met, nothing routed."""
        return self.row is None and self.reject is None and not self.outputs


class CountingDoFn(beam.DoFn):
    """Base: ``Count``s summed in the DoFn and handed to Beam's counters once per bundle (a Beam counter
    update per row per count costs more than the rule of a light stage)."""

    stage: Stage

    def __init__(self):
        self._pending: dict[Count, int] = {}
        self._keys: dict[tuple, Count] = {}  # (outcome, detail, stage) -> its Count, made once (enum lookups cost)

    def count(self, outcome: Outcome | str, n: int = 1, detail: str = "", stage: Stage | str | None = None) -> None:
        key = self._key(outcome, detail, stage)
        self._pending[key] = self._pending.get(key, 0) + n

    def _key(self, outcome: Outcome | str, detail: str = "", stage: Stage | str | None = None) -> Count:
        key = self._keys.get((outcome, detail, stage))
        if key is None:
            key = self._keys[(outcome, detail, stage)] = Count(Stage(stage or self.stage), Outcome(outcome), detail)
        return key

    def add(self, counts: Iterable[tuple[Count, int]]) -> None:
        for key, n in counts:
            self._pending[key] = self._pending.get(key, 0) + n

    def finish_bundle(self):
        for key, n in self._pending.items():
            Metrics.counter(NAMESPACE, key.name).inc(n)
        self._pending = {}


class RunStage(CountingDoFn):
    """The one shape every curate stage runs in: ``rule(element, *args)`` -> row | ``Reject`` | ``Routed``.

    ``many``: the rule is a reader and returns an iterable of verdicts, each one a row met (``in``).
    ``timed``: the time inside the rule is counted (``usecs``, summed over elements). A rule object with a
    ``setup()`` method is set up once per worker (e.g. reading decisions). A reject names the row it is
    about: the element, or a teacher result's ``example``. ``errors``: an exception in the rule (or in routing
    its verdicts) becomes a dead letter on output ``bad`` (use :func:`stage_step`): a one-row rule's element is then
    neither emitted nor counted; a reader keeps the rows it emitted before the error and its element counts as
    one more row in (:meth:`_read`), unless it is a ``batch`` of rows (``beam.BatchElements``), which the graph
    unbatches into a reject per row. Without ``errors``, the exception fails the bundle.
    """

    def __init__(self, stage: Stage, rule, *args, many: bool = False, timed: bool = False, errors: bool = False,
                 batch: bool = False):
        super().__init__()
        self.stage, self.rule, self.args, self.many, self.timed = Stage(stage), rule, args, many, timed
        self.errors, self.batch = errors, batch

    def setup(self):
        if hasattr(self.rule, "setup"):
            self.rule.setup()

    def start_bundle(self):
        # a plain kept row (most verdicts) is counted by two integers, not two Count lookups: added up at the end
        self._kept = 0

    def process(self, element):
        if self.many:
            yield from self._read(element)
            return
        t = time.perf_counter()
        try:
            out = self.rule(element, *self.args)
            if type(out) is dict:  # the common case: a row kept as it is
                outputs = None
            else:  # the verdict routed before anything is emitted or counted: all of the element, or none of it
                outputs, counts = [], []
                self._route(getattr(element, "example", element), out, outputs, counts)
        except Exception as exn:
            if not self.errors:
                raise
            yield self._dead_letter(element, exn)
            return
        if self.timed:  # the rule's time, before the rows go on to the next fused steps
            self.count(Outcome.USECS, int((time.perf_counter() - t) * 1e6))
        if outputs is None:
            self._kept += 1
            yield out
            return
        for c in counts:
            self.add(c)
        yield from outputs

    def _read(self, element):
        """A reader's verdicts, each emitted as it comes: a file of a million rows is never held. An exception part
        way through keeps what came before (rows already on their way) and adds a dead letter for the element,
        counted as one more row in, so the books (in = written + rejected + duplicates) still balance with its
        ``<stage>_error`` reject. ``timed`` counts the time inside the reader only, not the fused steps after it."""
        spent = 0.0
        try:
            t = time.perf_counter()
            verdicts = iter(self.rule(element, *self.args))
            spent += time.perf_counter() - t
            while True:
                t = time.perf_counter()
                try:
                    verdict = next(verdicts)
                except StopIteration:
                    spent += time.perf_counter() - t
                    break
                spent += time.perf_counter() - t
                if type(verdict) is dict:
                    self._kept += 1
                    yield verdict
                    continue
                outputs, counts = [], []
                self._route(getattr(element, "example", element), verdict, outputs, counts)
                for c in counts:
                    self.add(c)
                yield from outputs
        except Exception as exn:
            if not self.errors:
                raise
            if not self.batch:  # a batch's rows each become a reject downstream: nothing to count for it here
                self.count(Outcome.IN)
            yield self._dead_letter(element, exn)
        if self.timed:
            self.count(Outcome.USECS, int(spent * 1e6))

    @staticmethod
    def _dead_letter(element, exn):
        """What Beam's ``with_exception_handling`` emits: ``(element, (type, repr, traceback lines))`` on ``bad``."""
        return beam.pvalue.TaggedOutput(BAD, (element, (type(exn), repr(exn), traceback.format_exception(exn))))

    def finish_bundle(self):
        if self._kept:
            self.count(Outcome.IN, self._kept)
            self.count(Outcome.OUT, self._kept)
            self._kept = 0
        return super().finish_bundle()

    def _route(self, row, verdict, outputs: list, counts: list) -> None:
        """One verdict -> its outputs (appended to ``outputs``) and its counts (one tuple of ``(Count, n)``s
        appended to ``counts``)."""
        if isinstance(verdict, Routed) and verdict.counts_only:  # e.g. a reader's totals, after its last row
            counts.append(verdict.counts)
            return
        if isinstance(verdict, Reject):
            verdict = Routed(reject=verdict)
        elif not isinstance(verdict, Routed):
            verdict = Routed(row=verdict)
        mine = [(self._key(Outcome.IN), 1), *verdict.counts]
        if verdict.reject is not None:
            mine.append((self._key(Outcome.REJECTED), 1))
            outputs.append(beam.pvalue.TaggedOutput(REJECTS, reject_row(self.stage, row, verdict.reject.reason,
                                                                        verdict.reject.detail)))
        outputs += [beam.pvalue.TaggedOutput(tag, out) for tag, out in verdict.outputs]
        if verdict.row is not None:
            mine.append((self._key(Outcome.OUT), 1))
            outputs.append(verdict.row)
        counts.append(mine)


def stage_step(dofn: RunStage):
    """``dofn`` as a ParDo whose rule's exceptions become dead letters: outputs ``rows`` (main), ``rejects``,
    ``bad`` (for ``pipelines.runner.dead_letters``) and any other tag the rule routes to. What Beam's
    ``with_exception_handling`` did, minus a wrapper DoFn around every element (and its own graph steps)."""
    dofn.errors = True
    return beam.ParDo(dofn).with_outputs(REJECTS, BAD, main="rows", allow_unknown_tags=True)


class PassThrough(CountingDoFn):
    """Rows that a stage lets through untouched (e.g. no teacher can serve them), counted as ``outcome``."""

    def __init__(self, stage: Stage, outcome: Outcome):
        super().__init__()
        self.stage, self.outcome = Stage(stage), Outcome(outcome)

    def process(self, row):
        self.count(self.outcome)
        yield row


# ---------------------------------------------------------------------------- ingest


def synthetic_rows(element: tuple[int, int], params: dict, source: str):
    """(start, count) -> synthetic rows, generated inside the DoFn (cheaper than beam.Create of rows)."""
    start, n = element
    for row in generate(n, start=start, **params):
        yield dict(row, source=source)


def source_rows(spec: dict):
    """A source spec (JSONL / JSON / Parquet / HF dataset dir) -> its rows and rejects (``read_source``'s verdicts)."""
    notes: dict = {}
    for kind, row in read_source(spec, limit=spec.get("limit"), notes=notes):
        seen = (Count(Stage.INGEST, Outcome.IN, spec["name"]), 1)
        if kind == "reject":
            yield Routed(outputs=((REJECTS, row),), counts=(seen, (Count(Stage.INGEST, Outcome.REJECTED), 1)))
        else:
            yield Routed(row=row, counts=(seen,))
    left = notes.get("turns_left_out")
    if left:  # turns: first left later exchanges out: said at the end of the run
        yield Routed(counts=((Count(Stage.INGEST, Outcome.TURNS_LEFT_OUT), left),
                             (Count(Stage.INGEST, Outcome.TURNS_LEFT_OUT, spec["name"]), left)))


# ---------------------------------------------------------------------------- teachers


class TeacherOutput(NamedTuple):
    """What a teacher stage emits per row: the shape of RunInference's ``PredictionResult``."""
    example: dict
    inference: dict


class ProgramTeacher(CountingDoFn):
    """The program teachers (``curation.generation.teachers``) row by row, without RunInference: they need no
    model, batching or accelerator, and RunInference's module imports torch (~4 s) in every worker."""

    def __init__(self, spec):
        super().__init__()
        self.spec, self.stage = spec, Stage(spec.stage)

    def setup(self):
        self.generator = generator_for(self.spec).load()

    def process(self, row):
        t = time.perf_counter()
        out = texts_or_errors(self.generator, [request_for(row, self.spec)])[0]
        self.count(Outcome.TEACHER_USECS, int((time.perf_counter() - t) * 1e6))
        yield TeacherOutput(row, out)


# ---------------------------------------------------------------------------- after the teachers


class TeacherBatchFailed(CountingDoFn):
    """RunInference's failed (batch, error) pairs -> the batch's rows, untouched, counted ``failed`` (detail: the
    error's type): a teacher's failure is not the row's (the row goes on without what the teacher would add)."""

    def __init__(self, stage: Stage):
        super().__init__()
        self.stage = Stage(stage)

    def process(self, batch_error):
        batch, error = batch_error
        kind = type(error[0]).__name__ if isinstance(error, tuple) and error else type(error).__name__
        for row in batch:
            self.add(_failed(self.stage, kind))
            yield getattr(row, "example", row)


def _failed(stage: Stage, reason: str) -> tuple[tuple[Count, int], ...]:
    return (Count(stage, Outcome.FAILED), 1), (Count(stage, Outcome.FAILED, reason), 1)


def caption_verdict(result, teacher_id: str):
    """A caption teacher's result -> ``curation.generation.assemble.captioned``'s verdict on its row; a row the
    teacher failed on goes on uncaptioned and untraced (output ``uncaptioned``): enrich, never destroy."""
    out = captioned(result.example, result.inference.get("texts"), result.inference.get("error"), teacher_id)
    if isinstance(out, TeacherFailed):
        return Routed(outputs=(("uncaptioned", result.example),), counts=_failed(Stage.CAPTION, out.reason))
    return out


def distill_verdict(result, teacher: dict, select, rewrite: bool = True):
    """A reasoner's result -> the row, its traces (all) and sft rows (selected), by ``assemble.distilled``; a row
    the teacher failed on keeps its place without a trace."""
    row = result.example
    return _distill_routed(row, distilled(row, result.inference.get("texts"), result.inference.get("error"), teacher,
                                          select, rewrite))


def distill_verdicts(results: list, teacher: dict, select, rewrite: bool, judge):
    """``distill_verdict`` for a batch of results (``beam.BatchElements``), with ``judge`` (a
    ``curation.generation.judge.Judge``, the recipe's ``judge:``) deciding the needs_judge traces of the whole
    batch in one call (``assemble.distilled_batch``); one verdict per row."""
    outs = distilled_batch([(r.example, r.inference.get("texts"), r.inference.get("error")) for r in results],
                           teacher, select, rewrite, judge)
    return [_distill_routed(r.example, out) for r, out in zip(results, outs)]


def _distill_routed(row: dict, out) -> Routed:
    if isinstance(out, TeacherFailed):
        return Routed(row=row, counts=_failed(Stage.DISTILL, out.reason))
    counts = [(Count(Stage.VERIFY, Outcome.TRACES), len(out.traces)),
              (Count(Stage.VERIFY, Outcome.CORRECT), sum(tr["correct"] for tr in out.traces))]
    counts += [(Count(Stage.VERIFY, Outcome.STATUS, tr["status"]), 1) for tr in out.traces]
    counts += [(Count(Stage.VERIFY, Outcome.JUDGED, tr["verdict_reason"]), 1) for tr in out.traces if tr.get("judge")]
    outputs = [("traces", table_row("traces", tr)) for tr in out.traces]
    outputs += [("sft", table_row("sft", s)) for s in out.sft]
    return Routed(row=row, outputs=tuple(outputs), counts=tuple(counts))


def split_tables(row: dict, keep_open: bool, judge: bool = False):
    """A kept row -> ``examples``, and its rl/val/test row unless the learnable-row rule keeps it out
    (``curation.answers.learnable``: counted per reason as ``kept_out``)."""
    counts = [(Count(Stage.SPLIT, Outcome.PLACED, row["split"]), 1)]
    verdict = rl_eligible(row, keep_open, judge)
    if verdict is not None:
        counts.append((Count(Stage.SPLIT, Outcome.KEPT_OUT, verdict.reason), 1))
        outputs = ()
    else:
        table = "rl" if row["split"] == "train" else row["split"]
        outputs = ((table, table_row(table, rl_row(row))),)
    return Routed(row=table_row("examples", row), outputs=outputs, counts=tuple(counts))


def dead_letter_to_reject(stage: str):
    """with_exception_handling's (element, (type, message, traceback)) -> a rejects row."""
    def convert(bad):
        element, err = bad
        return error_reject_row(stage, element, err)

    return convert
