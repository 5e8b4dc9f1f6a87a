"""Confirming the candidate pairs of hash buckets (step 2 of ``curation.images.duplicates``), one bucket at a time.

Spill records (``duplicates.bucket_record``) are gathered by bucket; a bucket's owned candidate pairs are confirmed
on its members' thumbnails (``curation.images.near_copy_batch``). A bucket too large to hold goes to a temporary
file and is confirmed in tiles (:func:`confirmed_in_tiles`), with the same answers.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from curation.images.duplicates import MEMBER_BYTES, owned_pair_blocks, record_bucket, thumbnail_members
from curation.images.near_copy_batch import Thumbnails, confirmed, first_look, look_bytes, look_from_bytes

BUCKET_BYTES = 16 << 20  # a bucket's members held in memory; a larger one goes to a local file (confirmed_in_tiles)


def confirmed_in_buckets(records: Iterable[bytes], threshold: int,
                         bucket_bytes: int = BUCKET_BYTES) -> Iterator[tuple[str, str]]:
    """:func:`confirmed_in_bucket` for every bucket among ``records`` (:func:`bucket_record`, in any order):
    the records are gathered by bucket, then each bucket is confirmed and let go.

    A bucket whose members pass ``bucket_bytes`` is moved to a temporary local file as it grows and confirmed
    there in tiles (:func:`confirmed_in_tiles`): synthetic diagrams crowd a few buckets, which grow with the
    rows (~55,000 candidates, ~37 MB of prepared thumbnails and as much again once read, in the largest at 1M
    rows), so none is held whole."""
    from collections import defaultdict

    buckets: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    held: dict[tuple[int, int], int] = defaultdict(int)
    spilled: dict[tuple[int, int], SpilledBucket] = {}
    try:
        for record in records:
            band, member = record_bucket(record)
            if band in spilled:
                spilled[band].add(member)
                continue
            buckets[band].append(member)
            held[band] += len(member)
            if held[band] > bucket_bytes:
                spilled[band] = SpilledBucket(buckets.pop(band))
                del held[band]
        for band in sorted({*buckets, *spilled}):
            if band in buckets:
                yield from confirmed_in_bucket(band, thumbnail_members(buckets.pop(band)), threshold)
            else:
                with spilled.pop(band) as bucket:
                    yield from confirmed_in_tiles(band, bucket, threshold, bucket_bytes // 4)
    finally:
        for bucket in spilled.values():
            bucket.close()


def confirmed_in_bucket(band_key: tuple[int, int], members: Iterable[tuple[str, int, bytes]],
                        threshold: int) -> list[tuple[str, str]]:
    """The owned pairs of a bucket's ``(image key, hash, thumbnail)`` members that are near-copies, confirmed
    a block of pairs at a time."""
    by_key = {key: (h, thumb) for key, h, thumb in members}
    keys = sorted(by_key)
    hashes = np.array([by_key[k][0] for k in keys], dtype=np.uint64)
    images = Thumbnails([by_key.pop(k)[1] for k in keys])
    found = []
    for ia, ib in owned_pair_blocks(band_key[0], hashes, threshold):
        found += [(keys[ia[k]], keys[ib[k]]) for k in confirmed(images, ia, ib)]
    return found


class SpilledBucket:
    """A crowded bucket's thumbnail members (:func:`thumbnail_member`) in an unnamed temporary file (removed when
    closed, or when the process ends), each stored as its first look (``near_copy_batch.first_look``: taken once
    here, where every tile would otherwise inflate it again); in memory only each distinct image's key, hash and
    where its look is."""

    def __init__(self, members: Iterable[bytes] = ()):
        import tempfile

        self.file = tempfile.TemporaryFile(prefix="sightline-bucket-")
        self.where: dict[bytes, tuple[int, int]] = {}  # packed member (key + hash) -> (offset, length)
        self.end = 0
        for member in members:
            self.add(member)

    def add(self, member: bytes) -> None:
        """One member; an image seen before keeps its first thumbnail (the same image's, byte for byte)."""
        head = member[:MEMBER_BYTES]
        if head in self.where:
            return
        look = look_bytes(first_look(member[MEMBER_BYTES:]))
        self.file.write(look)
        self.where[head] = (self.end, len(look))
        self.end += len(look)

    def members(self) -> tuple[list[bytes], np.ndarray]:
        """(packed members sorted by image key, their hashes). The file is rewritten once in that order, so a
        block of consecutive members is one read (:meth:`looks`)."""
        import tempfile

        heads = sorted(self.where)
        hashes = np.frombuffer(b"".join(h[32:] for h in heads), dtype=">u8").astype(np.uint64)
        self.file.flush()
        ordered = tempfile.TemporaryFile(prefix="sightline-bucket-")
        self.offsets = np.zeros(len(heads) + 1, dtype=np.int64)
        for k, head in enumerate(heads):
            offset, length = self.where[head]
            self.file.seek(offset)
            ordered.write(self.file.read(length))
            self.offsets[k + 1] = self.offsets[k] + length
        self.file.close()
        self.file, self.where = ordered, {}
        ordered.flush()
        return heads, hashes

    def looks(self, start: int, stop: int) -> list:
        """The looks of members ``start .. stop - 1`` (in :meth:`members`' order), read at once."""
        base = int(self.offsets[start])
        self.file.seek(base)
        data = self.file.read(int(self.offsets[stop]) - base)
        return [look_from_bytes(data[int(a) - base:int(b) - base])
                for a, b in zip(self.offsets[start:stop], self.offsets[start + 1:stop + 1])]

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def confirmed_in_tiles(band_key: tuple[int, int], bucket: SpilledBucket, threshold: int,
                       block_bytes: int) -> Iterator[tuple[str, str]]:
    """:func:`confirmed_in_bucket` for a bucket too large to hold: its images (sorted by key) are cut into blocks
    of ~``block_bytes`` of thumbnails, and each tile (a block of rows x a block of columns, the diagonal and
    above) is confirmed with only its two blocks read back. The same pairs as the whole bucket: every owned pair
    ``(i, j)``, ``i < j``, lies in exactly one tile; a block is read once per tile it is in."""
    heads, hashes = bucket.members()
    n = len(heads)
    if not n:
        return
    per = max(2, block_bytes // max(1, bucket.end // n))
    edges = list(range(0, n, per)) + [n]
    blocks = list(zip(edges[:-1], edges[1:]))
    keys = [h[:32].hex() for h in heads]
    for bi, (r0, r1) in enumerate(blocks):
        rows = bucket.looks(r0, r1)
        for c0, c1 in blocks[bi:]:
            diagonal = c0 == r0
            images = Thumbnails(looks=rows if diagonal else rows + bucket.looks(c0, c1))
            shift = r0 if diagonal else c0 - (r1 - r0)  # a column's position in images
            for ia, ib in owned_pair_blocks(band_key[0], hashes, threshold, rows=(r0, r1), columns=(c0, c1)):
                la, lb = ia - r0, ib - shift
                yield from ((keys[ia[k]], keys[ib[k]]) for k in confirmed(images, la, lb))
            del images
