"""Exact and near-duplicate removal on 64-bit perceptual hashes, without an all-pairs comparison.

Near duplicates are found with multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in
Hamming Space with Multi-Index Hashing", CVPR 2012): the 64 bits are cut into ``threshold + 1``
bands, so by pigeonhole two hashes within Hamming distance ``threshold`` agree exactly on at
least one band. Each ``(band_index, band_value)`` key is a bucket; only rows sharing a bucket
are compared.

The drop rule is local, so a Beam GroupByKey on band keys can apply it bucket by bucket:
**a row is a near duplicate iff some other row with a smaller id lies within the threshold; it
is dropped in favour of the smallest such id** (``kept_id``). Every such pair shares a bucket,
so the minimum over a row's per-bucket candidates (``min_kept``) is the global answer, whatever
order rows arrive in. The rule is not a clustering: with ids a < b < c, a~b and b~c but not
a~c, both b and c are dropped (c in favour of b). Identical ids are one row (ids hash content).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from schemas.ids import normalize_question

HASH_BITS = 64
# From benchmarks/dedup_quality.py (N=500, seed 0): at 8, resized / JPEG q70 / brightness
# copies are found (recall >= 0.99), 5% crops 0.63, 2-3 degree rotations 0.46, and under 1% of
# distinct images are dropped. 14 meets "recall >= 0.95 at pairwise FP <= 0.01" but drops 9% of
# 500 distinct images, a share that grows with N (measured: 25% of 3000 photo-like images).
# Flat synthetic scenes collide at any threshold: do not near-dedup procedurally distinct data.
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


# ---------------------------------------------------------------- the drop rule

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


# ---------------------------------------------------------------- exact duplicates

def exact_key(question: str, image_hash_hex: str, answer: str | None = None) -> str:
    """Group key of exact duplicates: the normalized question with the image's perceptual hash.

    A perceptual hash is not a content hash: two synthetic bar charts can share one while their
    answers differ. Passing ``answer`` keeps such rows apart (rows with equal keys still agree
    on image, question and gold answer).
    """
    text = f"{image_hash_hex.lower()}\x00{normalize_question(question)}"
    if answer is not None:
        text += f"\x00{normalize_question(answer)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def exact_duplicates(ids: Iterable[str]) -> list[tuple[str, str]]:
    """``(dropped_id, kept_id)`` for one exact-key group: every id but the smallest is dropped."""
    unique = sorted(set(ids))
    return [(i, unique[0]) for i in unique[1:]]
