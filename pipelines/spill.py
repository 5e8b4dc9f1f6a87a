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
import zlib
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

CHUNK_BYTES = 64 << 10


def _create(path: str):
    # Beam's local filesystem makes the missing folders itself (exist_ok); object stores have none. A check then
    # mkdirs here raced between worker processes: two saw no folder, the second mkdirs failed with EEXIST.
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def write_bytes(path: str, data: bytes) -> None:
    """One whole work file (local, gs://, s3://)."""
    with _create(path) as f:
        f.write(data)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


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
            self.handle = _create(self.path)
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


# ---------------------------------------------------------------------------- a GroupByKey through spill files

PARTITIONS = 64


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """The spill partition of a key (stable across processes: crc32, not ``hash()``)."""
    return zlib.crc32(key) % partitions


def keyed_record(key: bytes, value: bytes) -> bytes:
    return len(key).to_bytes(2, "big") + key + value


def grouped_records(records) -> list[tuple[bytes, list[bytes]]]:
    """One partition's ``keyed_record``s -> ``[(key, [values])]``, keys sorted, values in the order written."""
    groups: dict[bytes, list[bytes]] = {}
    for record in records:
        n = int.from_bytes(record[:2], "big")
        groups.setdefault(record[2:2 + n], []).append(record[2 + n:])
    return sorted(groups.items())


class SpillKeyed(beam.DoFn):
    """``(key, value)`` elements (bytes, or str with ``text``) -> this bundle's spill file, by the key's partition;
    emits ``(partition, (file, extents))`` when the bundle ends. With ``many``, each element is a list of
    ``(key, value)`` pairs (e.g. a row's nine band entries: one Beam element, not nine)."""

    def __init__(self, folder: str, partitions: int = PARTITIONS, text: bool = False, many: bool = False):
        self.folder, self.partitions, self.text, self.many = folder, partitions, text, many

    def start_bundle(self):
        self.spill = None

    def process(self, element):
        for pair in element if self.many else (element,):
            self._add(*pair)

    def _add(self, key, value):
        if self.text:
            key, value = key.encode(), value.encode()
        if len(key) >= 1 << 16:
            raise ValueError(f"spill key of {len(key)} bytes (at most 65,535)")
        if self.spill is None:
            self.spill = PartitionedSpill(self.folder)
        self.spill.add(partition_of(key, self.partitions), keyed_record(key, value))

    def finish_bundle(self):
        yield from closed_extents(self.spill)
        self.spill = None


def closed_extents(spill: PartitionedSpill | None):
    """A bundle's spill file closed -> ``(partition, (file, extents))`` per partition, as a DoFn's ``finish_bundle``
    emits them (in the global window: a batch pipeline's); nothing when the bundle spilled nothing."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import MIN_TIMESTAMP
    from apache_beam.utils.windowed_value import WindowedValue

    if spill is not None:
        for partition, where in spill.close().items():
            yield WindowedValue((partition, where), MIN_TIMESTAMP, [GlobalWindow()])


def spilled_partitions(inputs: list, folder: str, label: str, *, partitions: int = PARTITIONS, text: bool = False,
                       many: bool = False):
    """The ``(key, value)`` PCollections in ``inputs`` (lists of them with ``many``) spilled to files in ``folder``
    by the key's partition; returns ``(partition, parts)`` per partition that got records, for
    :func:`grouped_records` of :func:`read_records` (``parts``) to group. Only file extents cross the runner's
    shuffle."""
    extents = [pc | f"{label}: spill {i}" >> beam.ParDo(SpillKeyed(folder, partitions, text, many))
               for i, pc in enumerate(inputs)]
    if len(extents) > 1:
        extents = [extents | f"{label}: all extents" >> beam.Flatten()]
    return extents[0] | f"{label}: group extents" >> beam.GroupByKey()


def spill_group_by_key(inputs: list, folder: str, label: str, *, partitions: int = PARTITIONS, text: bool = False,
                       many: bool = False):
    """``GroupByKey`` of the ``(key, value)`` PCollections in ``inputs`` (lists of pairs with ``many``) through spill
    files in ``folder``: only file extents cross the runner's shuffle, and a partition's records are grouped in
    memory one partition at a time. Returns ``(key, [values])`` (str with ``text``, else bytes)."""

    def regroup(_, parts):
        for key, values in grouped_records(read_records(parts)):
            yield (key.decode(), [v.decode() for v in values]) if text else (key, values)

    return (spilled_partitions(inputs, folder, label, partitions=partitions, text=text, many=many)
            | f"{label}: read partitions" >> beam.FlatMapTuple(regroup))
