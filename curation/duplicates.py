"""Which images are near-copies, and which rows are duplicates: the dedup rule in steps a Beam graph can run.

1. Candidates: the distinct images' 64-bit perceptual hashes meet in multi-index hash bands
   (``curation.dedup.band_keys``, Norouzi et al. 2012); pairs within ``threshold`` bits are candidates.
2. Confirmation: a candidate pair is a near-copy only if its 128 px thumbnails agree
   (``curation.dedup.same_image``); hashes propose, pixels decide. Only candidates' thumbnails travel.
3. Groups: every image's ``split_group`` is the smallest image key among itself and its confirmed
   near-copies (one hop), so all rows of one image and of its copies share a train/val/test side.
4. Duplicates: rows with the same group and the same normalized question (scope ``question``; also
   the same answer for ``question_answer``; any question for ``image``) are one problem; the row with
   the smallest id stays. ``exact``: byte-identical image and identical normalized question; else ``near``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from schemas.ids import normalize_question


def image_band_entries(image_key: str, image_hash: int, threshold: int) -> list[tuple[str, tuple[str, int]]]:
    """(band key, (image key, hash)) for each multi-index band of the hash."""
    from curation.dedup import band_keys

    return [(f"{band}:{value}", (image_key, image_hash)) for band, value in band_keys(image_hash, threshold)]


def candidate_pairs(members: Iterable[tuple[str, int]], threshold: int) -> list[tuple[str, str, int]]:
    """Pairs ``(a, b, distance)`` with a < b of one band bucket whose hashes are within ``threshold`` bits."""
    from curation.dedup import hamming

    ms = sorted(set(members))
    out = []
    for i, (a, ha) in enumerate(ms):
        for b, hb in ms[i + 1:]:
            d = hamming(ha, hb)
            if d <= threshold and a != b:
                out.append((a, b, d))
    return out


def group_edges(a: str, b: str) -> list[tuple[str, str]]:
    """A confirmed near-copy pair -> (image, candidate group) for both; the group is the min over candidates."""
    g = min(a, b)
    return [(a, g), (b, g)]


def duplicate_key(group: str, question: str, answer: str | None, scope: str) -> str:
    """The key under which rows compete: one problem = one near-copy group (+ question (+ answer))."""
    if scope == "image":
        text = ""
    else:
        text = normalize_question(question)
        if scope == "question_answer":
            text += "\x00" + normalize_question(answer or "")
    return group + ":" + hashlib.sha1(text.encode()).hexdigest()[:16]


def duplicates_in_group(members: Iterable[tuple[str, str, str, str]]) -> list[dict]:
    """Rows ``(id, row_key, image_key, normalized question)`` of one key -> the drop decisions.

    The row with the smallest (id, row_key) stays; each other row is dropped as ``exact`` when its
    image bytes and normalized question equal the kept row's, else ``near``.
    """
    ms = sorted(set(members))
    kept_id, _, kept_image, kept_question = ms[0]
    return [{"kind": "exact" if (image == kept_image and question == kept_question) else "near",
             "key": row_key, "kept": kept_id}
            for _, row_key, image, question in ms[1:]]


def row_key(row: dict) -> str:
    """Identity of one ingested row (two byte-identical rows of one source share an id, not a row key)."""
    return f"{row['id']}|{row['source']}|{row['source_id']}"


# ---------------------------------------------------------------------------- applying the decisions


def read_decisions(lines: Iterable[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Decision lines (JSON) -> (drops by row key, split group by image key for images with near-copies)."""
    import json

    drops: dict[str, dict] = {}
    groups: dict[str, str] = {}
    for line in lines:
        d = json.loads(line)
        if d["kind"] == "group":
            groups[d["key"]] = d["group"]
        else:
            drops[d["key"]] = d
    return drops, groups


def placed(row: dict, drops: dict[str, dict], groups: dict[str, str], test_fraction: float,
           val_fraction: float, salt: str = "") -> dict:
    """The row with its ``split_group`` and ``split``, or a ``Reject`` when it is a duplicate.

    The split is a hash of the group, never of the row: every row of an image (and of its near-copies)
    lands on the same side.
    """
    from curation.rejects import Reject
    from curation.split import split_of

    drop = drops.get(row_key(row))
    if drop is not None:
        return Reject(f"{drop['kind']}_duplicate", f"kept {drop['kept']}")
    group = groups.get(row["image_key"], row["image_key"])
    return dict(row, split_group=group, split=split_of(group, test_fraction, val_fraction, salt))


# ---------------------------------------------------------------------------- confirmation


def thumbnail_of(row: dict) -> bytes:
    """The compact thumbnail of a row's first image: what travels to confirm a candidate pair."""
    from curation.dedup import thumbnail, thumbnail_bytes

    return thumbnail_bytes(thumbnail(row["images"][0]["bytes"]))


CLEARLY_DIFFERENT = 128      # of 255: no re-encode, resize or 10% brightness change moves a pixel this far
CLEARLY_DIFFERENT_SHARE = 0.01


def near_copies(thumb_a: bytes, thumb_b: bytes) -> bool:
    """Do two candidate thumbnails show the same picture (re-encoded, resized, brightened)?

    Most hash candidates of diagrams are plainly different pictures; when the thumbnails share a
    grid and more than 1% of their pixels differ by half the range, that settles it without the
    full comparison (``curation.dedup.same_image``, ~2 ms a pair).
    """
    import numpy as np

    from curation.dedup import same_image, thumbnail_from_bytes

    a, b = thumbnail_from_bytes(thumb_a), thumbnail_from_bytes(thumb_b)
    if a.pixels.shape == b.pixels.shape:
        far = np.abs(a.pixels.astype(np.int16) - b.pixels.astype(np.int16)).max(axis=2) > CLEARLY_DIFFERENT
        if far.mean() > CLEARLY_DIFFERENT_SHARE:
            return False
    return bool(same_image(a, b)[0])
