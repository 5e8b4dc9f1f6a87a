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

from curation.sources.health import ingest_health
from curation.sources.inspection import format_inspection, inspect_source
from curation.sources.spec import (
    ANSWER_TYPES,
    COLUMNS,
    DEFAULTS,
    REASONS,
    STAGE,
    TYPES,
    validate_spec,
)
from curation.sources.reader import read_source

__all__ = ["ANSWER_TYPES", "COLUMNS", "DEFAULTS", "REASONS", "STAGE", "TYPES",
           "format_inspection", "ingest_health", "inspect_source", "read_source", "validate_spec"]
