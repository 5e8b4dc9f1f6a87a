"""Which images are near-copies, and which rows are duplicates: the dedup rule in steps a Beam graph can run.

1. Candidates: the distinct images' 64-bit perceptual hashes meet in multi-index hash bands
   (``curation.images.hashes.band_keys``, Norouzi et al. 2012); pairs within ``threshold`` bits are candidates.
   Each pair is *owned* by the first band its two hashes agree on, so exactly one bucket handles it.
2. Confirmation: a candidate pair is a near-copy only if its thumbnails agree
   (``curation.images.near_copy.same_image``, batched with the same answers by ``curation.images.near_copy_batch``);
   hashes propose, pixels decide. Only candidates' thumbnails travel, once to each bucket that owns
   one of their pairs.
3. Groups: every image's ``split_group`` is the smallest image key among itself and its confirmed
   near-copies (one hop, not a closure: ``curation.split`` says what that leaves), so all rows of one image
   and (short of such chains) of its copies share a train/val/test side.
4. Duplicates: rows with the same group and the same normalized question (scope ``question``; also
   the same answer for ``question_answer``; any question for ``image``) are one problem; the row with
   the smallest id stays. ``exact``: byte-identical image and identical normalized question; else ``near``.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator

import numpy as np

from curation.images.hashes import HASH_BITS, band_keys, band_widths

# The batched confirmation lives in curation.images.near_copy_batch; near_copies and confirmed_pairs are re-exported.
from curation.images.near_copy_batch import (  # noqa: F401
    Thumbnails,
    confirmed,
    confirmed_pairs,
    near_copies,
    prepared_thumbnail,
)
from curation.rejects import Reject
from curation.split import split_of
from schemas.ids import normalize_question

MEMBER_BYTES = 40  # a band member: the 32 bytes of the image key (sha256) and the 8 of its hash


# ---------------------------------------------------------------------------- candidates


def band_entries(image_key: str, image_hash: int, threshold: int) -> list[tuple[tuple[int, int], bytes]]:
    """``((band index, band value), member)`` for each multi-index band of an image's hash.

    The member is packed (``MEMBER_BYTES``): nine of them cross a shuffle per image, so they are
    bytes a combiner can concatenate, not Python tuples.
    """

    member = packed_member(image_key, image_hash)
    return [(key, member) for key in band_keys(image_hash, threshold)]


def packed_member(image_key: str, image_hash: int) -> bytes:
    """An image as ``MEMBER_BYTES``: the 32 bytes of its key (sha256 hex) and the 8 of its hash."""
    try:
        member = bytes.fromhex(image_key) + image_hash.to_bytes(8, "big")
    except ValueError:
        member = b""
    if len(member) != MEMBER_BYTES:
        raise ValueError(f"image key must be 64 hex digits (sha256), got {image_key!r}")
    return member


def unpack_members(blob: bytes) -> tuple[list[str], np.ndarray]:
    """Packed members, concatenated (repeats allowed) -> (sorted distinct image keys, their hashes)."""
    members = sorted({blob[i:i + MEMBER_BYTES] for i in range(0, len(blob), MEMBER_BYTES)})
    hashes = np.frombuffer(b"".join(m[32:] for m in members), dtype=">u8").astype(np.uint64)
    return [m[:32].hex() for m in members], hashes


def owned_pairs(band: int, hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i[k], j[k])``, ``i < j``, of one bucket of band ``band`` whose hashes are within
    ``threshold`` bits and agree on no earlier band: every candidate pair is owned by one bucket only."""
    blocks = list(owned_pair_blocks(band, hashes, threshold))
    return (np.concatenate([i for i, _ in blocks]) if blocks else np.zeros(0, np.int64),
            np.concatenate([j for _, j in blocks]) if blocks else np.zeros(0, np.int64))


