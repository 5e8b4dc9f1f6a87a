"""Source specs: defaults, the closed list of ingest reject reasons, and the checks run before
the first row flows (unknown keys, types, paths, a mapped column the data lacks)."""
from __future__ import annotations

import difflib
from pathlib import Path

from curation.errors import SightlineError
from curation.sources import formats
from curation.sources.formats import fail
from curation.sources.paths import MISSING, flatten, flatten_type, parse_path, resolve, type_has_path
from schemas.counters import Stage
from schemas.tables import ANSWER_TYPES
from curation.sources.delimited import delimited_header

STAGE = Stage.INGEST
TYPES = ("jsonl", "json", "parquet", "hf_disk", "csv", "tsv", "auto", "mixed")  # mixed: what auto makes of a
COLUMNS = ("question", "answer", "image", "choices", "answer_type", "task", "id", "hint")  # folder of several kinds
LIST_COLUMNS = ("choices",)  # may map several source columns into one list: choices: [A, B, C, D, E]
VLMEVALKIT = {"id": "index", "question": "question", "answer": "answer", "task": "category", "hint": "hint"}
REQUIRED = ("question", "answer", "image")
DEFAULTS = {"columns": None, "answer_type": None, "task": None, "allow_outside": False,
            "max_image_bytes": 50_000_000, "batch_size": 64, "split": None, "answer_is_index": False,
            "require_answer": True, "limit": None, "image_root": None, "records": None,
            "parse_options": True, "max_reject_fraction": None,  # None: the recipe's ingest setting
            "turns": "first", "conversation": None,
            "license": None}  # the source's licence, as its publisher states it: shown in each version's card
SCAN_ROWS = 1000   # records of the first JSON / JSONL files read to learn the fields they have
SCAN_FILES = 50    # ... from at most this many files
SHOWN_NAMES = 30   # field names listed in an error

REASONS = (
    "bad_json", "bad_file", "bad_text_encoding", "line_too_long", "missing_question", "empty_question",
    "bad_question", "missing_answer", "empty_answer", "bad_answer", "answer_letter_outside_choices",
    "bad_choices", "bad_answer_type", "missing_image", "bad_image_value", "image_path_outside",
    "image_missing", "image_unreadable", "image_too_large_bytes", "image_lfs_pointer", "bad_conversation",
)

__all__ = ["ANSWER_TYPES", "COLUMNS", "DEFAULTS", "REASONS", "STAGE", "TYPES", "column_paths", "compile_columns",
           "sample_records", "validate_spec", "vlmevalkit_columns"]


def _check_options(spec: dict, s: dict) -> None:
    if s["answer_type"] is not None and s["answer_type"] not in ANSWER_TYPES:
        raise fail(spec, f"unknown answer_type {s['answer_type']!r}; known: {', '.join(ANSWER_TYPES)}")
    for key, low in (("batch_size", 1), ("max_image_bytes", 1)):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < low:
            raise fail(spec, f"{key} must be a positive integer")
    limit = s["limit"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise fail(spec, "limit must be a non-negative integer")
    fraction = s["max_reject_fraction"]
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 <= fraction <= 1):
        raise fail(spec, "max_reject_fraction must be a number from 0 to 1")
    if s["turns"] not in ("first", "all"):
        raise fail(spec, f"turns must be first or all, got {s['turns']!r}")
    if s["conversation"] is not None:
        try:
            parse_path(s["conversation"])
        except (ValueError, TypeError) as e:
            raise fail(spec, f"conversation: {e}") from None
    if s["license"] is not None and (not isinstance(s["license"], str) or not s["license"].strip()):
        raise fail(spec, "license must be a non-empty string (e.g. cc-by-4.0), or left out")
    for key in ("allow_outside", "answer_is_index", "require_answer", "parse_options"):
        if not isinstance(s[key], bool):
            raise fail(spec, f"{key} must be true or false")
    if s["records"] is not None:
        if s["type"] != "json":
            raise fail(spec, "'records' (where the rows sit inside a JSON document) needs type: json")
        try:
            parse_path(s["records"])
        except ValueError as e:
            raise fail(spec, f"records: {e}") from None


