"""Beam DoFns that wire `curation/` functions into the curate graph. No business logic here.

Every DoFn counts ``<stage>.in/out/rejected/duplicates`` and its processing time in Beam
metrics (namespace ``sightline``), and sends a bad row to the ``rejects`` output with a reason.
Unexpected exceptions are caught by ``with_exception_handling`` in the graph (see curate.py).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import TABLES, make_reject

NS = "sightline"
REJECTS = "rejects"


def complete(table: str, row: dict) -> dict:
    """Exactly the table's columns (missing nullable ones as None), as Beam's Parquet sink needs."""
    return {name: row.get(name) for name in TABLES[table].names}


def assign_split(row_id: str, test_fraction: float, salt: str = "") -> str:
    """train/test by hashing the id: a re-run puts every row in the same split."""
    h = int(hashlib.sha256((salt + row_id).encode()).hexdigest()[:12], 16) / float(1 << 48)
    return "test" if h < test_fraction else "train"


class Counted(beam.DoFn):
    """Base: per-stage counters and processing time (microseconds, summed over elements)."""

    stage = "stage"

    def __init__(self):
        self._c = {}

    def count(self, what: str, n: int = 1, stage: str | None = None) -> None:
        """Add ``n`` to the counter ``<stage>.<what>`` (this DoFn's stage unless another is named)."""
        name = f"{stage or self.stage}.{what}"
        c = self._c.get(name)
        if c is None:
            c = self._c[name] = Metrics.counter(NS, name)
        c.inc(n)

    def reject(self, row: dict, reason: str, detail: str = "", stage: str | None = None):
        self.count("rejected")
        return beam.pvalue.TaggedOutput(REJECTS, make_reject(
            stage or self.stage, reason, source=row.get("source") or "?", source_id=str(row.get("source_id", "?")),
            id=row.get("id"), detail=detail, question=row.get("question") if isinstance(row.get("question"), str) else None))

    def timed(self, start: float) -> None:
        self.count("usecs", int((time.perf_counter() - start) * 1e6))


# ---------------------------------------------------------------------------- ingest

class IngestSynthetic(Counted):
    """(start, count) -> synthetic rows, generated inside the DoFn (cheaper than beam.Create of rows)."""

    stage = "ingest"

    def __init__(self, params: dict, source: str, test_fraction: float, split_salt: str):
        super().__init__()
        self.params, self.source, self.test_fraction, self.split_salt = params, source, test_fraction, split_salt

    def process(self, element):
        from curation.synthetic import generate

        start, n = element
        t = time.perf_counter()
        for row in generate(n, start=start, **self.params):
            self.count("in")
            row["source"] = self.source
            row["split"] = assign_split(row["id"], self.test_fraction, self.split_salt)
            self.count("out")
            yield row
        self.timed(t)


class IngestFiles(Counted):
    """A source spec (JSONL / Parquet / HF dataset dir) -> rows and rejects."""

    stage = "ingest"

    def __init__(self, test_fraction: float, split_salt: str):
        super().__init__()
        self.test_fraction, self.split_salt = test_fraction, split_salt

    def process(self, spec):
        from curation.sources import read_source

        t = time.perf_counter()
        for kind, row in read_source(spec, limit=spec.get("limit")):
            self.count("in")
            if kind == "reject":
                self.count("rejected")
                yield beam.pvalue.TaggedOutput(REJECTS, row)
                continue
            row["split"] = assign_split(row["id"], self.test_fraction, self.split_salt)
            self.count("out")
            yield row
        self.timed(t)


# -------------------------------------------------------------------------- validate

def _text_problem(value) -> str | None:
    if value is None:
        return "missing"
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8"
        return "bytes"
    if not isinstance(value, str):
        return "not_text"
    if not value.strip():
        return "missing"
    if "\ufffd" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "not_utf8"
    return None


class Validate(Counted):
    """Fields and image: bounded decode, RGB, size checks, then the 64-bit perceptual hash."""

    stage = "validate"

    def __init__(self, max_pixels: int, min_side: int, max_bytes: int):
        super().__init__()
        self.max_pixels, self.min_side, self.max_bytes = max_pixels, min_side, max_bytes

    def process(self, row):
        from curation.dedup import hash_hex, phash64
        from curation.images import check_image

        t = time.perf_counter()
        self.count("in")
        for field, reason in (("question", "question"), ("answer", "answer")):
            problem = _text_problem(row.get(field))
            if problem:
                code = "bad_text_encoding" if problem == "not_utf8" else f"{problem}_{reason}"
                yield self.reject(row, code, f"{field} is {problem}")
                return
        images = row.get("images") or [{}]
        checks = []
        # Every image must be usable; width, height and the hash are the first image's.
        for index, image in enumerate(images):
            check = check_image((image or {}).get("bytes") or b"", max_pixels=self.max_pixels,
                                min_side=self.min_side, max_bytes=self.max_bytes)
            if not check.ok:
                where = f"image {index} of {len(images)}: " if len(images) > 1 else ""
                yield self.reject(row, check.reason, where + check.detail)
                return
            checks.append(check)
        check = checks[0]
        row = dict(row, width=check.width, height=check.height, image_hash=hash_hex(phash64(check.image)))
        self.count("out")
        self.timed(t)
        yield row


DEDUP_SCOPES = ("image", "question", "question_answer")


def band_entries(row: dict, threshold: int, scope: str = "image"):
    """(band key, (id, hash)) for the multi-index near-duplicate grouping.

    ``scope`` says which rows are compared at all: ``image`` (any two rows), ``question`` (rows
    with the same normalized question) or ``question_answer`` (same question and same answer).
    """
    from curation.dedup import band_keys, hash_from_hex
    from schemas import normalize_question

    h = hash_from_hex(row["image_hash"])
    if scope == "image":
        q = ""
    else:
        text = normalize_question(row["question"])
        if scope == "question_answer":
            text += "\x00" + normalize_question(row["answer"])
        q = hashlib.sha1(text.encode()).hexdigest()[:12]
    for band, value in band_keys(h, threshold):
        yield (f"{band}:{value}:{q}", (row["id"], h))


def row_key(row: dict) -> str:
    return f"{row['id']}|{row['source']}|{row['source_id']}"


def near_duplicates(element, threshold: int):
    from curation.dedup import duplicates_in_bucket

    _, members = element
    members = sorted(set(members))
    for dropped, kept, dist in duplicates_in_bucket(members, threshold):
        yield dropped, (kept, dist)


def exact_duplicates(element):
    """Rows with the same exact key (normalized question + image hash): all but the smallest row key go."""
    _, keys = element
    keys = sorted(keys)
    for k in keys[1:]:
        yield {"kind": "exact", "key": k, "kept": keys[0].split("|", 1)[0], "distance": 0}


# ---------------------------------------------------------------- dedup + decontam (pass 2)

def load_decisions(path: str) -> tuple[dict, dict]:
    """Dedup decisions written by pass 1: (exact by row key, near by id) -> (kept id, distance)."""
    exact, near = {}, {}
    for f in sorted(Path(path).glob("*.jsonl")):
        with open(f) as fh:
            for line in fh:
                d = json.loads(line)
                (exact if d["kind"] == "exact" else near)[d["key"]] = (d["kept"], d["distance"])
    return exact, near


class DedupDecontam(Counted):
    """Apply pass 1's duplicate decisions, then drop rows that overlap the evaluation sets."""

    stage = "dedup"

    def __init__(self, decisions_dir: str, eval_index=None):
        super().__init__()
        self.decisions_dir, self.eval_index = decisions_dir, eval_index

    def setup(self):
        self.exact, self.near = load_decisions(self.decisions_dir)

    def process(self, row):
        self.count("in")
        hit = self.exact.get(row_key(row))
        kind = "exact_duplicate"
        if hit is None:
            hit, kind = self.near.get(row["id"]), "near_duplicate"
        if hit is not None:
            self.count("duplicates")
            yield beam.pvalue.TaggedOutput(REJECTS, make_reject(
                "dedup", kind, source=row["source"], source_id=row["source_id"], id=row["id"],
                detail=f"kept {hit[0]} (hamming {hit[1]})", question=row["question"]))
            return
        self.count("out")
        self.count("in", stage="decontam")
        if self.eval_index is not None:
            from curation.dedup import hash_from_hex

            found = self.eval_index.check(hash_from_hex(row["image_hash"]), row["question"])
            if found:
                self.count("rejected", stage="decontam")
                reason, detail = found
                yield beam.pvalue.TaggedOutput(REJECTS, make_reject(
                    "decontam", reason, source=row["source"], source_id=row["source_id"], id=row["id"],
                    detail=detail, question=row["question"]))
                return
        self.count("out", stage="decontam")
        yield row


# ------------------------------------------------------------------ after the teachers

class AfterCaption(Counted):
    """PredictionResult(row, {"texts"|"error"}) -> row with caption, or a reject."""

    stage = "caption"

    def __init__(self, teacher_id: str):
        super().__init__()
        self.teacher_id = teacher_id

    def process(self, result):
        row, out = result.example, result.inference
        self.count("in")
        caption = (out.get("texts") or [""])[0] if not out.get("error") else ""
        if out.get("error") or not caption.strip():
            yield self.reject(row, "caption_failed" if out.get("error") else "empty_caption", out.get("error", ""))
            return
        self.count("out")
        yield dict(row, caption=caption.strip(), caption_teacher=self.teacher_id)


class Finish(Counted):
    """Traces of one example -> rewrite, verify, select; emits examples/traces/sft/rl rows."""

    stage = "distill"

    def __init__(self, teacher: dict, select: dict):
        super().__init__()
        self.teacher, self.select = teacher, select

    def process(self, result):
        from curation.distill import SelectConfig, rewrite_trace, select_traces
        from curation.verify import format_ok, verify
        from curation.prompts import assistant_message, user_message

        row, out = result.example, result.inference
        self.count("in")
        t = time.perf_counter()
        texts = out.get("texts") or []
        if out.get("error") or not texts:
            yield self.reject(row, "distill_failed" if out.get("error") else "no_traces", out.get("error", ""))
            return
        traces = []
        for i, raw in enumerate(texts):
            text, edits = rewrite_trace(raw or "")
            v = verify(text, row["answer"], choices=row.get("choices"), answer_type=row.get("answer_type"))
            trace_id = hashlib.sha256(f"{row['id']}\x00{self.teacher['model']}\x00{i}".encode()).hexdigest()[:24]
            traces.append({
                "id": row["id"], "source": row["source"], "source_id": row["source_id"], "trace_id": trace_id,
                "split": row["split"], "task": row.get("task"), "question": row["question"],
                "choices": row.get("choices"), "answer": row["answer"], "answer_type": row.get("answer_type"),
                "caption": row.get("caption"), "caption_teacher": row.get("caption_teacher"),
                "teacher": self.teacher["model"], "prompt_version": self.teacher["prompt_version"],
                "sampling": json.dumps(self.teacher["sampling"], sort_keys=True), "sample_index": i,
                "raw_trace": raw, "trace": text, "rewrite_edits": edits, "extracted": v.extracted,
                "correct": bool(v.correct), "format_ok": bool(format_ok(text)), "verdict_reason": v.reason,
                "length_chars": len(text)})
        self.count("traces", len(traces), stage="verify")
        self.count("correct", sum(t["correct"] for t in traces), stage="verify")
        select_traces(traces, SelectConfig(**self.select))
        user = user_message(row["question"], row.get("choices"), n_images=len(row["images"]))
        for tr in traces:
            self.count(f"status_{tr['status']}", stage="verify")
            yield beam.pvalue.TaggedOutput("traces", complete("traces", tr))
            if tr["selected"]:
                yield beam.pvalue.TaggedOutput("sft", complete("sft", {
                    "id": row["id"], "source": row["source"], "source_id": row["source_id"],
                    "trace_id": tr["trace_id"], "task": row.get("task"), "teacher": tr["teacher"],
                    "messages": [user, assistant_message(tr["trace"])], "images": list(row["images"])}))
        yield beam.pvalue.TaggedOutput("rl", complete("rl", rl_row(row, user)))
        self.count("out")
        self.timed(t)
        yield complete("examples", row)


def rl_row(row: dict, user: dict | None = None) -> dict:
    """The rl/test layout of an example; ``user`` is its user turn when the caller already built it."""
    from curation.prompts import user_message

    user = user or user_message(row["question"], row.get("choices"), n_images=len(row["images"]))
    return {"id": row["id"], "source": row["source"], "source_id": row["source_id"], "task": row.get("task"),
            "level": row.get("level"), "prompt": [user], "images": list(row["images"]), "solution": row["answer"],
            "answer_type": row.get("answer_type"), "choices": row.get("choices")}


class HeldOut(Counted):
    """A test-split row: into `examples` and the `test` table (never to sft or rl)."""

    stage = "split"

    def process(self, row):
        self.count("test")
        yield beam.pvalue.TaggedOutput("test", complete("test", rl_row(row)))
        yield complete("examples", row)


def dead_letter_to_reject(stage: str):
    """with_exception_handling's (element, (type, message, traceback)) -> a rejects row."""

    def convert(bad):
        element, err = bad
        row = getattr(element, "example", element)
        if not isinstance(row, dict):
            row = {}
        exc_type = err[0] if isinstance(err, tuple) else type(err)
        message = err[1] if isinstance(err, tuple) and len(err) > 1 else err
        name = getattr(exc_type, "__name__", str(exc_type))
        message = str(message)
        return make_reject(stage, f"{stage}_error", source=row.get("source") or "?",
                           source_id=str(row.get("source_id", "?")), id=row.get("id"),
                           detail=f"{name}: {message}"[:2000],
                           question=row.get("question") if isinstance(row.get("question"), str) else None)

    return convert