def owned_pair_blocks(band: int, hashes: np.ndarray, threshold: int, cells: int = 1_000_000,
                      rows: tuple[int, int] | None = None, columns: tuple[int, int] | None = None):
    """:func:`owned_pairs` in blocks of rows, ~``cells`` distances each: a bucket's pairs grow with the square
    of its size (synthetic diagrams crowd a few buckets), so they are never all held at once. A block holds
    ~10 bytes per cell (measured: a bucket of 11,000 hashes peaks at 10 MB with 1M cells, 41 MB with 4M, and
    is no slower).

    ``rows`` and ``columns`` (``(start, stop)`` positions) restrict the pairs ``(i, j)`` to one tile of the
    bucket (``curation.images.bucket_confirm.confirmed_in_tiles``); by default every pair, the columns of a block from its first row on."""

    n = len(hashes)
    r0, r1 = rows or (0, n)
    start, step = r0, max(1, cells // max((columns[1] - columns[0]) if columns else n, 1))
    while start < r1:
        stop = min(r1, start + step)
        c0, c1 = columns or (start, n)
        near = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, c0:c1]) <= threshold
        near &= np.arange(c0, c1)[None, :] > np.arange(start, stop)[:, None]
        i, j = np.nonzero(near)
        i, j = i + start, j + c0
        x = hashes[i] ^ hashes[j]
        owned = np.ones(len(i), dtype=bool)
        shift = HASH_BITS
        for width in band_widths(threshold)[:band]:
            shift -= width
            owned &= ((x >> np.uint64(shift)) & np.uint64((1 << width) - 1)) != 0
        if owned.any():
            yield i[owned], j[owned]
        start = stop


def bucket_pairs(band_key: tuple[int, int], packed: bytes, threshold: int) -> list[tuple[str, str]]:
    """The candidate pairs ``(a, b)``, ``a < b``, that one bucket owns (the hash-only rule: each is a near-copy)."""
    keys, hashes = unpack_members(packed)
    return [(keys[i], keys[j]) for i, j in zip(*owned_pairs(band_key[0], hashes, threshold))]


def pair_members(band_key: tuple[int, int], packed: bytes, threshold: int
                 ) -> list[tuple[str, tuple[tuple[int, int], int]]]:
    """``(image key, (band key, hash))`` for each image in a pair the bucket owns: where its thumbnail must go."""
    keys, hashes = unpack_members(packed)
    wanted = np.zeros(len(keys), dtype=bool)
    for i, j in owned_pair_blocks(band_key[0], hashes, threshold):
        wanted[i] = wanted[j] = True
    return [(keys[i], (band_key, int(hashes[i]))) for i in np.flatnonzero(wanted)]


_OWNED_BAND = struct.Struct(">BQ")  # band index, band value
BAND_BYTES = _OWNED_BAND.size  # a packed band key: the first bytes of a bucket_record


def packed_band(band_key: tuple[int, int]) -> bytes:
    """A band key ``(band index, band value)`` as 9 bytes (a spill file's key)."""
    return _OWNED_BAND.pack(*band_key)


def unpacked_band(blob: bytes) -> tuple[int, int]:
    return _OWNED_BAND.unpack(blob)


def owner_records(band_key: tuple[int, int], packed: bytes, threshold: int) -> list[tuple[bytes, bytes]]:
    """:func:`pair_members` as bytes for a spill file: ``(32-byte image key, its hash + this band key)``."""
    return [(bytes.fromhex(key), h.to_bytes(8, "big") + _OWNED_BAND.pack(*band))
            for key, (band, h) in pair_members(band_key, packed, threshold)]


def packed_owners(records: Iterable[bytes]) -> bytes:
    """An image's :func:`owner_records` values (one hash: the image's own) as one blob: its hash, then each band
    key that owns a pair of it. This is the side input the thumbnails step looks images up in, one entry per
    candidate image: as Python tuples it cost ~3x more."""
    records = list(records)
    return records[0][:8] + b"".join(r[8:] for r in records)


