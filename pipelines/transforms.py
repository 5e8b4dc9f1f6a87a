"""Beam adapters over `curation/` rules: each DoFn calls one plain function and routes what it returns.

A rule takes a row and returns the row (or rows) to keep, or a ``curation.rejects.Reject``; the
adapter counts ``<stage>.in/out/rejected`` (names from ``curation.accounting``) and sends a reject
to the ``rejects`` output with its reason. Unexpected exceptions are caught by
``with_exception_handling`` in the graph (see curate.py) and become ``<stage>_error`` rejects.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from curation.accounting import NAMESPACE, counter_name
from curation.rejects import Reject, reject_row
from schemas import TABLES

REJECTS = "rejects"


_COLUMNS = {table: tuple(schema.names) for table, schema in TABLES.items()}


def complete(table: str, row: dict) -> dict:
    """Exactly the table's columns (missing nullable ones as None), as Beam's Parquet sink needs."""
    return {name: row.get(name) for name in _COLUMNS[table]}


class Counted(beam.DoFn):
    """Base: per-stage counters and the time spent in the rule (microseconds, summed over elements).

    Counts are summed in the DoFn and handed to Beam's counters once per bundle: a Beam counter
    update per row per count costs more than the rule of a light stage.
    """

    stage = "stage"

    def __init__(self):
        self._pending = {}

    def count(self, what: str, n: int = 1, stage: str | None = None) -> None:
        key = (stage or self.stage, what)
        self._pending[key] = self._pending.get(key, 0) + n

    def finish_bundle(self):
        for (stage, what), n in self._pending.items():
            Metrics.counter(NAMESPACE, counter_name(stage, what)).inc(n)
        self._pending = {}

    def reject(self, row: dict, verdict: Reject, stage: str | None = None):
        self.count("rejected", stage=stage)
        return beam.pvalue.TaggedOutput(REJECTS, reject_row(stage or self.stage, row, verdict.reason, verdict.detail))

    def timed(self, start: float) -> None:
        self.count("usecs", int((time.perf_counter() - start) * 1e6))


class ApplyRule(Counted):
    """``rule(row, *args) -> row | Reject``, the shape of most stages (validate, decontam, caption verdict)."""

    def __init__(self, stage: str, rule, *args):
        super().__init__()
        self.stage, self.rule, self.args = stage, rule, args

    def process(self, row):
        t = time.perf_counter()
        self.count("in")
        out = self.rule(row, *self.args)
        if isinstance(out, Reject):
            yield self.reject(row, out)
        else:
            self.count("out")
            yield out
        self.timed(t)


class PassThrough(Counted):
    """Rows that a stage lets through untouched (e.g. no teacher can serve them), counted as ``<stage>.<what>``."""

    def __init__(self, stage: str, what: str):
        super().__init__()
        self.stage, self.what = stage, what

    def process(self, row):
        self.count(self.what)
        yield row


# ---------------------------------------------------------------------------- ingest


class IngestSynthetic(Counted):
    """(start, count) -> synthetic rows, generated inside the DoFn (cheaper than beam.Create of rows)."""

    stage = "ingest"

    def __init__(self, params: dict, source: str):
        super().__init__()
        self.params, self.source = params, source

    def process(self, element):
        from curation.synthetic import generate

        start, n = element
        t = time.perf_counter()
        for row in generate(n, start=start, **self.params):
            self.count("in")
            self.count("out")
            yield dict(row, source=self.source)
        self.timed(t)


class IngestFiles(Counted):
    """A source spec (JSONL / JSON / Parquet / HF dataset dir) -> rows and rejects (``read_source``'s verdicts)."""

    stage = "ingest"

    def process(self, spec):
        from curation.sources import read_source

        t = time.perf_counter()
        notes: dict = {}
        for kind, row in read_source(spec, limit=spec.get("limit"), notes=notes):
            self.count("in")
            self.count(f"in.{spec['name']}")
            if kind == "reject":
                self.count("rejected")
                yield beam.pvalue.TaggedOutput(REJECTS, row)
            else:
                self.count("out")
                yield row
        if notes.get("turns_left_out"):  # turns: first left later exchanges out: said at the end of the run
            self.count("turns_left_out", notes["turns_left_out"])
            self.count(f"turns_left_out.{spec['name']}", notes["turns_left_out"])
        self.timed(t)


# ---------------------------------------------------------------------------- dedup + split


def _decision_lines(folder: str):
    """The JSON decision lines of pass 1's work files (local, or any Beam filesystem: gs://, s3://)."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    for match in sorted(FileSystems.match([f"{folder}/*.parquet"])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(match.path) as f:
            yield from pq.read_table(f, columns=["decision"]).column("decision").to_pylist()


class HashBands(beam.DoFn):
    """Valid rows -> (band key, packed members), once per bundle and band: each row's nine band entries
    (``curation.images.duplicates.band_entries``) are appended where they are made, not emitted one by one."""

    def __init__(self, threshold: int):
        self.threshold = threshold

    def start_bundle(self):
        self.buckets = {}

    def process(self, row):
        from curation.images.duplicates import band_entries
        from curation.images.hashes import hash_from_hex

        for band, member in band_entries(row["image_key"], hash_from_hex(row["image_hash"]), self.threshold):
            packed = self.buckets.get(band)
            if packed is None:
                packed = self.buckets[band] = bytearray()
            packed += member

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.timestamp import MIN_TIMESTAMP
        from apache_beam.utils.windowed_value import WindowedValue

        for band, packed in self.buckets.items():
            yield WindowedValue((band, bytes(packed)), MIN_TIMESTAMP, [GlobalWindow()])
        self.buckets = {}


class ConcatMembers(beam.CombineFn):
    """Packed band members (``curation.images.duplicates.band_entries``) of one bucket, concatenated.

    Lifted before the shuffle, so a bucket crosses it as a few byte strings, not one element per image.
    """

    def create_accumulator(self):
        return bytearray()

    def add_input(self, acc, member):
        acc += member
        return acc

    def merge_accumulators(self, accs):
        out = bytearray()
        for acc in accs:
            out += acc
        return out

    def compact(self, acc):
        return bytes(acc)

    def extract_output(self, acc):
        return bytes(acc)


class CandidateThumbnails(beam.DoFn):
    """Work rows (image_key, images) -> (bucket, (image key, hash, thumbnail)) for each bucket that owns a
    candidate pair of the image (``buckets``: image key -> [(bucket, hash)]).

    Rows of one image usually come together (one image, several questions), so an image among the last
    few sent is not sent again; one sent twice is harmless (a bucket keeps one thumbnail per image).
    """

    RECENT = 256

    def start_bundle(self):
        self.recent = set()

    def process(self, row, buckets):
        from curation.images.duplicates import thumbnail_of

        key = row["image_key"]
        owners = buckets.get(key)
        if not owners or key in self.recent:
            return
        if len(self.recent) >= self.RECENT:
            self.recent.clear()
        self.recent.add(key)
        thumb = thumbnail_of(row)
        for band, h in owners:
            yield band, (key, h, thumb)


def problem_members(packed) -> list[tuple[str, str, str, str]]:
    """The ``(id, row_key, image_key, normalized question)`` members of one problem key, each shuffled as
    one JSON string (``curate._duplicate_decisions``)."""
    import json

    return [tuple(json.loads(m)) for m in packed]


class ProblemsOfImages(beam.DoFn):
    """(problem key of one image, its rows) -> drops, when the image has no near-copy; else the rows
    re-keyed by the image's split group (tag ``regroup``), to meet the rows of its copies."""

    def process(self, keyed, groups):
        from curation.images.duplicates import duplicates_in_group, regrouped

        key, members = keyed
        group = groups.get(key[:key.index(":")])
        if group is None:
            yield from duplicates_in_group(problem_members(members))
            return
        new_key = regrouped(key, group)
        for member in members:
            yield beam.pvalue.TaggedOutput("regroup", (new_key, member))


class PlaceRows(Counted):
    """Pass 1's decisions applied by ``curation.images.duplicates.placed``: duplicates out, split groups placed."""

    stage = "dedup"

    def __init__(self, decisions_dir: str, test_fraction: float, val_fraction: float, salt: str):
        super().__init__()
        self.decisions_dir, self.split = decisions_dir, (test_fraction, val_fraction, salt)

    def setup(self):
        from curation.images.duplicates import read_decisions

        self.drops, self.groups = read_decisions(_decision_lines(self.decisions_dir))

    def process(self, row):
        from curation.images.duplicates import placed

        self.count("in")
        out = placed(row, self.drops, self.groups, *self.split)
        if isinstance(out, Reject):
            self.count("duplicates")
            self.count(out.reason.removesuffix("_duplicate"))
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(self.stage, row, out.reason, out.detail))
            return
        if out["split_group"] != out["image_key"]:
            self.count("grouped_rows")
        self.count("out")
        yield out


