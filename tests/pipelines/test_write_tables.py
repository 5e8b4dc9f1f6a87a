"""``pipelines.runner.write_tables``: a real Beam run writing Parquet, one file per bundle or rolled at a size."""
import glob

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.runner import new_pipeline, write_tables

LAYOUT = pa.schema([("i", pa.int64()), ("s", pa.string())])


def _write(folder, **kw) -> list[str]:
    rows = [{"i": i, "s": f"{i:06d}" * 150} for i in range(3000)]  # ~900 bytes each
    with new_pipeline(1) as p:
        write_tables([("t", p | beam.Create(rows))], folder, label="W", schemas={"t": LAYOUT},
                     row_group_bytes=64 << 10, record_batch_size=50, **kw)
    return sorted(glob.glob(f"{folder}/t/*.parquet"))


def test_files_roll_at_file_bytes_and_every_row_is_written_once(tmp_path):
    one = _write(tmp_path / "one")
    rolled = _write(tmp_path / "rolled", file_bytes=512 << 10)
    assert len(one) == 1 and len(rolled) >= 4
    read = [pq.read_table(f) for f in rolled]
    assert sorted(i for t in read for i in t.column("i").to_pylist()) == list(range(3000))
    assert pq.read_table(one[0]).column("i").to_pylist() == list(range(3000))
    # every rolled file but the bundle's last holds at least file_bytes of row groups, and not far beyond
    sizes = sorted(t.nbytes for t in read)
    assert all(s >= 512 << 10 for s in sizes[1:]) and max(sizes) < (512 + 2 * 64) << 10
