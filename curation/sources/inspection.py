"""``sightline data inspect``: what a source looks like and the recipe entry that reads it.

``inspect_source`` detects the format, lists the files, the fields of the first rows as
dotted paths (``extra_info.question``, ``images``, ``conversations[1].value``), guesses the
column mapping from common names and parses a few rows through ``read_source`` with it, so
a new user can write the recipe in one try. ``format_inspection`` prints that for people.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from curation.sources import formats
from curation.sources.reader import read_source
from curation.sources.paths import MISSING, flatten, is_image_like, parse_path
from curation.sources.chat import exchanges
from curation.sources.spec import REQUIRED, validate_spec
from curation.sources.spec import header_names, vlmevalkit_columns

SAMPLE_ROWS = 50
NAMES = {  # our column -> their common names, most specific first
    "question": ("question", "query", "problem", "prompt", "question_text", "instruction", "text", "input"),
    "answer": ("answer", "solution", "ground_truth", "label", "gt_answer", "gt", "final_answer", "answers",
               "target", "output"),
    "image": ("image", "images", "image_path", "image_paths", "img", "img_path", "picture", "image_file",
              "figure", "decoded_image"),
    "choices": ("choices", "options", "candidates", "option_list"),
    "id": ("id", "pid", "uid", "question_id", "qid", "problem_id", "sample_id", "idx", "_key"),
    "task": ("task", "category", "subject"),
    "answer_type": ("answer_type",),
}
_CHAT_ROLES = {"question": ("user", "human"), "answer": ("assistant", "gpt")}


def inspect_source(spec_or_path: dict | str | Path, n: int = 3) -> dict[str, Any]:
    """Format, files, fields of the first rows, the mapping it would use and ``n`` parsed rows.

    A path (file, folder or glob) or a source spec; the spec's own ``columns`` win over the
    guesses. Raises a one-line SightlineError only when the source cannot be opened at all.
    """
    spec = dict(spec_or_path) if isinstance(spec_or_path, dict) else {"path": str(spec_or_path)}
    spec.setdefault("name", _name_of(str(spec.get("path", "source"))))
    s = validate_spec(spec, check_columns=False)
    files = [] if s["type"] == "hf_disk" else formats.find_files(s)[0]
    try:
        rows = _sample(s)
    except SightlineError as e:
        return _unreadable(s, files, str(e))
    except Exception as e:  # noqa: BLE001 -- inspect prints a line for any unreadable file, never a traceback
        return _unreadable(s, files, f"source {s['name']!r}: cannot read {files[0] if files else s['path']}: "
                                     f"{type(e).__name__}: {e}")
    fields = _fields(rows)
    given = {k: v for k, v in (spec.get("columns") or {}).items()}
    if not given and s["type"] in ("csv", "tsv", "parquet"):
        given = vlmevalkit_columns(header_names(s)) or {}  # VLMEvalKit's layout: its own mapping
    guessed = guess_mapping(rows)
    mapping = {**{k: v for k, v in guessed.items() if k not in given}, **given}
    required = [c for c in REQUIRED if c != "answer" or s["require_answer"]]
    conversation = spec.get("conversation")
    if conversation is None and not ({"question", "answer"} & set(given)):
        conversation = chat_list(rows)  # OpenAI-style parts / multi-turn chats: read as exchanges
    if conversation:
        mapping = {k: v for k, v in mapping.items() if k not in ("question", "answer")}
        required = [c for c in required if c not in ("question", "answer", "image")]
    missing = [c for c in required if c not in mapping]
    entry = {"type": s["type"], "name": s["name"], "path": spec["path"],
             **{k: v for k, v in spec.items() if k not in ("type", "name", "path", "columns")}}
    if conversation:
        entry["conversation"] = conversation
    entry["columns"] = {k: mapping[k] for k in sorted(mapping, key=_order)}
    result: dict[str, Any] = {
        "name": s["name"], "path": s["path"], "type": s["type"], "n_files": len(files) or 1,
        "files": [str(f) for f in files[:10]] or [s["path"]], "fields": fields, "mapping": entry["columns"],
        "guessed": sorted(k for k in mapping if k not in given), "missing": missing,
        "spec": entry, "rows": [], "error": None,
    }
    if missing:
        result["error"] = f"no field found for {', '.join(missing)}: add them to 'columns'"
        return result
    try:
        entry_spec = {**entry, "columns": entry["columns"] or None}
        for kind, row in read_source(entry_spec, limit=n):
            if kind == "example":
                result["rows"].append(_row_summary(row))
            else:
                result["rows"].append({"source_id": row["source_id"], "reject": row["reason"],
                                       "detail": row["detail"]})
    except SightlineError as e:
        result["error"] = str(e)
    except Exception as e:  # noqa: BLE001 -- a line of output, never a traceback
        result["error"] = f"cannot parse rows: {type(e).__name__}: {e}"
    return result


def _unreadable(s: dict, files: list, why: str) -> dict[str, Any]:
    return {"name": s["name"], "path": s["path"], "type": s["type"], "n_files": len(files) or 1,
            "files": [str(f) for f in files[:10]] or [s["path"]], "fields": [], "mapping": {}, "guessed": [],
            "missing": [], "spec": {"type": s["type"], "name": s["name"], "path": s["path"]}, "rows": [],
            "error": why}


def _name_of(path: str) -> str:
    p = Path(path)
    return (p.stem if p.suffix else p.name).replace("*", "").strip("._-") or "source"


def _order(ours: str) -> int:
    return list(NAMES).index(ours)


def _sample(s: dict) -> list[dict]:
    rows = []
    for kind, _, payload, _, _ in _arrow_rows(s) if s["type"] in ("parquet", "hf_disk") \
            else formats.items({**s, "columns": {}}):
        if kind == "record":
            rows.append(payload)
        if len(rows) >= SAMPLE_ROWS:
            break
    return rows


def _arrow_rows(s: dict):
    """All columns of the first rows of a Parquet / save_to_disk source."""
    if s["type"] == "hf_disk":
        table = formats.open_hf(s).with_format("arrow")[:SAMPLE_ROWS]
        names = table.column_names
    else:
        import pyarrow.parquet as pq

        first = formats.find_files(s)[0][0]
        formats.parquet_schema(s, first)  # a one-line error for a pointer or a damaged file
        pf = pq.ParquetFile(first)
        table = next(pf.iter_batches(batch_size=SAMPLE_ROWS), None)
        names = pf.schema_arrow.names
    for row in ([] if table is None else table.to_pylist()):
        yield "record", "", {k: row.get(k) for k in names}, None, ""


def _fields(rows: list[dict]) -> list[dict]:
    """Every dotted path seen in the first rows, with a short description of its first value."""
    seen: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for row in rows:
        for path, value in flatten(row).items():
            counts[path] = counts.get(path, 0) + 1
            if seen.get(path) is None:
                seen[path] = value
    return [{"path": p, "kind": describe_value(v), "rows": counts[p]} for p, v in seen.items()]


def describe_value(value: Any, width: int = 60) -> str:
    """``str 'What is ...'``, ``int 3``, ``image (png, 1234 bytes)``, ``list[4] of str``."""
    if value is None:
        return "null"
    if is_image_like(value):
        data, path = value.get("bytes"), value.get("path")
        return "image " + (f"({image_format(data)}, {len(data)} bytes)" if data else f"(path {path!r})")
    if isinstance(value, (bytes, bytearray)):
        return f"bytes ({image_format(bytes(value))}, {len(value)} bytes)"
    if isinstance(value, (list, tuple)):
        kinds = sorted({"image" if is_image_like(v) else type(v).__name__ for v in value})
        return f"list[{len(value)}]" + (f" of {'/'.join(kinds)}" if kinds else "")
    if isinstance(value, str):
        text = " ".join(value.split())
        return f"str {text if len(text) <= width else text[:width - 3] + '...'!r}"
    if isinstance(value, dict):
        return "{}"
    return f"{type(value).__name__} {value!r}"


def image_format(data: bytes | None) -> str:
    if not data:
        return "empty"
    for magic, name in ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"), (b"BM", "bmp")):
        if data.startswith(magic):
            return name
    return "webp" if data[8:12] == b"WEBP" else "unknown format"


# ---------------------------------------------------------------- guessing the mapping


def guess_mapping(rows: list[dict]) -> dict[str, str]:
    """Our column -> their path, from common names (top level first, then nested keys, then a
    chat list's user / assistant turn). Only paths that hold a usable value in the rows."""
    paths: dict[str, Any] = {}
    for row in rows:
        for path, value in flatten(row).items():
            if paths.get(path) is None:
                paths[path] = value
    mapping: dict[str, str] = {}
    for ours, names in NAMES.items():
        found = _by_name(rows, paths, "image_bytes", names) if ours == "image" else None
        found = found or _by_name(rows, paths, ours, names)
        if found is None and ours in _CHAT_ROLES:
            found = _chat_turn(rows, ours)
        if found is not None:
            mapping[ours] = found
    return mapping


def _holds_bytes(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_holds_bytes(v) for v in value)
    return isinstance(value, bytes) or (is_image_like(value) and bool(value.get("bytes")))


def _usable(ours: str, value: Any) -> bool:
    if value is None or value is MISSING:
        return False
    if ours == "image_bytes":   # first choice for images: bytes in the file beat paths to elsewhere
        return _holds_bytes(value)
    if ours == "image":
        return isinstance(value, (str, bytes, list)) or is_image_like(value)
    if ours == "choices":
        return isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value)
    if ours == "question":
        return isinstance(value, str)
    return isinstance(value, (str, int, float, bool))


