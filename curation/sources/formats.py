"""Files of a source and the records in them: JSON lines, JSON documents, Parquet, ``save_to_disk``.

``path`` is a file, a folder (searched recursively for the type's extension; hidden entries
skipped) or a glob (``data/*.json``, ``**/data.json``); the files are read in sorted order as
one source. ``type: auto`` decides by the folder's markers, the extension and the first
non-space byte. A reader yields items ``("record", source_id, row, file)`` or
``("reject", source_id, (reason, detail), file)``, each followed by the file's id prefix
(``"name.jsonl:"`` when the source has several files); what makes a whole single-file source
unreadable (a binary file, a JSON array read as JSON lines) is a one-line SightlineError.
"""
from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from curation.sources.paths import MISSING, column_of, parse_path, resolve
from curation.sources.delimited import delimited_items

EXTENSIONS = {"jsonl": (".jsonl", ".ndjson", ".jsonlines"), "json": (".json",), "parquet": (".parquet",),
              "csv": (".csv",), "tsv": (".tsv", ".tab")}
FILE_TYPES = ("parquet", "jsonl", "json", "csv", "tsv")  # a folder's files of these types are read
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
LFS_HINT = "a Git LFS pointer, not the data: fetch the files with git lfs pull"
HF_MARKERS = ("state.json", "dataset_dict.json", "dataset_info.json")
MAX_LINE_BYTES = 16 * 2**20  # a JSONL line larger than this is a reject, not a memory spike
HEAD_BYTES = 8192            # read to recognise binary files and JSON documents
KEY_FIELD = "_key"           # the key of an object keyed by id, mappable like a column
_MAGIC = (
    (b"PAR1", "a Parquet file: use type: parquet"),
    (LFS_POINTER, LFS_HINT),
    (b"ARROW1", "an Arrow file (for a save_to_disk folder give the folder with type: hf_disk)"),
    (b"\xff\xff\xff\xff", "an Arrow stream (for a save_to_disk folder give the folder with type: hf_disk)"),
    (b"\x89PNG", "a PNG image, not a table"), (b"\xff\xd8\xff", "a JPEG image, not a table"),
    (b"GIF8", "a GIF image, not a table"), (b"PK\x03\x04", "a zip archive: unpack it first"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first"), (b"BZh", "bzip2-compressed: decompress it first"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first"),
)

Item = tuple[str, str, Any, Path]  # the readers'; ``items`` adds the prefix


def fail(s: dict, message: str) -> SightlineError:
    return SightlineError(f"source {s.get('name', '?')!r}: {message}")


# ---------------------------------------------------------------- files


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def glob_root(pattern: str) -> Path:
    """The folder a glob's matches are named relative to: its part before the first wildcard."""
    parts = Path(pattern).expanduser().parts
    fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if is_glob(p))]]
    return Path(*fixed) if fixed else Path(".")


def path_exists(path: str) -> bool:
    if is_glob(path):
        return any(Path(p).is_file() for p in glob.iglob(str(Path(path).expanduser()), recursive=True))
    return Path(path).expanduser().exists()


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in HF_MARKERS[:2])


def _visible(p: Path, root: Path) -> bool:
    return p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)


def find_files(s: dict) -> tuple[list[Path], Path | None]:
    """The source's files in sorted order, and the folder their names are relative to
    (None for a single file: its rows need no file name)."""
    path = s["path"]
    if is_glob(path):
        matches = glob.glob(str(Path(path).expanduser()), recursive=True)
        files = sorted(Path(p) for p in matches if Path(p).is_file())
        if not files:
            raise fail(s, f"no files match {path}")
        return files, glob_root(path)
    p = Path(path)
    if p.is_file():
        return [p], None
    ext = _extensions(s["type"])
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in ext and _visible(f, p))
    if not files:
        found = sorted({f.suffix for f in p.rglob("*") if f.is_file() and f.suffix})[:8]
        seen = f" (found {', '.join(found)})" if found else ""
        raise fail(s, f"no {'/'.join(ext)} files under {p}{seen}")
    return files, p


def _extensions(kind: str) -> tuple[str, ...]:
    if kind == "mixed":
        return tuple(e for t in FILE_TYPES for e in EXTENSIONS[t])
    return EXTENSIONS.get(kind, ())


def file_kind(file: Path, head: bytes | None = None) -> str:
    """The reader a file of a mixed folder gets: by extension, then (JSON) by content."""
    suffix = file.suffix.lower()
    for kind in ("parquet", "csv", "tsv"):
        if suffix in EXTENSIONS[kind]:
            return kind
    kind = _json_kind(file, head)
    return "jsonl" if suffix in EXTENSIONS["jsonl"] and kind == "json" and first_char(head or read_head(file)) == "{" \
        else kind


def relative_name(file: Path, root: Path | None) -> str:
    return "" if root is None else file.relative_to(root).as_posix()


