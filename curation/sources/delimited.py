"""Delimited text (CSV / TSV with a header line), including VLMEvalKit's / MMBench's TSV layout,
where a short ``image`` cell names the ``index`` of the row whose (base64) image it shares."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

Item = tuple[str, str, Any, Path]

IMAGE_REF_CHARS = 64  # VLMEvalKit: an ``image`` cell this short names another row's ``index`` (shared image)


def _open_rows(file: Path, delimiter: str):
    import csv

    csv.field_size_limit(2**31 - 1)  # base64 images in cells are far over the 128 KiB default
    f = open(file, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the caller)
    return f, csv.DictReader(f, delimiter=delimiter)


def _shared_images(file: Path, delimiter: str) -> dict[str, str]:
    """``index -> image`` for the rows whose image other rows name by index (VLMEvalKit saves space so)."""
    f, reader = _open_rows(file, delimiter)
    with f:
        if not {"index", "image"} <= set(reader.fieldnames or ()):
            return {}
        refs = {r["image"] for r in reader if r.get("image") and len(r["image"]) <= IMAGE_REF_CHARS}
    if not refs:
        return {}
    f, reader = _open_rows(file, delimiter)
    with f:
        return {r["index"]: r["image"] for r in reader
                if r.get("index") in refs and r.get("image") and len(r["image"]) > IMAGE_REF_CHARS}


def delimited_items(file: Path, prefix: str, delimiter: str) -> Iterator[Item]:
    """Rows of a CSV / TSV file with a header line; an empty cell is no value (as pandas reads it)."""
    import csv

    # (the caller has checked that the file is text: formats.file_items)
    index = -1
    try:
        shared = _shared_images(file, delimiter)
        f, reader = _open_rows(file, delimiter)
        with f:
            for index, raw in enumerate(reader):
                row = {k: (v if v != "" else None) for k, v in raw.items() if isinstance(k, str)}
                image = row.get("image")
                if shared and isinstance(image, str) and len(image) <= IMAGE_REF_CHARS and image in shared:
                    row["image"] = shared[image]
                yield "record", f"{prefix}{index}", row, file
    except UnicodeDecodeError as e:
        yield "reject", f"{prefix}{index + 1}", ("bad_text_encoding", f"{file.name}: not UTF-8 at byte {e.start}"), file
    except csv.Error as e:
        yield "reject", f"{prefix}{index + 1}", ("bad_file", f"{file.name} after row {index}: {e}"), file


def delimited_header(file: Path, delimiter: str) -> list[str]:
    f, reader = _open_rows(file, delimiter)
    with f:
        return [n for n in (reader.fieldnames or []) if isinstance(n, str)]