# ---------------------------------------------------------------------------- teachers


class Taught(NamedTuple):
    """What a teacher stage emits per row: the shape of RunInference's ``PredictionResult``."""
    example: dict
    inference: dict


class ProgramTeacher(Counted):
    """The program teachers (``curation.generation.teachers``) row by row, without RunInference: they need no model,
    batching or accelerator, and RunInference's module imports torch (~4 s) in every worker."""

    def __init__(self, spec):
        super().__init__()
        self.spec, self.stage = spec, spec.stage

    def setup(self):
        from curation.generation.rollouts import generator_for

        self.generator = generator_for(self.spec).load()

    def process(self, row):
        from curation.generation.rollouts import request_for, texts_or_errors

        t = time.perf_counter()
        out = texts_or_errors(self.generator, [request_for(row, self.spec)])[0]
        self.count("teacher_usecs", int((time.perf_counter() - t) * 1e6))
        yield Taught(row, out)


# ---------------------------------------------------------------------------- after the teachers


class TeacherBatchFailed(Counted):
    """RunInference's failed (batch, error) pairs -> the batch's rows, untouched, counted ``<stage>.failed``:
    a teacher's failure is not the row's (the row goes on without what the teacher would have added)."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def process(self, batch_error):
        batch, error = batch_error
        kind = type(error[0]).__name__ if isinstance(error, tuple) and error else type(error).__name__
        for row in batch:
            self.count("failed")
            self.count(f"failed.{kind}")
            yield getattr(row, "example", row)


class AfterCaption(Counted):
    """PredictionResult(row, {"texts"|"error"}) -> ``curation.generation.assemble.captioned``'s verdict."""

    stage = "caption"

    def __init__(self, teacher_id: str):
        super().__init__()
        self.teacher_id = teacher_id

    def process(self, result):
        from curation.generation.assemble import TeacherFailed, captioned

        self.count("in")
        out = captioned(result.example, result.inference.get("texts"), result.inference.get("error"), self.teacher_id)
        if isinstance(out, TeacherFailed):  # the row goes on uncaptioned and untraced: enrich, never destroy
            self.count("failed")
            self.count(f"failed.{out.reason}")
            yield beam.pvalue.TaggedOutput("uncaptioned", result.example)
            return
        self.count("out")
        yield out


