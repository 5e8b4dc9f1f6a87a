"""Why a row fails at ingest, in words that help: the detail of a ``curation.rejects.Refused``."""
from __future__ import annotations

import difflib
from typing import Any

from curation.sources.paths import MISSING, flatten


def absent(field: str, theirs: str, value: Any, record: dict) -> str:
    """Why a field has no value, naming close field names of the row when the path is wrong."""
    if value is not MISSING:
        return f"{theirs!r} is null"
    names = list(flatten(record))
    close = difflib.get_close_matches(theirs, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"no {theirs!r} ({field}) in the row{hint} (row has: {shown or 'nothing'})"
