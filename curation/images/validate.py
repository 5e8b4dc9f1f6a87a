"""The validate stage's rule: question and answer are text, every image decodes within bounds.

A row passes with its first image's size and 64-bit perceptual hash filled in (``image_hash``) and
``image_key`` (sha256 of the first image's bytes: exact identity, the split's group key); otherwise
it is a ``Reject`` naming the field or the image index.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from curation.images.decode import check_image
from curation.images.hashes import hash_hex, phash64
from curation.rejects import Reject
from curation.split import image_key


@dataclass
class ValidateConfig:
    max_pixels: int = field(default=16_000_000, metadata={"help": "largest image (width x height) decoded"})
    min_side: int = field(default=16, metadata={"help": "smallest image side in pixels"})
    max_bytes: int = field(default=50_000_000, metadata={"help": "largest encoded image"})


def text_problem(value) -> str | None:
    """Why ``value`` is not usable text (missing, bytes, not_text, not_utf8), or None."""
    if value is None:
        return "missing"
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8"
        return "bytes"
    if not isinstance(value, str):
        return "not_text"
    if not value.strip():
        return "missing"
    if "\ufffd" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "not_utf8"
    return None


def validate_row(row: dict, cfg: ValidateConfig) -> dict | Reject:
    """``row`` with width, height, image_hash and image_key of its first image, or why it cannot be used."""

    for name in ("question", "answer"):
        problem = text_problem(row.get(name))
        if problem:
            code = "bad_text_encoding" if problem == "not_utf8" else f"{problem}_{name}"
            return Reject(code, f"{name} is {problem}")
    images = row.get("images") or [{}]
    first = None
    for index, image in enumerate(images):
        check = check_image((image or {}).get("bytes") or b"", max_pixels=cfg.max_pixels, min_side=cfg.min_side,
                            max_bytes=cfg.max_bytes)
        if not check.ok:
            where = f"image {index} of {len(images)}: " if len(images) > 1 else ""
            return Reject(check.reason, where + check.detail)
        first = first or check
    return dict(row, width=first.width, height=first.height, image_hash=hash_hex(phash64(first.image)),
                image_key=image_key(images[0]["bytes"]))