def validate_spec(spec: dict, *, check_columns: bool = True) -> dict:
    """A complete copy of ``spec`` with defaults filled in and ``type: auto`` resolved, or a
    one-line SightlineError. ``check_columns=False`` skips looking into the data."""
    if not isinstance(spec, dict):
        raise SightlineError(f"a source spec is a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"type", "name", "path"} - set(DEFAULTS))
    if unknown:
        keys = ["type", "name", "path", *DEFAULTS]
        close = difflib.get_close_matches(str(unknown[0]), keys, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise fail(spec, f"unknown key(s) {', '.join(map(str, unknown))}{hint} (known: {', '.join(keys)})")
    s = {**DEFAULTS, "type": "auto", **spec}
    if s["type"] not in TYPES:
        raise fail(spec, f"unknown type {s.get('type')!r}; known: {', '.join(TYPES)}")
    if not isinstance(s.get("name"), str) or not s["name"]:
        raise SightlineError(f"a {s['type']} source needs a non-empty 'name'")
    if not isinstance(s.get("path"), str) or not s["path"]:
        raise fail(spec, "no 'path' given")
    if not formats.path_exists(s["path"]):
        what = "no files match" if formats.is_glob(s["path"]) else "path does not exist:"
        raise fail(spec, f"{what} {s['path']}")
    s["path"] = str(Path(s["path"]).expanduser())
    if s["type"] == "auto":
        try:
            s["type"] = formats.detect_type(s["path"])
        except SightlineError as e:
            raise fail(spec, str(e)) from None
    if s["image_root"] is not None:
        root = Path(str(s["image_root"])).expanduser()
        if not root.is_dir():
            raise fail(spec, f"image_root is not a folder: {root}")
        s["image_root"] = str(root)
    _check_options(spec, s)
    if spec.get("columns") is None and s["type"] in ("csv", "tsv", "parquet"):
        s["columns"] = vlmevalkit_columns(header_names(s)) or None
    mapped = dict(s["columns"] or {})
    bad = sorted(set(mapped) - set(COLUMNS))
    if bad:
        close = difflib.get_close_matches(str(bad[0]), COLUMNS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise fail(spec, f"unknown column name(s) {', '.join(map(str, bad))} in 'columns'{hint}; "
                         f"ours are {', '.join(COLUMNS)}")
    for ours, theirs in mapped.items():
        paths = theirs if isinstance(theirs, list) and ours in LIST_COLUMNS else [theirs]
        if not paths or any(not isinstance(v, str) or not v for v in paths):
            raise fail(spec, "'columns' maps our names to the source's column names (non-empty strings; "
                             "choices may take a list of columns)")
        for path in paths:
            try:
                parse_path(path)
            except ValueError as e:
                raise fail(spec, f"columns.{ours}: {e}") from None
    s["columns"] = {c: mapped.get(c, c) for c in COLUMNS}
    if check_columns:
        # Required columns and optional ones mapped to another name must exist; an optional column
        # under its own name may be absent (so a validated spec, columns filled in, validates again).
        required = [c for c in REQUIRED if c != "answer" or s["require_answer"]]
        if s["conversation"]:  # question and answer come from the turns, images may sit in their parts
            required = []
        _check_columns(s, [c for c in COLUMNS if c in required or mapped.get(c, c) != c])
    return s


def compile_columns(s: dict) -> dict[str, tuple[str, tuple]]:
    """Our name -> (their path, parsed steps), parsed once per read; a list of columns (choices:
    [A, B, C]) -> (their names joined, a list of (path, steps))."""
    out: dict[str, tuple[str, tuple]] = {}
    for ours, theirs in s["columns"].items():
        if isinstance(theirs, list):
            out[ours] = (", ".join(theirs), [(t, parse_path(t)) for t in theirs])  # type: ignore[assignment]
        else:
            out[ours] = (theirs, parse_path(theirs))
    return out


def column_paths(theirs) -> list[str]:
    """The source paths one of our columns reads (several for a list of columns)."""
    return list(theirs) if isinstance(theirs, list) else [theirs]


def header_names(s: dict) -> list[str]:
    """The column names of the first file of a CSV / TSV / Parquet source ([] when unreadable here)."""
    try:
        first = formats.find_files(s)[0][0]
        if s["type"] == "parquet":
            return list(formats.parquet_schema(s, first).names)
        return delimited_header(first, "\t" if s["type"] == "tsv" else ",")
    except (SightlineError, OSError, UnicodeDecodeError):
        return []  # the reader says why, with the file's name, when it gets there


def vlmevalkit_columns(names: list[str]) -> dict | None:
    """The mapping of VLMEvalKit's / MMBench's TSV layout (``index, question, hint, A, B, ..., answer,
    category, image``) when ``names`` are its columns: option columns become ``choices``, the hint is
    prepended to the question, ``index`` names the row, ``category`` the task; else None."""
    have = set(names)
    image = "image" if "image" in have else "image_path" if "image_path" in have else None
    if not ({"index", "question", "answer", "A", "B"} <= have and image):
        return None
    letters = []
    for i in range(26):
        letter = chr(ord("A") + i)
        if letter not in have:
            break
        letters.append(letter)
    columns = {k: v for k, v in VLMEVALKIT.items() if v in have}
    return {**columns, "image": image, "choices": letters}


# ---------------------------------------------------------------- mapped columns exist


def _missing_column(s: dict, ours: str, where: str, available: list[str], theirs: str) -> SightlineError:
    via = f" (mapped from {ours!r})" if theirs != ours else ""
    close = difflib.get_close_matches(theirs, available, n=3, cutoff=0.6)
    shown = ", ".join(available[:SHOWN_NAMES]) + (", ..." if len(available) > SHOWN_NAMES else "")
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return fail(s, f"column {theirs!r}{via} not in {where}; available: {shown or '(none)'}{hint}")


def _check_columns(s: dict, needed: list[str]) -> None:
    if s["type"] in ("parquet", "hf_disk"):
        for where, schema in _arrow_schemas(s):
            for ours in needed:
                for theirs in column_paths(s["columns"][ours]):
                    if theirs in schema.names:
                        continue
                    steps = parse_path(theirs)
                    if steps[0] not in schema.names or not type_has_path(schema.field(steps[0]).type, steps[1:]):
                        available = [p for f in schema for p in flatten_type(f.name, f.type)]
                        raise _missing_column(s, ours, where, sorted(available), theirs)
        return
    where, rows = sample_records(s)
    if not rows:
        raise fail(s, f"{where} has no rows")
    for ours in needed:
        for theirs in column_paths(s["columns"][ours]):
            steps = parse_path(theirs)
            if not any(resolve(row, theirs, steps) is not MISSING for row in rows):
                names: dict[str, None] = {}
                for row in rows[:100]:
                    names.update(dict.fromkeys(flatten(row)))
                raise _missing_column(s, ours, where, sorted(names), theirs)


def _arrow_schemas(s: dict):
    if s["type"] == "hf_disk":
        yield Path(s["path"]).name, formats.open_hf(s).data.schema
        return
    files, _ = formats.find_files(s)
    for f in files:
        yield f.name, formats.parquet_schema(s, f)


def sample_records(s: dict, max_rows: int = SCAN_ROWS) -> tuple[str, list[dict]]:
    """The first records of a JSON / JSONL source (and the first file's name); the first file
    failing to parse as the type says is a one-line error naming why."""
    files, _ = formats.find_files(s)
    rows: list[dict] = []
    for n, file in enumerate(files[:SCAN_FILES]):
        found = _first_file_records(s, file, max_rows) if n == 0 else _records(s, file, max_rows - len(rows))
        rows += found
        if len(rows) >= max_rows:
            break
    return files[0].name, rows


def _records(s: dict, file: Path, limit: int) -> list[dict]:
    out: list[dict] = []
    for kind, _, payload, _ in formats.file_items(s, file, ""):
        if kind == "record":
            out.append(payload)
        if len(out) >= limit:
            break
    return out


def _first_file_records(s: dict, file: Path, limit: int) -> list[dict]:
    head = formats.read_head(file)
    if s["type"] == "mixed":
        return _records(s, file, limit)
    if problem := formats.binary_problem(head):
        raise fail(s, f"{file} is {problem}")
    if s["type"] in ("csv", "tsv"):
        return _records(s, file, limit)
    first = formats.first_char(head)
    if s["type"] == "jsonl":
        if first == "[":
            raise fail(s, f"{file.name} looks like a JSON array, not JSON lines: use type: json")
        rows, seen, example = [], 0, ""
        for kind, _, payload, _ in formats.jsonl_items(file, ""):
            seen += 1
            if kind == "record":
                rows.append(payload)
            elif not example:
                example = payload[1]
            if len(rows) >= limit or (seen >= SCAN_ROWS and not rows):
                break
        if seen and not rows:
            hint = "; looks like one JSON document: use type: json" if first == "{" else ""
            raise fail(s, f"no line of {file.name} (of the first {seen}) is a JSON object ({example}){hint}")
        return rows
    doc, why = formats.load_json(file, s["records"])
    if doc is None:
        raise fail(s, why)
    if isinstance(doc, dict) and not formats.is_keyed(doc) and any(
            isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in doc.values()):
        lists = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if not any(k in doc for k in ("question", "query", "problem", "prompt", "conversations", "messages",
                                      s.get("conversation") or "question")):
            raise fail(s, f"{file.name} is one object whose rows seem to sit under {lists[0]!r}: "
                          f"set records: {lists[0]}")
    return _records(s, file, limit)

