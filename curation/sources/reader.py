"""Reading one source spec into ``("example", row)`` / ``("reject", row)`` tuples (re-exported by
``curation.sources``): the formats' records, chat exchanges per ``turns``, values to rows."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curation.rejects import Reject
from curation.sources.chat import conversation_path, exchanges, read_turns, turns_of
from curation.sources.formats import items
from curation.sources.spec import compile_columns, validate_spec
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
