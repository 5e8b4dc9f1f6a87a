"""The candidates' owner index: image key -> the buckets that own its pairs, as one compact file per partition.

The thumbnails step looks every work row's image up here (``curation.images.duplicates.packed_owners``: the
image's hash and the band keys whose buckets own a candidate pair of it). As a Beam side input (a dict) it
cost ~175 bytes per candidate image held by the runner and ~500 more while it was built and read; as these
files, read once per worker into flat arrays, it costs what its bytes cost (~60 per candidate).

A file, all integers unsigned:

    magic   8 bytes   b"SLOWNER1"
    n       8 bytes   big-endian: the number of images
    size    8 bytes   big-endian: the bytes of the owners blob
    keys    n x 32    the images' keys (sha256 digests), sorted, distinct
    offsets (n+1) x 8 little-endian: image i's owners are blob[offsets[i]:offsets[i+1]]
    blob    size      the packed owners, in key order

Read with numpy views, never unpickled: a damaged file is a clear ``ValueError``, not a wrong answer.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

MAGIC = b"SLOWNER1"
KEY_BYTES = 32
_HEADER = struct.Struct(">8sQQ")


def packed_index(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """``(32-byte image key, packed owners)`` pairs, in any order -> the bytes of one index file."""
    entries = sorted(entries)
    for i, (key, _) in enumerate(entries):
        if len(key) != KEY_BYTES:
            raise ValueError(f"owner index key must be {KEY_BYTES} bytes, got {len(key)}")
        if i and entries[i - 1][0] == key:
            raise ValueError(f"owner index key {key.hex()} appears twice")
    sizes = np.fromiter((len(owners) for _, owners in entries), dtype=np.uint64, count=len(entries))
    offsets = np.zeros(len(entries) + 1, dtype="<u8")
    np.cumsum(sizes, out=offsets[1:])
    return b"".join([_HEADER.pack(MAGIC, len(entries), int(offsets[-1])), *(k for k, _ in entries),
                     offsets.tobytes(), *(o for _, o in entries)])


class OwnerIndex:
    """One index file's bytes (:func:`packed_index`), searchable: ``get(key)`` -> the packed owners or ``None``.

    Keys are found by binary search over their first 8 bytes (``np.searchsorted``), then compared whole, so keys
    that share a prefix are told apart."""

    def __init__(self, data: bytes, name: str = "owner index"):
        if len(data) < _HEADER.size:
            raise ValueError(f"{name}: {len(data)} bytes, shorter than its header")
        magic, n, size = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ValueError(f"{name}: not an owner index (magic {magic!r})")
        keys_end = _HEADER.size + n * KEY_BYTES
        blob_start = keys_end + (n + 1) * 8
        if len(data) != blob_start + size:
            raise ValueError(f"{name}: {len(data)} bytes, its header says {blob_start + size}")
        self.data, self.n, self.blob_start = data, n, blob_start
        # the first 8 bytes of each key, big-endian, as native integers: their order is the keys' order
        self.prefixes = np.frombuffer(data, ">u8", n * 4, _HEADER.size)[::4].astype(np.uint64)
        self.offsets = np.frombuffer(data, "<u8", n + 1, keys_end)
        if n and (self.offsets[0] != 0 or self.offsets[-1] != size or np.any(self.offsets[1:] < self.offsets[:-1])):
            raise ValueError(f"{name}: offsets out of order")
        if np.any(self.prefixes[1:] < self.prefixes[:-1]):
            raise ValueError(f"{name}: keys out of order")

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.prefixes.nbytes

    def key(self, i: int) -> bytes:
        start = _HEADER.size + i * KEY_BYTES
        return self.data[start:start + KEY_BYTES]

    def get(self, key: bytes) -> bytes | None:
        if len(key) != KEY_BYTES or not self.n:
            return None
        prefix = np.uint64(int.from_bytes(key[:8], "big"))
        i = int(np.searchsorted(self.prefixes, prefix))
        while i < self.n and self.prefixes[i] == prefix:  # usually one: sha256 prefixes rarely repeat
            if self.key(i) == key:
                start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
                return self.data[self.blob_start + start:self.blob_start + stop]
            i += 1
        return None
