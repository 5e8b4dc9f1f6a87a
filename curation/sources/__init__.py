"""Real sources as they are shipped: JSON lines, JSON documents, Parquet, ``save_to_disk`` folders.

A reader turns a source spec into ``("example", row)`` and ``("reject", reject_row)`` tuples;
a bad row is never an exception, it is a reject with a reason, so rows in = examples + rejects.
A config mistake (unknown type, missing path, a binary file, a JSON array read as JSON lines,
a mapped column the data lacks) is a one-line ``SightlineError`` raised before the first row.
See ``docs/sources.md`` for one recipe entry per common dataset shape.

Spec (our column name -> where the value sits in the source's rows; unmapped names default to ours)::

    {"type": "auto" | "jsonl" | "json" | "parquet" | "hf_disk", "name": "scienceqa",
     "path": "data/sqa.jsonl" | "data/" | "data/*/data.json",
     "columns": {"question": "extra_info.question", "answer": "reward_model.ground_truth",
                 "image": "images", "choices": "options", "answer_type": "answer_type",
                 "task": "task", "id": "pid"},      # dotted paths, list positions: prompt[-1].content
     "answer_type": None, "task": "science",
     # optional: "image_root": None (default: the folder of each file), "allow_outside": False,
     #           "records": None (type json: where the rows sit inside the document, e.g. "data"),
     #           "parse_options": True (options written in the question become choices),
     #           "max_image_bytes": 50_000_000, "batch_size": 64, "split": "test" (hf_disk DatasetDict),
     #           "answer_is_index": False, "require_answer": True (False only for eval sets read by
     #           curation.decontam), "limit": None, "max_reject_fraction": None (this source's
     #           own threshold for ingest_health; None: the recipe's), "license": None (shown in the card)}

``source_id`` is the row's position (the line number for JSON lines, the element index of a
JSON array, the key of an object keyed by id) or the value of the mapped ``id`` column;
in a source of several files (a folder or a glob) it starts with the file's relative name
(``"cat/data.jsonl:3"``).

Owns reading real sources into rows or rejects; may import ``curation.answers`` (options in the
question), ``curation.rejects`` and ``curation.errors``, never the store, images or generation rooms.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curation.rejects import Reject
from curation.sources.chat import conversation_path, exchanges, read_turns, turns_of
from curation.sources.formats import items
from curation.sources.health import ingest_health
from curation.sources.inspection import format_inspection, inspect_source
from curation.sources.spec import (
    ANSWER_TYPES,
    COLUMNS,
    DEFAULTS,
    REASONS,
    STAGE,
    TYPES,
    compile_columns,
    validate_spec,
)
from curation.sources.values import source_reject, to_row

Row = tuple[str, dict]


def read_source(spec: dict, *, limit: int | None = None, notes: dict | None = None) -> Iterator[Row]:
    """``("example", row)`` / ``("reject", row)`` for the first ``limit`` source records (all if None).

    A chat-shaped record may make several rows (``turns: all``); ``notes`` (a dict, if given)
    counts what the reader left out on purpose: ``turns_left_out`` (exchanges after the first
    under ``turns: first``)."""
    s = validate_spec(spec)
    limit = s["limit"] if limit is None else limit
    columns = compile_columns(s)
    conversation = conversation_path(s, columns)
    notes = {} if notes is None else notes
    notes.setdefault("turns_left_out", 0)
    image_root = Path(s["image_root"]) if s["image_root"] else None
    bases: dict[Path, Path] = {}  # the folder each file's relative image paths resolve against
    for n, (kind, source_id, payload, file, prefix) in enumerate(items(s)):
        if limit is not None and n >= limit:
            return
        if kind == "reject":
            yield source_reject(s, source_id, Reject(*payload))
            continue
        base = bases.get(file)
        if base is None:
            base = bases[file] = image_root or (file if file.is_dir() else file.parent)
        yield from _rows(s, columns, conversation, source_id, payload, base, prefix, notes)


def _rows(s: dict, columns: dict, conversation: str | None, source_id: str, record: dict, base: Path,
          prefix: str, notes: dict) -> list:
    if conversation is None:
        return [to_row(s, columns, source_id, record, base, base, prefix)]
    turns = read_turns(record, conversation)
    found = exchanges(turns) if turns is not None else []
    if isinstance(found, str) or not found:
        if not s["conversation"]:  # inferred from the columns: their own reading says what is missing
            return [to_row(s, columns, source_id, record, base, base, prefix)]
        return [source_reject(s, source_id, Reject("bad_conversation", found if isinstance(found, str) else
                                                   f"no complete question / answer exchange in {conversation!r}"))]
    if s["turns"] == "first":
        notes["turns_left_out"] += len(found) - 1
    return [to_row(s, columns, source_id, record, base, base, prefix, turn) for turn in turns_of(found, s["turns"])]


__all__ = ["ANSWER_TYPES", "COLUMNS", "DEFAULTS", "REASONS", "STAGE", "TYPES",
           "format_inspection", "ingest_health", "inspect_source", "read_source", "validate_spec"]
