"""pipelines.dedup on a real Beam run: the thumbnails step finds each candidate's buckets in the owner index files
(spilled by partition, one file each) and sends its thumbnail to exactly those buckets; other images send nothing."""
import io
import random

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from curation.images import duplicates as D
from pipelines.dedup import OWNER_PARTITIONS, BandEntries, CandidateThumbnails, bucket_members, write_owner_index
from pipelines.runner import new_pipeline
from pipelines.spill import grouped_records, partition_of, read_records, spilled_partitions


def _png(seed: int) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (48, 40), tuple(rng.randrange(256) for _ in range(3)))
    img.putpixel((3, 5), (0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _same_partition(key: bytes, keep: int) -> bytes:
    """A key that shares ``key``'s first ``keep`` bytes and its spill partition (so one index file holds both)."""
    for i in range(1, 1 << 16):
        other = key[:keep] + i.to_bytes(32 - keep, "big")
        if other != key and partition_of(other, OWNER_PARTITIONS) == partition_of(key, OWNER_PARTITIONS):
            return other
    raise AssertionError("no key found")


@pytest.mark.parametrize("group", [1, 3, 7])  # rows per row group (Arrow table) of the work rows
def test_thumbnails_go_to_the_buckets_of_candidates_only(tmp_path, group):
    rng = random.Random(0)
    a = rng.randbytes(32)
    a_prefix8 = _same_partition(a, 8)   # a candidate sharing a's first 8 bytes, in a's index file
    a_near = _same_partition(a, 31)     # NOT a candidate: a's first 31 bytes, a's partition
    if a_near == a_prefix8:
        a_near = _same_partition(a_prefix8, 31)
    b, absent = rng.randbytes(32), rng.randbytes(32)
    owners = {a: (11, [(0, 5), (2, 99)]), a_prefix8: (12, [(1, 7)]), b: (13, [(4, 1 << 60)])}
    records = [(key, h.to_bytes(8, "big") + D.packed_band(band)) for key, (h, bands) in owners.items() for band in bands]
    rng.shuffle(records)
    images = {a: _png(1), a_prefix8: _png(2), a_near: _png(3), b: _png(4), absent: _png(5)}
    rows = [{"image_key": k.hex(), "images": [{"bytes": png, "path": None}]} for k, png in images.items()]
    rows += [dict(rows[0]), {"image_key": "not-a-sha256", "images": [{"bytes": _png(6), "path": None}]}]
    expected = sorted((band, key.hex(), h, D.thumbnail_of({"images": [{"bytes": images[key]}]}))
                      for key, (h, bands) in owners.items() for band in bands)

    def sent(_, parts):
        for record in read_records(parts):
            band, member = D.record_bucket(record)
            (key, h, thumb), = D.thumbnail_members([member])
            yield band, key, h, thumb

    with new_pipeline(1) as p:
        index_files = (spilled_partitions([p | "owners" >> beam.Create(records)], str(tmp_path / "owners"), "O",
                                          partitions=OWNER_PARTITIONS)
                       | beam.MapTuple(lambda part, parts: write_owner_index(part, parts, str(tmp_path / "index"))))
        tables = [pa.Table.from_pylist(rows[i:i + group]) for i in range(0, len(rows), group)]
        out = (p | "row groups" >> beam.Create(tables)
               | beam.ParDo(CandidateThumbnails(str(tmp_path / "thumbs")), beam.pvalue.AsList(index_files))
               | beam.GroupByKey() | beam.FlatMapTuple(sent) | beam.Distinct())
        assert_that(out, equal_to(expected))
    files = sorted((tmp_path / "index").iterdir())
    assert len(files) == len({partition_of(k, OWNER_PARTITIONS) for k in owners})  # one per partition with owners
    assert all(f.read_bytes()[:8] == b"SLOWNER1" for f in files)


def test_an_owner_index_file_holds_its_partition_grouped_and_sorted(tmp_path):
    from curation.images.owner_index import OwnerIndex
    from pipelines.spill import PartitionedSpill, keyed_record, read_bytes

    rng = random.Random(3)
    keys = [rng.randbytes(32) for _ in range(40)]
    spill = PartitionedSpill(str(tmp_path / "spill"), chunk_bytes=128)
    sent = {}
    for k in keys:
        h = rng.randbytes(8)
        for _ in range(rng.randrange(1, 4)):
            value = h + D.packed_band((rng.randrange(9), rng.randrange(1 << 20)))
            spill.add(0, keyed_record(k, value))
            sent.setdefault(k, []).append(value)
    (parts,) = [[where] for where in spill.close().values()]
    assert [k for k, _ in grouped_records(read_records(parts))] == sorted(keys)
    part, path = write_owner_index(0, parts, str(tmp_path / "index"))
    index = OwnerIndex(read_bytes(path))
    assert part == 0 and len(index) == len(keys)
    for k, values in sent.items():
        assert index.get(k) == D.packed_owners(values)


def test_owner_indexes_are_read_once_per_process_and_let_go_when_confirmation_starts(tmp_path):
    import gc
    import weakref

    from pipelines import dedup
    from pipelines.spill import PartitionedSpill, keyed_record

    rng = random.Random(5)
    spill = PartitionedSpill(str(tmp_path / "spill"))
    keys = [rng.randbytes(32) for _ in range(20)]
    for k in keys:
        spill.add(partition_of(k, 4), keyed_record(k, rng.randbytes(8) + D.packed_band((1, 7))))
    names = [dedup.write_owner_index(part, [where], str(tmp_path / "index")) for part, where in spill.close().items()]
    a = dedup.CandidateThumbnails(str(tmp_path / "thumbs"), partitions=4)
    b = dedup.CandidateThumbnails(str(tmp_path / "thumbs"), partitions=4)
    a.setup(), b.setup()
    loaded = a.owners(list(names))
    assert b.owners(list(names)) is loaded and sum(len(i) for i in loaded.values()) == len(keys)  # read once
    gone = weakref.ref(next(iter(loaded.values())))
    del loaded
    list(dedup.confirm_spilled([], 8))  # confirmation starts: the indexes are let go
    gc.collect()
    assert gone() is None
    again = a.owners(list(names))  # a later thumbnails bundle (a retry) reads them again
    assert all(again[partition_of(k, 4)].get(k) is not None for k in keys)
    dedup.release_owners()


def test_a_partition_over_budget_is_confirmed_in_shares_with_the_same_answers(tmp_path, monkeypatch):
    from pipelines import dedup
    from pipelines.spill import PartitionedSpill

    def jpeg_copy(png: bytes) -> bytes:
        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").save(buf, "JPEG", quality=92)
        return buf.getvalue()

    rng = random.Random(1)
    spills = [PartitionedSpill(str(tmp_path)) for _ in range(2)]  # two bundles' files
    copies = set()
    for bucket in range(12):
        band = (0, bucket)  # members with one hash agree on band 0 first: every pair is owned here
        for k in range(3):
            png = _png(100 * bucket + k)
            keys = [rng.randbytes(32).hex() for _ in range(2 if k == 0 else 1)]
            for key, image in zip(keys, (png, jpeg_copy(png))):
                member = D.thumbnail_member(key, 42 + bucket, D.thumbnail_of({"images": [{"bytes": image}]}))
                rng.choice(spills).add(0, D.bucket_record(band, member))
            if len(keys) == 2:
                copies.add(tuple(sorted(keys)))
    parts = [s.close()[0] for s in spills]
    whole = sorted(dedup.confirm_spilled(parts, 8))
    reads = []
    real = dedup.read_records
    monkeypatch.setattr(dedup, "read_records", lambda p: reads.append(1) or real(p))
    total = sum(n for _, ext in parts for _, n in ext)
    shared = sorted(dedup.confirm_spilled(parts, 8, budget=total // 3))
    assert shared == whole and copies <= set(whole) and len(whole) == len(set(whole))  # each pair once
    assert len(reads) == 4  # -(-total // (total // 3)): read once per share


@pytest.mark.parametrize("batch", [3, BandEntries.BATCH])  # rows spilled 3 at a time, or all at the bundle's end
def test_band_entries_spilled_in_batches_gather_into_the_buckets_of_duplicates_band_entries(tmp_path, monkeypatch,
                                                                                            batch):
    monkeypatch.setattr(BandEntries, "BATCH", batch)
    rng = random.Random(3)
    base = [rng.getrandbits(64) for _ in range(4)]
    # near hashes (a few bits flipped) share buckets; 20 images of 4 families
    rows = [{"image_key": rng.randbytes(32).hex(), "image_hash": f"{base[i % 4] ^ (1 << rng.randrange(64)):016x}"}
            for i in range(20)]
    expected: dict = {}
    for r in rows:
        for band, member in D.band_entries(r["image_key"], int(r["image_hash"], 16), 8):
            expected.setdefault(band, []).append(member)
    expected = sorted((band, sorted(ms)) for band, ms in expected.items())

    def members(band, packed):
        return band, sorted(packed[i:i + D.MEMBER_BYTES] for i in range(0, len(packed), D.MEMBER_BYTES))

    with new_pipeline(1) as p:
        out = (p | beam.Create([7]) | beam.FlatMap(lambda _: rows)  # one bundle
               | beam.ParDo(BandEntries(str(tmp_path / "bands"), 8, partitions=5)) | beam.GroupByKey()
               | beam.FlatMapTuple(lambda _, parts: bucket_members(parts)) | beam.MapTuple(members))
        assert_that(out, equal_to(expected))
    assert len(expected) > 20 and any(len(ms) > 1 for _, ms in expected)  # buckets shared: the grouping is tested