def unpacked_owners(blob: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Inverse of :func:`packed_owners`: (the image's hash, the band keys that own its pairs)."""
    bands = [_OWNED_BAND.unpack_from(blob, i) for i in range(8, len(blob), _OWNED_BAND.size)]
    return int.from_bytes(blob[:8], "big"), bands


def thumbnail_member(image_key: str, image_hash: int, thumb: bytes) -> bytes:
    """A candidate image's thumbnail as it crosses the shuffle to a bucket: its packed member, then the thumbnail.
    One bytes object, not a (key, hash, thumbnail) tuple: the in-process runner holds grouped values as Python
    objects, and the tuple cost ~200 bytes more per image and bucket."""
    return packed_member(image_key, image_hash) + thumb


def thumbnail_members(packed: Iterable[bytes]) -> Iterator[tuple[str, int, bytes]]:
    """Inverse of :func:`thumbnail_member`, for a bucket's grouped values: ``(image key, hash, thumbnail)``."""
    for b in packed:
        yield b[:32].hex(), int.from_bytes(b[32:MEMBER_BYTES], "big"), b[MEMBER_BYTES:]


def bucket_record(band_key: tuple[int, int], member: bytes) -> bytes:
    """A thumbnail member (:func:`thumbnail_member`) with the bucket it goes to, as one record of a spill file."""
    return _OWNED_BAND.pack(*band_key) + member


def record_bucket(record: bytes) -> tuple[tuple[int, int], bytes]:
    """Inverse of :func:`bucket_record`: (band key, thumbnail member)."""
    return _OWNED_BAND.unpack_from(record), record[_OWNED_BAND.size:]


def group_edges(a: str, b: str) -> list[tuple[str, str]]:
    """A confirmed near-copy pair -> (image, candidate group) for both; the group is the min over candidates."""
    g = min(a, b)
    return [(a, g), (b, g)]


# ---------------------------------------------------------------------------- duplicate rows


def duplicate_key(group: str, question: str, answer: str | None, scope: str) -> str:
    """The key under which rows compete: one problem = one near-copy group (+ question (+ answer))."""
    if scope == "image":
        text = ""
    else:
        text = normalize_question(question)
        if scope == "question_answer":
            text += "\x00" + normalize_question(answer or "")
    return group + ":" + hashlib.sha1(text.encode()).hexdigest()[:16]


def regrouped(key: str, group: str) -> str:
    """``duplicate_key(image, ...)`` -> ``duplicate_key(group, ...)``: the same problem, keyed by the image's group."""
    return group + key[key.index(":"):]


def duplicates_in_group(members: Iterable[tuple[str, str, str, str]]) -> list[dict]:
    """Rows ``(id, row_key, image_key, normalized question)`` of one key -> the drop decisions.

    The row with the smallest (id, row_key) stays; every other row is dropped, as ``exact`` when some
    row before it has the same image bytes and normalized question (a byte-identical repeat, even
    when the kept row is a re-encoded copy), else ``near``.
    """
    ms = sorted(set(members))
    kept_id = ms[0][0]
    seen = {(ms[0][2], ms[0][3])}
    drops = []
    for _, key, image, question in ms[1:]:
        drops.append({"kind": "exact" if (image, question) in seen else "near", "key": key, "kept": kept_id})
        seen.add((image, question))
    return drops


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

    drop = drops.get(row_key(row))
    if drop is not None:
        return Reject(f"{drop['kind']}_duplicate", f"kept {drop['kept']}")
    group = groups.get(row["image_key"], row["image_key"])
    return dict(row, split_group=group, split=split_of(group, test_fraction, val_fraction, salt))


# ---------------------------------------------------------------------------- confirmation


def thumbnail_of(row: dict) -> bytes:
    """The compact thumbnail of a row's first image, prepared for confirmation
    (``curation.images.near_copy_batch.prepared_thumbnail``): what travels to confirm a candidate pair."""

    return prepared_thumbnail(row["images"][0]["bytes"])
