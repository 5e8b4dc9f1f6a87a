"""Grouping through work files instead of a shuffle, for values that grow with the rows.

Beam's in-process runner holds everything that crosses a GroupByKey in memory (its grouped values as
Python objects, then once more encoded) until the next stage has read it. For the thumbnails of candidate
near-copies that was ~2 KB per row. Here a DoFn appends its records to one work file per bundle, buffered
per partition and written in chunks (so a bundle holds at most ``partitions x chunk_bytes``), and emits
only ``(partition, (file, extents))``; the shuffle carries those, and each partition's reader takes its
chunks back from every file. A partition then costs what its records cost (~1/partitions of the total),
one at a time. Files go through Beam's FileSystems, so the work folder may be local or gs://, s3://.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

CHUNK_BYTES = 64 << 10


class PartitionedSpill:
    """Records appended per partition to one file: ``add(partition, record)`` then ``close()`` ->
    ``{partition: (path, [(offset, length), ...])}`` for the partitions that got records."""

    def __init__(self, folder: str, chunk_bytes: int = CHUNK_BYTES):
        self.path = f"{folder.rstrip('/')}/spill-{uuid.uuid4().hex}.bin"
        self.chunk_bytes = chunk_bytes
        self.buffers: dict[int, bytearray] = {}
        self.extents: dict[int, list[tuple[int, int]]] = {}
        self.handle, self.offset = None, 0

    def add(self, partition: int, record: bytes) -> None:
        buf = self.buffers.get(partition)
        if buf is None:
            buf = self.buffers[partition] = bytearray()
        buf += len(record).to_bytes(4, "big")
        buf += record
        if len(buf) >= self.chunk_bytes:
            self._flush(partition)

    def _flush(self, partition: int) -> None:
        buf = self.buffers.pop(partition, None)
        if not buf:
            return
        if self.handle is None:
            folder = self.path.rsplit("/", 1)[0]
            if "://" not in folder and not FileSystems.exists(folder):
                FileSystems.mkdirs(folder)
            self.handle = FileSystems.create(self.path, compression_type=CompressionTypes.UNCOMPRESSED)
        self.handle.write(bytes(buf))
        self.extents.setdefault(partition, []).append((self.offset, len(buf)))
        self.offset += len(buf)

    def close(self) -> dict[int, tuple[str, list[tuple[int, int]]]]:
        for partition in list(self.buffers):
            self._flush(partition)
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        return {p: (self.path, ext) for p, ext in self.extents.items()}


def read_records(parts) -> Iterator[bytes]:
    """The records of one partition: ``parts`` are the ``(path, extents)`` every bundle emitted for it."""

    for path, extents in parts:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for offset, length in extents:
                f.seek(offset)
                chunk = f.read(length)
                if len(chunk) != length:
                    raise OSError(f"spill file {path} is shorter than its index ({offset} + {length})")
                i = 0
                while i < length:
                    n = int.from_bytes(chunk[i:i + 4], "big")
                    yield chunk[i + 4:i + 4 + n]
                    i += 4 + n
