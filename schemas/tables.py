"""Arrow schemas for every table, one source of truth for column names and types.

Image columns are Hugging Face ``Image`` structs ``{bytes, path}``; each schema carries the
``huggingface`` features metadata so ``datasets.load_dataset("parquet", ...)`` decodes them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from schemas.ids import source_row_id

SCHEMA_VERSION = 4  # 2: examples carry `images` (every image of a row, in order) instead of `image`
#                    3: traces and sft carry `level` (a cold start on a slice of levels filters by it)
#                    4: traces carry `judge` (who decided a needs_judge trace); older shards read without it

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
CONTENT_PART = pa.struct([("type", pa.string()), ("text", pa.string())])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.list_(CONTENT_PART))])

_STR = pa.string()

# The closed list of values of the ``answer_type`` column: how a gold is checked (``curation.answers.verify``).
# Sources map their own spellings onto these; the verifier, trace assembly and rewards read them.
ANSWER_TYPES = ("multiple_choice", "multi_choice", "yes_no", "integer", "number", "math", "text", "open")
MULTIPLE_CHOICE, MULTI_CHOICE, YES_NO, INTEGER, NUMBER, MATH, TEXT, OPEN = ANSWER_TYPES

_LINEAGE = [
    pa.field("id", _STR, nullable=False),
    pa.field("source", _STR, nullable=False),
    pa.field("source_id", _STR, nullable=False),
]

EXAMPLES = pa.schema(_LINEAGE + [
    pa.field("split", _STR),                 # "train" | "val" | "test", by hashing the split group
    pa.field("split_group", _STR),           # image_key of the smallest near-copy of the first image
    pa.field("task", _STR),                  # task family, e.g. "counting"
    pa.field("level", pa.int32()),           # generator difficulty knob (synthetic only)
    pa.field("images", pa.list_(IMAGE)),     # every image of the row, in order
    pa.field("width", pa.int32()),           # of the first image
    pa.field("height", pa.int32()),
    pa.field("image_hash", _STR),            # 64-bit perceptual hash of the first image, 16 hex digits
    pa.field("image_key", _STR),             # sha256 of the first image's bytes (exact identity)
    pa.field("question", _STR, nullable=False),
    pa.field("choices", pa.list_(_STR)),     # multiple-choice options, in order (A, B, ...)
    pa.field("answer", _STR, nullable=False),  # gold answer
    pa.field("answer_type", _STR),           # multiple_choice | multi_choice | yes_no | integer | number | math | text | open
    pa.field("scene", _STR),                 # JSON scene of a synthetic example (program teachers)
    pa.field("caption", _STR),
    pa.field("caption_teacher", _STR),
])

TRACES = pa.schema(_LINEAGE + [
    pa.field("trace_id", _STR, nullable=False),   # id + teacher + sample index, hashed
    pa.field("split", _STR),
    pa.field("task", _STR),
    pa.field("level", pa.int32()),
    pa.field("question", _STR),
    pa.field("choices", pa.list_(_STR)),
    pa.field("answer", _STR),
    pa.field("answer_type", _STR),
    pa.field("caption", _STR),
    pa.field("caption_teacher", _STR),
    pa.field("teacher", _STR),                 # the reasoner's model id
    pa.field("prompt_version", _STR),
    pa.field("sampling", _STR),                # JSON of the sampling parameters
    pa.field("sample_index", pa.int32()),
    pa.field("raw_trace", _STR),               # as the teacher wrote it
    pa.field("trace", _STR),                   # after the caption -> image rewrite
    pa.field("rewrite_edits", pa.int32()),
    pa.field("extracted", _STR),               # the final answer the verifier read
    pa.field("correct", pa.bool_()),
    pa.field("format_ok", pa.bool_()),
    pa.field("verdict_reason", _STR),          # the rule's reason, or judged_correct | judged_wrong | judge_error
    pa.field("judge", _STR),                   # the judge that decided a needs_judge trace (None: the rule did)
    pa.field("length_chars", pa.int32()),
    pa.field("selected", pa.bool_()),          # chosen for sft/
    pa.field("status", _STR),                  # why (not) selected: selected | incorrect | bad_format | too_long | ...
])

SFT = pa.schema(_LINEAGE + [
    pa.field("trace_id", _STR),
    pa.field("task", _STR),
    pa.field("level", pa.int32()),
    pa.field("teacher", _STR),
    pa.field("messages", pa.list_(MESSAGE)),   # TRL / LLaMA-Factory chat convention
    pa.field("images", pa.list_(IMAGE)),
])

RL = pa.schema(_LINEAGE + [
    pa.field("task", _STR),
    pa.field("level", pa.int32()),
    pa.field("prompt", pa.list_(MESSAGE)),     # conversational prompt with an image part
    pa.field("images", pa.list_(IMAGE)),
    pa.field("solution", _STR, nullable=False),  # gold answer
    pa.field("answer_type", _STR),
    pa.field("choices", pa.list_(_STR)),
    pa.field("pass_rate", pa.float64()),       # filled by the difficulty pipeline
    pa.field("n_rollouts", pa.int32()),
    pa.field("n_correct", pa.int32()),
])

REJECTS = pa.schema(_LINEAGE + [
    pa.field("stage", _STR, nullable=False),
    pa.field("reason", _STR, nullable=False),
    pa.field("detail", _STR),
    pa.field("question", _STR),
])

# `val` and `test` are the held-out splits, in the rl layout so evaluation and rewards read one format:
# `val` for every choice of hyperparameter and early stopping, `test` only for the final evaluation.
TABLES: dict[str, pa.Schema] = {
    "examples": EXAMPLES,
    "traces": TRACES,
    "sft": SFT,
    "rl": RL,
    "val": RL,
    "test": RL,
    "rejects": REJECTS,
}


class SchemaError(ValueError):
    """A table does not match its schema; the message names the table and the column."""


def _hf_feature(t: pa.DataType) -> Any:
    if t.equals(IMAGE):
        return {"_type": "Image"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"_type": "List", "feature": _hf_feature(t.value_type)}
    if pa.types.is_struct(t):
        return {t.field(i).name: _hf_feature(t.field(i).type) for i in range(t.num_fields)}
    dtype = {"string": "string", "binary": "binary", "bool": "bool", "int32": "int32",
             "int64": "int64", "double": "float64", "float": "float32"}[str(t)]
    return {"dtype": dtype, "_type": "Value"}


def _with_hf_metadata(schema: pa.Schema) -> pa.Schema:
    features = {f.name: _hf_feature(f.type) for f in schema}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return schema.with_metadata(meta)


SCHEMAS: dict[str, pa.Schema] = {name: _with_hf_metadata(s) for name, s in TABLES.items()}


def check_table(name: str, table: pa.Table) -> pa.Table:
    """Return ``table`` cast to the named schema (with HF metadata), or raise SchemaError.

    Column order may differ and nullable columns may be missing (filled with nulls); a missing
    required column, an unknown column, a wrong type or a null in a required column is refused.
    """
    if name not in SCHEMAS:
        raise SchemaError(f"unknown table {name!r}; known: {', '.join(SCHEMAS)}")
    schema = SCHEMAS[name]
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise SchemaError(f"table {name!r}: unknown column(s) {', '.join(map(repr, extra))}")
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            if not f.nullable:
                raise SchemaError(f"table {name!r}: missing required column {f.name!r}")
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaError(
                    f"table {name!r}: column {f.name!r} has type {col.type}, expected {f.type}"
                ) from e
        if not f.nullable and col.null_count:
            raise SchemaError(f"table {name!r}: column {f.name!r} has {col.null_count} null(s) but is required")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def to_table(name: str, rows: Iterable[dict]) -> pa.Table:
    """Build a checked table from row dicts (missing nullable keys become nulls)."""
    rows = list(rows)
    schema = TABLES[name]
    unknown = {k for r in rows for k in r} - set(schema.names)
    if unknown:
        raise SchemaError(f"table {name!r}: unknown column(s) {', '.join(sorted(map(repr, unknown)))}")
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
        for f in schema:  # find the column that fails, so the message can name it
            try:
                pa.array([r.get(f.name) for r in rows], type=f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as col_err:
                raise SchemaError(f"table {name!r}: column {f.name!r}: {col_err}") from e
        raise SchemaError(f"table {name!r}: {e}") from e
    return check_table(name, table)


def make_reject(stage: str, reason: str, *, source: str, source_id: str, id: str | None = None,
                detail: str = "", question: str | None = None) -> dict:
    """A `rejects` row. ``reason`` is a short snake_case code; ``detail`` is free text for people."""
    return {
        "id": id or source_row_id(source, source_id),
        "source": source,
        "source_id": str(source_id),
        "stage": stage,
        "reason": reason,
        "detail": (detail or "")[:2000],
        "question": question,
    }
