"""Real sources: JSONL + image files, Parquet files, Hugging Face ``save_to_disk`` folders.

A reader turns a source spec into ``("example", row)`` and ``("reject", reject_row)`` tuples;
a bad row is never an exception, it is a reject with a reason, so rows in = examples + rejects.
A config mistake (unknown type, missing path, a mapped column the file lacks) is a
``SightlineError`` raised before the first row. Images are read as bytes, bounded in size, and
not decoded: the validate stage (``curation.images``) does that.

Spec (our column name -> the source's column name; unmapped names default to ours)::

    {"type": "jsonl" | "parquet" | "hf_disk", "name": "scienceqa", "path": "data/sqa.jsonl",
     "columns": {"question": "query", "answer": "label", "image": "image", "choices": "options",
                 "answer_type": "answer_type", "task": "task", "id": "pid"},
     "answer_type": None, "task": "science",
     # optional: "allow_outside": False, "max_image_bytes": 50_000_000, "batch_size": 64,
     #           "split": "test" (hf_disk DatasetDict), "answer_is_index": False,
     #           "require_answer": True (False only for eval sets read by curation.decontam),
     #           "limit": None (read only the first rows; the ``limit`` argument wins)}

``source_id`` is the row index (0-based: the line number for JSONL, ``file:index`` inside a
folder of Parquet files) or the value of the mapped ``id`` column.
"""
from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from schemas.ids import row_id
from schemas.tables import EXAMPLES, make_reject

STAGE = "ingest"
TYPES = ("jsonl", "parquet", "hf_disk")
COLUMNS = ("question", "answer", "image", "choices", "answer_type", "task", "id")
REQUIRED = ("question", "answer", "image")
ANSWER_TYPES = ("multiple_choice", "yes_no", "integer", "number", "math", "text")
DEFAULTS = {"columns": None, "answer_type": None, "task": None, "allow_outside": False,
            "max_image_bytes": 50_000_000, "batch_size": 64, "split": None, "answer_is_index": False,
            "require_answer": True, "limit": None}
MAX_LINE_BYTES = 16 * 2**20  # a JSONL line larger than this is a reject, not a memory spike
SCAN_LINES = 1000            # JSONL lines read to learn the columns a file has

REASONS = (
    "bad_json", "bad_text_encoding", "line_too_long", "missing_question", "bad_question",
    "missing_answer", "bad_answer", "bad_choices", "bad_answer_type", "missing_image",
    "bad_image_value", "image_path_outside", "image_missing", "image_unreadable", "image_too_large_bytes",
)

Row = tuple[str, dict]