def detect_type(path: str) -> str:
    """``jsonl | json | parquet | hf_disk`` for ``type: auto``, or a SightlineError saying why not."""
    p = Path(path).expanduser()
    if not is_glob(path) and p.is_dir():
        if is_hf_folder(p):
            return "hf_disk"
        counts = {t: sum(1 for f in p.rglob("*") if f.suffix.lower() in ext and _visible(f, p))
                  for t, ext in EXTENSIONS.items()}
        present = [kind for kind in FILE_TYPES if counts[kind]]
        if len(present) > 1:
            return "mixed"  # every file read by its own kind: none skipped in silence
        if present:
            kind = present[0]
            return kind if kind != "json" else _json_kind(next(
                f for f in sorted(p.rglob("*.json")) if _visible(f, p)))
        raise SightlineError(f"cannot tell the type of {path}: no save_to_disk markers, .parquet, .jsonl, "
                             ".json, .csv or .tsv files in it; set 'type'")
    files = [p] if not is_glob(path) else sorted(Path(f) for f in glob.glob(str(p), recursive=True)
                                                  if Path(f).is_file())
    if not files:
        raise SightlineError(f"no files match {path}")
    first = files[0]
    head = read_head(first)
    problem = binary_problem(head)
    if problem == _MAGIC[0][1]:
        return "parquet"
    if problem:
        raise SightlineError(f"cannot read {first} as a source: {problem}")
    for kind in ("csv", "tsv"):
        if first.suffix.lower() in EXTENSIONS[kind]:
            return kind
    return _json_kind(first, head)


def _json_kind(file: Path, head: bytes | None = None) -> str:
    """JSON document or JSON lines, by content: an array, or an object that is the whole file."""
    head = read_head(file) if head is None else head
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "json"
    if not text.startswith(b"{"):
        return "jsonl" if file.suffix.lower() in EXTENSIONS["jsonl"] else "json"
    with open(file, "rb") as f:
        first = f.readline(MAX_LINE_BYTES)
        rest = f.read(HEAD_BYTES).lstrip()
    try:
        complete = isinstance(json.loads(first), dict)
    except ValueError:
        complete = False
    one_line = not rest and file.suffix.lower() in EXTENSIONS["jsonl"]  # a .jsonl of one row is still lines
    return "jsonl" if complete and (rest.startswith(b"{") or one_line) else "json"


def read_head(file: Path) -> bytes:
    with open(file, "rb") as f:
        return f.read(HEAD_BYTES)


def binary_problem(head: bytes) -> str | None:
    """Why the first bytes of a file are not JSON text, or None."""
    for magic, why in _MAGIC:
        if head.startswith(magic):
            return why
    if b"\x00" in head:
        return "a binary file (NUL bytes; UTF-16 text must be saved as UTF-8)"
    return None