def _by_name(rows: list[dict], paths: dict[str, Any], ours: str, names: tuple[str, ...]) -> str | None:
    for name in names:   # a top-level field
        if any(_usable(ours, row.get(name)) for row in rows):
            return name
    for name in names:   # a nested one: extra_info.question, reward_model.ground_truth
        for path, value in paths.items():
            last = parse_path(path)[-1]
            if "." in path and last == name and "[" not in path and _usable(ours, value):
                return path
    return None


def chat_list(rows: list[dict]) -> str | None:
    """The top-level chat list to read as exchanges: one whose turns carry content parts
    (``{type: text | image}``) or hold more than one question / answer exchange; else None
    (a single-exchange chat with text turns maps to ``conversations[0].value`` columns instead)."""
    for row in rows[:5]:
        for key, value in row.items():
            if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
                continue
            found = exchanges(value)
            if isinstance(found, str) or not found:
                continue
            parts = any(isinstance(t.get("content"), list) for t in value)
            if parts or len(found) > 1:
                return key
    return None


def _chat_turn(rows: list[dict], ours: str) -> str | None:
    """``prompt[1].content`` / ``conversations[0].value``: the first user (or assistant) turn."""
    for row in rows[:5]:
        for key, value in row.items():
            if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
                continue
            for role_key, text_key in (("role", "content"), ("from", "value")):
                for i, turn in enumerate(value):
                    if turn.get(role_key) in _CHAT_ROLES[ours] and isinstance(turn.get(text_key), str):
                        return f"{key}[{i}].{text_key}"
    return None