class _Reject(Exception):
    """Internal: one row's failure; turned into a reject row, never raised to callers."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


# ---------------------------------------------------------------- spec


def _fail(spec: dict, message: str) -> SightlineError:
    return SightlineError(f"source {spec.get('name', '?')!r}: {message}")


def validate_spec(spec: dict) -> dict:
    """A complete copy of ``spec`` with defaults filled in, or a one-line SightlineError."""
    if not isinstance(spec, dict):
        raise SightlineError(f"a source spec is a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"type", "name", "path"} - set(DEFAULTS))
    if unknown:
        raise _fail(spec, f"unknown key(s) {', '.join(unknown)}; known: type, name, path, "
                          f"{', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **spec}
    if s.get("type") not in TYPES:
        raise _fail(spec, f"unknown type {s.get('type')!r}; known: {', '.join(TYPES)}")
    if not isinstance(s.get("name"), str) or not s["name"]:
        raise SightlineError(f"a {s['type']} source needs a non-empty 'name'")
    if not s.get("path"):
        raise _fail(spec, "no 'path' given")
    path = Path(s["path"]).expanduser()
    if not path.exists():
        raise _fail(spec, f"path does not exist: {path}")
    s["path"] = str(path)
    mapped = dict(s["columns"] or {})
    bad = sorted(set(mapped) - set(COLUMNS))
    if bad:
        raise _fail(spec, f"unknown column name(s) {', '.join(bad)} in 'columns'; ours are {', '.join(COLUMNS)}")
    if any(not isinstance(v, str) or not v for v in mapped.values()):
        raise _fail(spec, "'columns' maps our names to the source's column names (non-empty strings)")
    s["columns"] = {c: mapped.get(c, c) for c in COLUMNS}
    if s["answer_type"] is not None and s["answer_type"] not in ANSWER_TYPES:
        raise _fail(spec, f"unknown answer_type {s['answer_type']!r}; known: {', '.join(ANSWER_TYPES)}")
    if not isinstance(s["batch_size"], int) or s["batch_size"] < 1:
        raise _fail(spec, "batch_size must be a positive integer")
    if s["limit"] is not None and (not isinstance(s["limit"], int) or s["limit"] < 0):
        raise _fail(spec, "limit must be a non-negative integer")
    if not isinstance(s["max_image_bytes"], int) or s["max_image_bytes"] < 1:
        raise _fail(spec, "max_image_bytes must be a positive integer")

    # Required columns and explicitly mapped optional ones must exist; defaulted optional may not.
    required = [c for c in REQUIRED if c != "answer" or s["require_answer"]]
    needed = [c for c in COLUMNS if c in required or c in mapped]
    for where, available in _available_columns(s):
        if available is None:
            continue
        for c in needed:
            theirs = s["columns"][c]
            if theirs not in available:
                via = f" (mapped from {c!r})" if theirs != c else ""
                raise _fail(spec, f"column {theirs!r}{via} not in {where}; available: "
                                  f"{', '.join(sorted(available)) or '(none)'}")
    return s


def describe_spec(spec: dict) -> str:
    """One line for logs and the manifest: type, name, path and the non-default column mapping."""
    s = {**DEFAULTS, **spec}
    cols = {k: v for k, v in (s["columns"] or {}).items() if k != v}
    mapping = ", ".join(f"{k}<-{v}" for k, v in cols.items())
    extra = [f"{k}={s[k]!r}" for k in ("answer_type", "task", "split") if s.get(k)]
    return (f"{s.get('type')} source {s.get('name')!r} at {s.get('path')}"
            + (f" [{mapping}]" if mapping else "") + (f" ({', '.join(extra)})" if extra else ""))


def _root(s: dict) -> Path:
    path = Path(s["path"])
    return path if path.is_dir() else path.parent


def _parquet_files(s: dict) -> list[Path]:
    path = Path(s["path"])
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise _fail(s, f"no .parquet files under {path}")
    return files


def _open_hf(s: dict):
    import datasets

    path = Path(s["path"])
    if not path.is_dir():
        raise _fail(s, f"an hf_disk source is a folder written by save_to_disk, got a file: {path}")
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise _fail(s, f"not a save_to_disk folder: {path} ({type(e).__name__}: {e})") from e
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        split = s["split"] or (splits[0] if len(splits) == 1 else None)
        if split not in ds:
            raise _fail(s, f"choose a split with 'split': {', '.join(splits)}")
        ds = ds[split]
    return ds


def _lines(f) -> Iterator[tuple[int, bytes | None]]:
    """``(index, line)`` of a binary file; ``line`` is None for a line over MAX_LINE_BYTES."""
    index = -1
    while raw := f.readline(MAX_LINE_BYTES + 1):
        index += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := f.readline(2**20)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the oversized line without holding it
            yield index, None
            continue
        yield index, (raw[3:] if index == 0 and raw.startswith(b"\xef\xbb\xbf") else raw)


def _available_columns(s: dict) -> Iterator[tuple[str, set[str] | None]]:
    if s["type"] == "parquet":
        import pyarrow.parquet as pq

        for f in _parquet_files(s):
            try:
                yield f.name, set(pq.ParquetFile(f).schema_arrow.names)
            except Exception as e:  # pyarrow raises several types for a bad footer
                raise _fail(s, f"cannot read Parquet file {f}: {e}") from e
    elif s["type"] == "hf_disk":
        yield Path(s["path"]).name, set(_open_hf(s).column_names)
    else:
        if not Path(s["path"]).is_file():
            raise _fail(s, f"a jsonl source is one file, got a folder: {s['path']}")
        keys: set[str] = set()
        seen = 0
        with open(s["path"], "rb") as f:
            for _, raw in _lines(f):
                if seen >= SCAN_LINES:
                    break
                if raw is None:
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys.update(obj)
                    seen += 1
        yield Path(s["path"]).name, (keys if seen else None)  # nothing parsable: rows will say why


# ---------------------------------------------------------------- reading


def read_source(spec: dict, *, limit: int | None = None) -> Iterator[Row]:
    """``("example", row)`` / ``("reject", row)`` for the first ``limit`` source rows (all if None)."""
    s = validate_spec(spec)
    limit = s["limit"] if limit is None else limit
    reader = {"jsonl": _read_jsonl, "parquet": _read_parquet, "hf_disk": _read_hf}[s["type"]]
    for n, item in enumerate(reader(s)):
        if limit is not None and n >= limit:
            return
        yield item


def _read_jsonl(s: dict) -> Iterator[Row]:
    base = root = Path(s["path"]).parent
    with open(s["path"], "rb") as f:
        for index, raw in _lines(f):
            if raw is None:
                yield _reject(s, str(index), "line_too_long", f"line over {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield _reject(s, str(index), "bad_text_encoding", f"not UTF-8 at byte {e.start}")
                continue
            try:
                obj = json.loads(text)
            except ValueError as e:
                yield _reject(s, str(index), "bad_json", str(e))
                continue
            if not isinstance(obj, dict):
                yield _reject(s, str(index), "bad_json", f"a line is a JSON object, got {type(obj).__name__}")
                continue
            yield _to_row(s, str(index), obj.get, base, root)


def _read_parquet(s: dict) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, root = _parquet_files(s), _root(s)
    single = Path(s["path"]).is_file()
    for f in files:
        pf = pq.ParquetFile(f)
        present = set(pf.schema_arrow.names)
        theirs = sorted({t for t in s["columns"].values() if t in present})
        prefix = "" if single else f"{f.relative_to(s['path']).as_posix()}:"
        index = 0
        try:
            for batch in pf.iter_batches(batch_size=s["batch_size"], columns=theirs):
                yield from _rows_of_batch(s, batch, prefix, index, f.parent, root)
                index += batch.num_rows
        except (OSError, pa.ArrowException) as e:  # a damaged file is a failure of the source, not of one row
            raise _fail(s, f"cannot read {f} after row {index}: {e}") from e


def _read_hf(s: dict) -> Iterator[Row]:
    ds = _open_hf(s)
    theirs = sorted({t for t in s["columns"].values() if t in ds.column_names})
    # Arrow format: image structs stay bytes, never decoded into PIL here.
    index = 0
    for table in ds.select_columns(theirs).with_format("arrow").iter(batch_size=s["batch_size"]):
        yield from _rows_of_batch(s, table, "", index, Path(s["path"]), Path(s["path"]))
        index += table.num_rows


def _rows_of_batch(s: dict, batch, prefix: str, start: int, base: Path, root: Path) -> Iterator[Row]:
    data = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    for i in range(batch.num_rows):
        values = {name: col[i] for name, col in data.items()}
        yield _to_row(s, f"{prefix}{start + i}", values.get, base, root)


# ---------------------------------------------------------------- one row


def _reject(s: dict, source_id: str, reason: str, detail: str = "", question: str | None = None) -> Row:
    return "reject", make_reject(STAGE, reason, source=s["name"], source_id=source_id,
                                 detail=detail, question=question)


def _to_row(s: dict, source_id: str, get: Callable[[str], Any], base: Path, root: Path) -> Row:
    """One source row -> an examples row, or a reject naming the first problem found."""
    cols = s["columns"]
    if get(cols["id"]) is not None:
        source_id = str(get(cols["id"]))
    question = get(cols["question"])
    try:
        if question is None or (isinstance(question, str) and not question.strip()):
            raise _Reject("missing_question", "no question" if question is None else "empty question")
        if not isinstance(question, str):
            raise _Reject("bad_question", f"question is a {type(question).__name__}, not text")
        choices = _choices(get(cols["choices"]))
        answer = get(cols["answer"])
        if answer is not None or s["require_answer"]:
            answer = _answer(answer, choices, s["answer_is_index"])
        answer_type = get(cols["answer_type"]) or ("multiple_choice" if choices else s["answer_type"])
        if answer_type is not None and answer_type not in ANSWER_TYPES:
            raise _Reject("bad_answer_type", f"{answer_type!r}; known: {', '.join(ANSWER_TYPES)}")
        task = get(cols["task"])
        task = str(task) if task is not None else s["task"]
        _check_encodable(question, answer, task, *(choices or ()))
        # Last: the only check that touches the disk.
        image_bytes, image_path = _image(get(cols["image"]), base, root, s)
    except _Reject as r:
        q = question if isinstance(question, str) else None
        return _reject(s, source_id, r.reason, r.detail, q)
    row = dict.fromkeys(EXAMPLES.names)
    row.update(id=row_id(image_bytes, question), source=s["name"], source_id=source_id, task=task,
               images=[{"bytes": image_bytes, "path": image_path}], question=question, choices=choices,
               answer=answer, answer_type=answer_type)
    return "example", row


def _check_encodable(*texts: str | None) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``) that no UTF-8 file can store."""
    for text in texts:
        if text is not None:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise _Reject("bad_text_encoding", f"unpaired surrogate at character {e.start}") from None