def first_char(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return chr(text[0]) if text else ""


# ---------------------------------------------------------------- JSON lines and JSON documents


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


def jsonl_items(file: Path, prefix: str) -> Iterator[Item]:
    if problem := binary_problem(read_head(file)):
        yield "reject", prefix.rstrip(":") or "0", ("bad_file", f"{file.name} is {problem}"), file
        return
    with open(file, "rb") as f:
        for index, raw in _lines(f):
            sid = f"{prefix}{index}"
            if raw is None:
                yield "reject", sid, ("line_too_long", f"line over {MAX_LINE_BYTES} bytes"), file
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield "reject", sid, ("bad_text_encoding", f"not UTF-8 at byte {e.start}"), file
                continue
            try:
                obj = json.loads(text)
            except ValueError as e:
                yield "reject", sid, ("bad_json", f"{e} in {text[:40]!r}"), file
                continue
            if not isinstance(obj, dict):
                yield "reject", sid, ("bad_json", f"a line is a JSON object, got {type(obj).__name__}"), file
                continue
            yield "record", sid, obj, file


def load_json(file: Path, records: str | None) -> tuple[Any, str | None]:
    """The parsed document (at ``records`` inside it, if given), or ``(None, why)``."""
    head = read_head(file)
    if problem := binary_problem(head):
        return None, f"{file.name} is {problem}"
    try:
        doc = json.loads(file.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        return None, f"{file.name} is not UTF-8 text (byte {e.start})"
    except ValueError as e:
        hint = "; looks like JSON lines: use type: jsonl" if "Extra data" in str(e) else ""
        return None, f"{file.name} is not one JSON document: {e}{hint}"
    if records:
        doc = resolve(doc, records) if isinstance(doc, dict) else MISSING
        if doc is MISSING:
            return None, f"{file.name} has no {records!r} (set by 'records')"
    if not isinstance(doc, (list, dict)):
        return None, f"{file.name} holds a JSON {type(doc).__name__}, not an array or object of rows"
    return doc, None


def is_keyed(doc: dict) -> bool:
    """An object keyed by id whose values are the rows (else the object is one row)."""
    return bool(doc) and all(isinstance(v, dict) for v in doc.values())


def json_items(file: Path, prefix: str, records: str | None) -> Iterator[Item]:
    doc, why = load_json(file, records)
    name = prefix.rstrip(":") or "0"
    if doc is None:
        yield "reject", name, ("bad_file", why), file
    elif isinstance(doc, list):
        for i, obj in enumerate(doc):
            if isinstance(obj, dict):
                yield "record", f"{prefix}{i}", obj, file
            else:
                why = f"element {i} is a {type(obj).__name__}, not an object"
                yield "reject", f"{prefix}{i}", ("bad_json", why), file
    elif is_keyed(doc):
        for key, obj in doc.items():
            yield "record", f"{prefix}{key}", (obj if KEY_FIELD in obj else {**obj, KEY_FIELD: key}), file
    else:
        yield "record", name, doc, file


# ---------------------------------------------------------------- Parquet and save_to_disk


def open_hf(s: dict):
    import datasets

    path = Path(s["path"])
    if not path.is_dir():
        raise fail(s, f"an hf_disk source is a folder written by save_to_disk, got a file: {path}")
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise fail(s, f"not a save_to_disk folder: {path} ({type(e).__name__}: {e})") from e
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        split = s["split"] or (splits[0] if len(splits) == 1 else None)
        if split not in ds:
            raise fail(s, f"choose a split with 'split': {', '.join(splits)}")
        ds = ds[split]
    return ds


def parquet_schema(s: dict, file: Path):
    import pyarrow.parquet as pq

    if (problem := binary_problem(read_head(file))) and problem != _MAGIC[0][1]:
        raise fail(s, f"{file} is {problem}")
    try:
        return pq.ParquetFile(file).schema_arrow
    except Exception as e:  # pyarrow raises several types for a bad footer
        raise fail(s, f"cannot read Parquet file {file}: {e}") from e


def _wanted(s: dict, names) -> list[str]:
    """The top-level columns the mapped paths read (only those are loaded)."""
    paths = [t for v in s["columns"].values() if v is not None for t in (v if isinstance(v, list) else [v])]
    return sorted({column_of(t, names) for t in paths if t != KEY_FIELD} & set(names))


def parquet_items(s: dict, file: Path, prefix: str) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(file)
    index = 0
    try:
        for batch in pf.iter_batches(batch_size=s["batch_size"], columns=_wanted(s, pf.schema_arrow.names)):
            for row in batch.to_pylist():
                yield "record", f"{prefix}{index}", row, file
                index += 1
    except (OSError, pa.ArrowException) as e:  # a damaged file is a failure of the source, not of one row
        raise fail(s, f"cannot read {file} after row {index}: {e}") from e


def hf_items(s: dict) -> Iterator[Item]:
    ds = open_hf(s)
    path = Path(s["path"])
    index = 0
    # Arrow format: image structs stay bytes, never decoded into PIL here.
    tables = ds.select_columns(_wanted(s, ds.column_names)).with_format("arrow")
    for table in tables.iter(batch_size=s["batch_size"]):
        for row in table.to_pylist():
            yield "record", str(index), row, path
            index += 1


def items(s: dict) -> Iterator[tuple[str, str, Any, Path, str]]:
    """Every record (or file/line-level reject) of a validated spec, files in sorted order."""
    if s["type"] == "hf_disk":
        for item in hf_items(s):
            yield *item, ""
        return
    files, root = find_files(s)
    for file in files:
        prefix = f"{relative_name(file, root)}:" if root is not None else ""
        for item in file_items(s, file, prefix):
            yield *item, prefix


def file_items(s: dict, file: Path, prefix: str) -> Iterator[Item]:
    """The records of one file, read as the source's type (in a mixed folder: as the file's own)."""
    kind = s["type"]
    if kind == "mixed":
        head = read_head(file)
        if problem := binary_problem(head):
            if problem != _MAGIC[0][1]:
                yield "reject", prefix.rstrip(":") or "0", ("bad_file", f"{file.name} is {problem}"), file
                return
            kind = "parquet"
        else:
            kind = file_kind(file, head)
    if kind == "jsonl":
        yield from jsonl_items(file, prefix)
    elif kind == "json":
        yield from json_items(file, prefix, s["records"])
    elif kind in ("csv", "tsv"):
        if problem := binary_problem(read_head(file)):
            yield "reject", prefix.rstrip(":") or "0", ("bad_file", f"{file.name} is {problem}"), file
            return
        yield from delimited_items(file, prefix, "\t" if kind == "tsv" else ",")
    else:
        if (problem := binary_problem(read_head(file))) and problem != _MAGIC[0][1]:
            yield "reject", prefix.rstrip(":") or "0", ("bad_file", f"{file.name} is {problem}"), file
            return
        yield from parquet_items(s, file, prefix)


__all__ = ["KEY_FIELD", "LFS_HINT", "LFS_POINTER", "detect_type", "file_items", "file_kind", "find_files",
           "items", "open_hf", "parse_path"]
