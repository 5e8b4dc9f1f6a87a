"""Duplicate rows: perceptual-hash candidates without all pairs, confirmed on thumbnails.

**The default rule** (issue 9): a row is a duplicate only when its image is the same bytes as, or
a confirmed near-copy of, another row's image AND its normalized question is the same; different
questions about one image are all kept. ``exact``: byte-identical image (sha256) and the same
normalized question; every other drop is ``near``. Hashes only propose pairs (distinct diagrams
that differ in one colour or one digit share them); :func:`curation.images.near_copy.same_image`
decides each proposed pair on two thumbnails.

Candidates come from multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in Hamming
Space with Multi-Index Hashing", CVPR 2012): the 64 bits are cut into ``threshold + 1`` bands,
so by pigeonhole two hashes within Hamming distance ``threshold`` agree exactly on at least one
band. A bucket key is ``(band_index, band_value)``, joined with the normalized question for the
row rule (:func:`candidate_keys`); only rows sharing a bucket are compared.

The drop rule is local, so a Beam GroupByKey on bucket keys can apply it bucket by bucket:
**a row is dropped iff some other row with a smaller key is its copy; it is dropped in favour of
the smallest such key** (``kept``). Every such pair shares a bucket and the verdict depends on
the pair only, so the minimum over a row's per-bucket drops (:func:`first_drop`, or
:func:`min_kept` for the hash-only rule) is the global answer, whatever order rows arrive in.
The rule is not a clustering: with keys a < b < c, a~b and b~c but not a~c, both b and c are
dropped (c in favour of b).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Thumbnails and the near-copy verdict live in curation.images.near_copy; re-exported for callers of this module.
from curation.images.near_copy import (  # noqa: F401
    Thumbnail,
    same_image,
    thumbnail,
    thumbnail_bytes,
    thumbnail_from_bytes,
)
from schemas.ids import normalize_question

HASH_BITS = 64
# From benchmarks/dedup_quality.py (N=500, seed 0): at 8, resized / JPEG q70 / brightness
# copies are found (recall >= 0.99), 5% crops 0.63, 2-3 degree rotations 0.46, and under 1% of
# distinct images are dropped. 14 meets "recall >= 0.95 at pairwise FP <= 0.01" but drops 9% of
# 500 distinct images, a share that grows with N (measured: 25% of 3000 photo-like images).
# Flat synthetic scenes collide at any threshold: do not near-dedup procedurally distinct data.
# Under the default rule the threshold only bounds the candidates: same_image decides, and it
# rejects crops and rotations anyway (benchmarks/dedup_quality.py --part confirm).
DEFAULT_THRESHOLD = 8


# ---------------------------------------------------------------- hashes

def phash64(img) -> int:
    """DCT perceptual hash of a PIL image as an int (imagehash's bit order, row-major, MSB first)."""
    import imagehash

    bits = imagehash.phash(img, hash_size=8).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_hex(h: int) -> str:
    """16 lowercase hex digits, the ``image_hash`` column format (same as ``str(ImageHash)``)."""
    return format(h, "016x")


def hash_from_hex(text: str) -> int:
    """Inverse of :func:`hash_hex`; refuses anything but 1-16 hex digits."""
    if not 0 < len(text) <= 16:
        raise ValueError(f"not a 64-bit hex hash: {text!r}")
    return int(text, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# ---------------------------------------------------------------- multi-index bands

def band_widths(threshold: int) -> list[int]:
    """Widths of the ``threshold + 1`` bands, as equal as possible (wider bands first)."""
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in 0..{HASH_BITS - 1}, got {threshold}")
    n = threshold + 1
    base, extra = divmod(HASH_BITS, n)
    return [base + 1 if i < extra else base for i in range(n)]


def band_keys(h: int, threshold: int) -> list[tuple[int, int]]:
    """``(band_index, band_value)`` keys of ``h``; hashes within ``threshold`` share at least one."""
    keys = []
    shift = HASH_BITS
    for i, width in enumerate(band_widths(threshold)):
        shift -= width
        keys.append((i, (h >> shift) & ((1 << width) - 1)))
    return keys


# ---------------------------------------------------------------- the hash-only drop rule
# The rule before issue 9 (a hash within the threshold is a verdict). Kept for callers and for
# benchmarks/dedup_quality.py's hash part; the default rule is at the end of this module.

def duplicates_in_bucket(members: list[tuple[str, int]], threshold: int) -> list[tuple[str, str, int]]:
    """``(dropped_id, kept_id, distance)`` for each member with a smaller-id member within threshold.

    ``kept_id`` is the smallest such id in this bucket. Vectorised; the cost is quadratic in the
    bucket size only, and buckets are small because band values spread the rows.
    """
    by_id = dict(members)  # repeated ids are the same row
    if len(by_id) < 2:
        return []
    ids = sorted(by_id)
    hashes = np.array([by_id[i] for i in ids], dtype=np.uint64)
    out = []
    start = 1
    while start < len(ids):
        # Rows start.. compared with every earlier id; blocks of ~4M distances bound the memory.
        stop = min(len(ids), start + max(1, min(1024, 4_000_000 // start)))
        dist = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, :stop])
        # Only strictly smaller ids (earlier columns) may keep a row.
        near = (dist <= threshold) & np.tri(stop - start, stop, start - 1, dtype=bool)
        first = near.argmax(axis=1)
        for r in np.flatnonzero(near.any(axis=1)):
            k = int(first[r])
            out.append((ids[start + r], ids[k], int(dist[r, k])))
        start = stop
    return out


def min_kept(candidates: Iterable[tuple[str, int]]) -> tuple[str, int]:
    """Combine a dropped row's ``(kept_id, distance)`` candidates from all its buckets: smallest id.

    Associative and commutative, output of the input's type: usable as ``beam.CombinePerKey``.
    """
    return min(candidates)


def find_near_duplicates(items: Iterable[tuple[str, int]], threshold: int = DEFAULT_THRESHOLD
                         ) -> dict[str, str]:
    """In-memory reference of the Beam graph: ``{dropped_id: kept_id}`` over ``(id, hash)`` items."""
    buckets: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
    for row_id, h in items:
        for key in band_keys(h, threshold):
            buckets[key].append((row_id, h))
    candidates: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for members in buckets.values():
        for dropped, kept, dist in duplicates_in_bucket(members, threshold):
            candidates[dropped].append((kept, dist))
    return {dropped: min_kept(c)[0] for dropped, c in candidates.items()}


# ---------------------------------------------------------------- hash-keyed groups (hash-only rule)

def exact_key(question: str, image_hash_hex: str, answer: str | None = None) -> str:
    """Group key of the hash-only rule's "exact" groups: the normalized question with the image's
    perceptual hash. Not byte identity: the default rule's ``exact`` compares sha256 (:func:`confirm`).

    A perceptual hash is not a content hash: two synthetic bar charts can share one while their
    answers differ. Passing ``answer`` keeps such rows apart (rows with equal keys still agree
    on image, question and gold answer).
    """
    text = f"{image_hash_hex.lower()}\x00{normalize_question(question)}"
    if answer is not None:
        text += f"\x00{normalize_question(answer)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------- the default duplicate rule
# A row is a duplicate only when its image is a confirmed near-copy (or the same bytes) of another
# row's image AND its normalized question is the same: different questions about one image are
# all kept. Rows meet only through candidate keys (hash band x question), so no all-pairs step.


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
