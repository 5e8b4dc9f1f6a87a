"""pipelines.spill: records grouped through work files come back per partition, complete and in order."""
import random

import pytest

from pipelines.spill import PartitionedSpill, read_records


def test_each_partition_reads_back_exactly_its_records_from_every_bundle(tmp_path):
    rng = random.Random(0)
    sent = {p: [] for p in range(5)}
    emitted = {}
    for _ in range(3):  # three bundles, each with its own file
        spill = PartitionedSpill(str(tmp_path / "spill"), chunk_bytes=256)  # many chunks per partition
        for i in range(400):
            p = rng.randrange(4)  # partition 4 never gets a record
            record = rng.randbytes(rng.randrange(0, 90))
            spill.add(p, record)
            sent[p].append(record)
        for p, where in spill.close().items():
            emitted.setdefault(p, []).append(where)
    assert sorted(emitted) == [0, 1, 2, 3]
    assert len({path for parts in emitted.values() for path, _ in parts}) == 3
    for p, parts in emitted.items():
        assert list(read_records(parts)) == sent[p]
        assert len(parts[0][1]) > 1  # written in chunks, not held to the end


def test_a_spill_file_shorter_than_its_index_is_an_error_not_a_silent_loss(tmp_path):
    spill = PartitionedSpill(str(tmp_path))
    spill.add(0, b"x" * 100)
    (path, extents), = spill.close().values()
    with open(path, "r+b") as f:
        f.truncate(50)
    with pytest.raises(OSError, match="shorter than its index"):
        list(read_records([(path, extents)]))
