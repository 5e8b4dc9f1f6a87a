"""Fail loudly: a source whose rows are mostly rejected at ingest is a configuration mistake.

``ingest_health`` turns a source's reject counts into one line with the top reason, one
example detail and a hint for the common mistakes (a JSON document read as JSON lines, a
binary file, a wrong column name, image paths relative to another folder), or None when the
source is healthy. The pipeline stops before publishing when it returns a line.
"""
from __future__ import annotations

import re

MAX_DETAIL = 160
_SUGGESTION = re.compile(r"no '([^']+)' \((question|answer|image)\) in the row; did you mean '([^']+)'")
_NULL = re.compile(r"'([^']+)' is null")
_HINTS = {
    "bad_text_encoding": "not UTF-8 text: a binary file? check 'path' and 'type' "
                         "(type: auto detects the format)",
    "bad_file": "check 'path' and 'type' (type: auto detects the format)",
    "line_too_long": "lines over 16 MiB: a JSON document or a binary file? use type: json or type: auto",
    "image_missing": "relative image paths resolve against the folder of the file they come from: "
                     "set image_root to the folder they are relative to",
    "image_path_outside": "set image_root to the folder the image paths are relative to",
    "bad_choices": "choices must be a list of strings or numbers: map another column to 'choices'",
    "answer_letter_outside_choices": "the gold letters and the choices disagree: check the "
                                     "'answer' and 'choices' columns",
    "bad_image_value": "map 'image' to a path, {bytes, path}, bytes, or a list of those",
    "empty_question": "the mapped question column is empty: map another column",
    "empty_answer": "the mapped answer column is empty: map another column",
    "image_lfs_pointer": "the images are Git LFS pointers, not images: fetch them with git lfs pull",
    "not_an_image": "the image files do not decode: check that they are images (a clone without git lfs "
                    "leaves pointers)",
}


def ingest_health(source_name: str, n_rows: int, reject_counts: dict[str, int], example_detail: str,
                  max_reject_fraction: float = 0.5, stage: str = "ingest") -> str | None:
    """One line when more than ``max_reject_fraction`` of ``n_rows`` were rejected at ``stage``
    (ingest, or validate for the rows ingest passed), or none were read, else None.
    ``example_detail`` is the detail of one reject of the top reason."""
    if n_rows <= 0:
        if stage != "ingest":
            return None
        return f"source {source_name!r}: no rows read; check 'path' (and 'records' for a JSON document)"
    rejected = sum(reject_counts.values())
    if rejected <= max_reject_fraction * n_rows:
        return None
    reason, count = max(reject_counts.items(), key=lambda kv: (kv[1], kv[0]))
    detail = " ".join((example_detail or "").split())
    detail = detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL - 3] + "..."
    line = (f"source {source_name!r}: {rejected} of {n_rows} rows rejected at {stage} "
            f"(top: {reason} x{count}: {detail or 'no detail'})")
    hint = hint_for(reason, detail)
    if reason == "image_lfs_pointer":
        hint = f"{count} images are Git LFS pointers: fetch them with git lfs pull"
    elif reason == "not_an_image" and "76657273696f6e20" in detail:  # the bytes start with "version "
        hint = "the images look like Git LFS pointers: fetch them with git lfs pull"
    return f"{line}; {hint}" if hint else line


def hint_for(reason: str, detail: str) -> str | None:
    """What to change in the recipe for the most common cause of ``reason``."""
    if reason == "bad_json":
        if "got list" in detail or "'[" in detail or '"[' in detail:
            return "looks like a JSON array: use type: json"
        if "got " in detail:
            return "every JSON line must be an object of one row"
        return "looks like one JSON document, not JSON lines: use type: json (or type: auto)"
    if reason in ("missing_question", "missing_answer", "missing_image"):
        if m := _SUGGESTION.search(detail):
            return f"a wrong column name? set columns: {{{m.group(2)}: {m.group(3)}}}"
        if m := _NULL.search(detail):
            return f"{m.group(1)!r} is null on most rows: map another column in 'columns'"
        return "check the column mapping: `sightline data inspect PATH` shows the columns and a mapping"
    return _HINTS.get(reason)


__all__ = ["hint_for", "ingest_health"]
