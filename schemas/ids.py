"""Row ids: content hashes, so re-runs are idempotent and every row traces back to its source."""
from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")


def normalize_question(text: str) -> str:
    """Case-folded, NFKC, whitespace-collapsed question text (used for ids and exact dedup)."""
    text = unicodedata.normalize("NFKC", text or "")
    return _SPACE.sub(" ", text).strip().casefold()


def row_id(image_bytes: bytes | None, question: str) -> str:
    """Content hash of image bytes + normalized question: 24 hex characters (96 bits)."""
    h = hashlib.sha256()
    h.update(image_bytes or b"")
    h.update(b"\x00")
    h.update(normalize_question(question).encode("utf-8"))
    return h.hexdigest()[:24]


def source_row_id(source: str, source_id: str) -> str:
    """Id for a row whose content could not be read (missing image, bad bytes): hash of its origin."""
    return "src-" + hashlib.sha256(f"{source}\x00{source_id}".encode("utf-8", "replace")).hexdigest()[:20]