def _choices(value: Any) -> list[str] | None:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if not isinstance(value, (list, tuple)):
        raise _Reject("bad_choices", f"choices are a {type(value).__name__}, not a list of strings")
    if not all(isinstance(c, str) and c.strip() for c in value):
        raise _Reject("bad_choices", "every choice must be a non-empty string")
    if len(value) > 26:
        raise _Reject("bad_choices", f"{len(value)} choices; letters A-Z allow 26")
    return list(value)


def _answer(value: Any, choices: list[str] | None, is_index: bool) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Reject("missing_answer", "no answer" if value is None else "empty answer")
    if is_index:
        if choices is None:
            raise _Reject("bad_answer", "answer_is_index is set but the row has no choices")
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise _Reject("bad_answer", f"answer {value!r} is not a choice index")
        if not 0 <= int(value) < len(choices):
            raise _Reject("bad_answer", f"answer index {value} outside 0..{len(choices) - 1}")
        return chr(ord("A") + int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject("bad_answer", f"answer is {value}")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip()
    raise _Reject("bad_answer", f"answer is a {type(value).__name__}, not text or a number")


def _image(value: Any, base: Path, root: Path, s: dict) -> tuple[bytes, str | None]:
    """The image's bytes and a path hint, from bytes, an HF ``{bytes, path}`` struct or a path."""
    if value is None:
        raise _Reject("missing_image", "no image")
    path = None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data and not isinstance(data, (bytes, bytearray, memoryview)):
            raise _Reject("bad_image_value", f"image bytes are a {type(data).__name__}")
        if data:
            return _bounded(bytes(data), s), _path_hint(path)
        if not path:
            raise _Reject("missing_image", "image struct has neither bytes nor path")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if not value:
            raise _Reject("missing_image", "image bytes are empty")
        return _bounded(bytes(value), s), None
    elif isinstance(value, str):
        path = value
    else:
        raise _Reject("bad_image_value", f"image is a {type(value).__name__}; expected a path or {{bytes, path}}")
    if not isinstance(path, str) or not path.strip() or "\x00" in path or _path_hint(path) is None:
        raise _Reject("bad_image_value", f"image path {path!r}")
    return _read_file(path, base, root, s), path


def _path_hint(path: Any) -> str | None:
    """The struct's ``path`` kept as a name hint when it is text a Parquet file can store."""
    if not isinstance(path, str):
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return path


def _bounded(data: bytes, s: dict) -> bytes:
    if len(data) > s["max_image_bytes"]:
        raise _Reject("image_too_large_bytes", f"{len(data)} bytes > max_image_bytes={s['max_image_bytes']}")
    return data


def _read_file(path: str, base: Path, root: Path, s: dict) -> bytes:
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(os.path.normpath(base / p))
        inside = os.path.commonpath([str(p), os.path.normpath(root)]) == os.path.normpath(root)
        if not inside and not s["allow_outside"]:
            raise _Reject("image_path_outside", f"{path} resolves outside {root} (set allow_outside)")
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise _Reject("image_missing", f"no file {p}") from None
    except OSError as e:
        raise _Reject("image_unreadable", f"{p}: {e}") from None
    if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO (which would block), a device
        raise _Reject("image_unreadable", f"{p} is not a regular file")
    limit = s["max_image_bytes"]
    if st.st_size > limit:
        raise _Reject("image_too_large_bytes", f"{p}: {st.st_size} bytes > max_image_bytes={limit}")
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise _Reject("image_unreadable", f"{p}: {e}") from None
    return _bounded(data, s)


__all__ = ["ANSWER_TYPES", "REASONS", "STAGE", "TYPES", "describe_spec", "read_source", "validate_spec"]