class AfterDistill(Counted):
    """PredictionResult(row, texts) -> traces (all), sft (selected) and the row, by ``curation.generation.assemble.distilled``."""

    stage = "distill"

    def __init__(self, teacher: dict, select, rewrite: bool = True):
        super().__init__()
        self.teacher, self.select, self.rewrite = teacher, select, rewrite

    def process(self, result):
        from curation.generation.assemble import TeacherFailed, distilled

        row = result.example
        self.count("in")
        t = time.perf_counter()
        out = distilled(row, result.inference.get("texts"), result.inference.get("error"), self.teacher, self.select,
                        self.rewrite)
        if isinstance(out, TeacherFailed):  # no trace, the row keeps its place: enrich, never destroy
            self.count("failed")
            self.count(f"failed.{out.reason}")
            yield row
            return
        self.count("traces", len(out.traces), stage="verify")
        self.count("correct", sum(tr["correct"] for tr in out.traces), stage="verify")
        for tr in out.traces:
            self.count(f"status_{tr['status']}", stage="verify")
            yield beam.pvalue.TaggedOutput("traces", complete("traces", tr))
        for s in out.sft:
            yield beam.pvalue.TaggedOutput("sft", complete("sft", s))
        self.count("out")
        self.timed(t)
        yield row


class WriteSplit(Counted):
    """A kept row -> ``examples``, and its rl/val/test row unless the learnable-row rule keeps it out
    (``curation.answers.learnable``: counted per reason as ``split.kept_out.<reason>``)."""

    stage = "split"

    def __init__(self, keep_open: bool, judge: bool = False):
        super().__init__()
        self.keep_open, self.judge = keep_open, judge

    def process(self, row):
        from curation.generation.assemble import rl_eligible, rl_row

        self.count(row["split"])
        verdict = rl_eligible(row, self.keep_open, self.judge)
        if verdict is not None:
            self.count(f"{row['split']}_kept_out")
            self.count(f"kept_out.{verdict.reason}")
        else:
            table = "rl" if row["split"] == "train" else row["split"]
            yield beam.pvalue.TaggedOutput(table, complete(table, rl_row(row)))
        yield complete("examples", row)


def dead_letter_to_reject(stage: str):
    """with_exception_handling's (element, (type, message, traceback)) -> a rejects row."""
    from curation.rejects import error_reject_row

    def convert(bad):
        element, err = bad
        return error_reject_row(stage, element, err)

    return convert