# ---------------------------------------------------------------- printing


def _image_size(data: bytes) -> str:
    """``24x20`` from the image header (nothing is decoded), or "" when PIL cannot tell."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return f"{im.width}x{im.height}, "
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return ""


def _row_summary(row: dict) -> dict:
    images = [f"{image_format(im['bytes'])}, {_image_size(im['bytes'])}{len(im['bytes'])} bytes"
              + (f", {im['path']}" if im.get("path") else "") for im in row["images"]]
    return {"source_id": row["source_id"], "question": row["question"], "choices": row["choices"],
            "answer": row["answer"], "answer_type": row["answer_type"], "task": row["task"], "images": images}


def format_inspection(info: dict) -> str:
    """The inspection as text: format, files, fields, the recipe entry, parsed rows."""
    import yaml

    lines = [f"source {info['name']!r}: {info['type']}, {info['n_files']} file(s) at {info['path']}"]
    lines += [f"  {f}" for f in info["files"]]
    if info["n_files"] > len(info["files"]):
        lines.append(f"  ... and {info['n_files'] - len(info['files'])} more")
    lines.append(f"fields of the first {SAMPLE_ROWS} rows (dotted paths can be mapped in 'columns'):")
    width = max((len(f["path"]) for f in info["fields"]), default=0)
    lines += [f"  {f['path']:<{width}}  {f['kind']}" for f in info["fields"]]
    guessed = f" (guessed: {', '.join(info['guessed'])})" if info["guessed"] else ""
    lines.append(f"recipe entry{guessed}:")
    entry = yaml.safe_dump({"sources": [info["spec"]]}, sort_keys=False, default_flow_style=None, width=100)
    lines += ["  " + line for line in entry.rstrip().splitlines()]
    if info["error"]:
        lines.append(f"cannot parse rows yet: {info['error']}")
    for row in info["rows"]:
        if "reject" in row:
            lines.append(f"row {row['source_id']}: REJECTED {row['reject']}: {row['detail']}")
            continue
        lines.append(f"row {row['source_id']}:")
        for key in ("question", "choices", "answer", "answer_type", "task", "images"):
            if row.get(key) not in (None, []):
                shown = "; ".join(row[key]) if key == "images" else repr(row[key])
                lines.append(f"  {key}: {shown}")
    return "\n".join(lines)


__all__ = ["describe_value", "format_inspection", "guess_mapping", "inspect_source"]
