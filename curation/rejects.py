"""Every drop has a reason: the one shape a curation rule returns for a bad row, and the one way to
turn it into a ``rejects`` row (datatrove's filter shape: keep the row, or say why not).

``Reject`` is the verdict. Deep inside a reader (a source record's values, checked helper by helper)
returning it through every call would bury the reading, so those helpers raise ``Refused``, which
carries a ``Reject``; the reader's one boundary (``curation.sources.values.to_row``) catches it and
returns the rejects row, so no caller ever sees a ``Refused``."""
from __future__ import annotations

from dataclasses import dataclass

from schemas.tables import make_reject


@dataclass(frozen=True)
class Reject:
    """A rule's verdict on one row: the snake_case ``reason`` is counted; ``detail`` is for people."""
    reason: str
    detail: str = ""


class Refused(Exception):
    """A ``Reject`` raised inside a reader; ``reject`` is the verdict its boundary returns."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail

    @property
    def reject(self) -> Reject:
        return Reject(self.reason, self.detail)


def reject_row(stage: str, row: dict, reason: str, detail: str = "") -> dict:
    """The ``rejects`` row for ``row`` dropped at ``stage`` (lineage columns taken from the row)."""
    question = row.get("question")
    return make_reject(stage, reason, source=row.get("source") or "?", source_id=str(row.get("source_id", "?")),
                       id=row.get("id"), detail=detail, question=question if isinstance(question, str) else None)


def error_reject_row(stage: str, row: object, error: object) -> dict:
    """An unexpected exception (Beam's dead-letter ``(type, message, traceback)``) as ``<stage>_error``."""
    row = getattr(row, "example", row)
    if not isinstance(row, dict):
        row = {}
    exc_type = error[0] if isinstance(error, tuple) else type(error)
    message = error[1] if isinstance(error, tuple) and len(error) > 1 else error
    name = getattr(exc_type, "__name__", str(exc_type))
    return reject_row(stage, row, f"{stage}_error", f"{name}: {message}"[:2000])
