"""The dedup rule by its definition, in memory: the reference the tests and ``benchmarks/dedup_quality.py``
check the rule against (the pipeline runs ``curation.images.duplicates``, step by step under Beam).

A row is a duplicate only when its image is the same bytes as, or a confirmed near-copy of, another
row's image AND its normalized question is the same; different questions about one image are all kept.
``exact``: byte-identical image (sha256) and the same normalized question; every other drop is ``near``.
Rows meet in candidate buckets (hash band x question, ``candidate_keys``); within one, **a row is
dropped iff some other row with a smaller key is its copy, in favour of the smallest such key**, so the
minimum over a row's per-bucket drops (``first_drop``) is the global answer whatever order rows arrive
in. Not a clustering: with keys a < b < c, a~b and b~c but not a~c, both b and c are dropped.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from curation.images.hashes import DEFAULT_THRESHOLD, band_keys, hamming
from curation.images.near_copy import Thumbnail, same_image
from schemas.ids import normalize_question


@dataclass(frozen=True)
class Candidate:
    """What one row brings to a candidate bucket. ``key`` is unique per input row (the pipeline's
    ``row_key``; equal row ids are byte-identical rows): the smallest key of a group is kept."""

    key: str
    image_sha256: str
    phash: int
    question: str                     # normalized (schemas.ids.normalize_question)
    thumbnail: bytes | Thumbnail | None = None  # thumbnail_bytes(thumbnail(image)); only for near pairs


class Drop(NamedTuple):
    """``dropped`` is a duplicate of ``kept``; ``score`` is same_image's (0.0 for exact)."""

    dropped: str
    kept: str
    kind: str        # "exact": same image bytes and question; "near": confirmed near-copy, same question
    hamming: int
    score: float


def image_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def candidate_keys(phash: int, question: str | None, threshold: int = DEFAULT_THRESHOLD) -> list[str]:
    """Bucket keys of a row: its hash bands, each joined with its normalized question.

    Rows meet only if their hashes are within ``threshold`` (pigeonhole on the bands) and their
    questions are equal. ``question=None`` gives image-only keys (near-copy groups for the split).
    """
    q = "" if question is None else hashlib.sha1(normalize_question(question).encode()).hexdigest()[:16]
    return [f"{band}:{value:x}:{q}" for band, value in band_keys(phash, threshold)]


def candidate_pairs(members: list[Candidate], threshold: int = DEFAULT_THRESHOLD,
                    same_question: bool = True) -> list[tuple[str, str]]:
    """``(smaller key, larger key)`` pairs of one bucket worth a verdict: same question (unless
    ``same_question=False``), same bytes or hashes within ``threshold``. Needs no thumbnails, so a
    pipeline can find the candidate rows first and fetch thumbnails for those rows only; then
    ``confirm`` each pair, ``Drop(larger, smaller, *verdict)``, and :func:`first_drop` per row
    gives exactly :func:`decide_duplicates`' answer."""
    rows = sorted({m.key: m for m in members}.values(), key=lambda m: m.key)
    return [(a.key, b.key) for i, b in enumerate(rows) for a in rows[:i]
            if (not same_question or a.question == b.question or
                normalize_question(a.question) == normalize_question(b.question))
            and (a.image_sha256 == b.image_sha256 or hamming(a.phash, b.phash) <= threshold)]


def confirm(a: Candidate, b: Candidate, threshold: int = DEFAULT_THRESHOLD,
            same_question: bool = True) -> tuple[str, int, float] | None:
    """``(kind, hamming, score)`` if ``a`` and ``b`` are copies of one image (with one question), else None."""
    if same_question and a.question != b.question and normalize_question(a.question) != normalize_question(b.question):
        return None
    if a.image_sha256 == b.image_sha256:
        return "exact", 0, 0.0
    distance = hamming(a.phash, b.phash)
    if distance > threshold:
        return None
    if a.thumbnail is None or b.thumbnail is None:
        raise ValueError(f"near pair {a.key} / {b.key} needs both thumbnails to be confirmed")
    same, score = same_image(a.thumbnail, b.thumbnail)
    return ("near", distance, score) if same else None


def decide_duplicates(members: list[Candidate], threshold: int = DEFAULT_THRESHOLD) -> list[Drop]:
    """The drops of one candidate bucket: each row with a smaller-key copy (same question) goes.

    Like :func:`duplicates_in_bucket`, the rule is local: a row is dropped in favour of the
    smallest key it is confirmed against, so :func:`first_drop` over all its buckets gives the
    same answer whatever bucket saw the pair. Not a clustering (a~b, b~c, a!~c drops b and c).
    """
    rows = sorted({m.key: m for m in members}.values(), key=lambda m: m.key)
    drops = []
    for i, row in enumerate(rows):
        for earlier in rows[:i]:
            found = confirm(earlier, row, threshold)
            if found is not None:
                drops.append(Drop(row.key, earlier.key, *found))
                break
    return drops


def first_drop(drops: Iterable[Drop]) -> Drop:
    """Combine one row's drops from all its buckets: the smallest kept key (usable in CombinePerKey)."""
    return min(drops, key=lambda d: (d.kept, d.kind))


def near_copy_pairs(members: list[Candidate], threshold: int = DEFAULT_THRESHOLD) -> list[tuple[str, str, float]]:
    """``(image_a, image_b, score)``, ``image_a < image_b``: confirmed near-copies among distinct images
    of one image-only bucket (``candidate_keys(h, None)``), whatever their questions. For the split."""
    images = sorted({m.image_sha256: m for m in members}.values(), key=lambda m: m.image_sha256)
    pairs = []
    for i, b in enumerate(images):
        for a in images[:i]:
            found = confirm(a, b, threshold, same_question=False)
            if found is not None:
                pairs.append((a.image_sha256, b.image_sha256, found[2]))
    return pairs


def find_duplicates(rows: Iterable[Candidate], threshold: int = DEFAULT_THRESHOLD) -> dict[str, Drop]:
    """In-memory reference of the Beam graph: ``{dropped key: Drop}`` over all candidate buckets."""
    buckets: dict[str, list[Candidate]] = defaultdict(list)
    for row in rows:
        for key in candidate_keys(row.phash, row.question, threshold):
            buckets[key].append(row)
    found: dict[str, list[Drop]] = defaultdict(list)
    for members in buckets.values():
        for drop in decide_duplicates(members, threshold):
            found[drop.dropped].append(drop)
    return {key: first_drop(d) for key, d in found.items()}
