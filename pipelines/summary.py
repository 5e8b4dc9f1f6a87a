"""After the Beam passes: name the shards, count what happened, and say it to the user.

The staging folder is a local ``Path`` or a ``curation.store.fs.FsPath`` on object storage; only the
calls both support are used (glob, rename, unlink, open) and Parquet footers via ``parquet_metadata``.
"""
from __future__ import annotations

from pathlib import Path

from curation.store.fs import parquet_metadata
from curation.store.versions import shard_name
from pipelines.audit import format_rows
from schemas import SCHEMAS


def read_columns(path, columns: list[str]) -> list[dict]:
    """Rows (only ``columns``) of one Parquet file, local or remote. Through ``ParquetFile``: ``pq.read_table``
    imports ``pyarrow.dataset``, which cost a data run ~45 MB of RSS (its libraries and modules) for nothing."""
    import pyarrow.parquet as pq

    if isinstance(path, Path):
        return pq.ParquetFile(path).read(columns=columns).to_pylist()
    with path.open("rb") as f:
        return pq.ParquetFile(f).read(columns=columns).to_pylist()


def finalize_shards(staging: Path) -> None:
    """Drop empty shards where a table has others, then name them part-00000-of-000NN.parquet."""
    for table in SCHEMAS:
        d = staging / table
        files = sorted(d.glob("*.parquet")) if d.is_dir() else []
        rows = {f: parquet_metadata(f).num_rows for f in files}
        keep = [f for f in files if rows[f]] or files[:1]
        for f in files:
            if f not in keep:
                f.unlink()
        tmp = [f.rename(f.with_name(f"tmp-{i}.parquet")) for i, f in enumerate(keep)]
        for i, f in enumerate(tmp):
            f.rename(d / shard_name(i, len(tmp)))


def table_rows(staging: Path) -> dict[str, int]:
    return {d.name: sum(parquet_metadata(f).num_rows for f in d.glob("*.parquet"))
            for d in sorted(staging.iterdir()) if d.is_dir() and not d.name.startswith("_")}


def rejects_summary(staging: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:

    by_stage: dict[str, int] = {}
    by_reason: dict[tuple[str, str], int] = {}
    for f in sorted((staging / "rejects").glob("*.parquet")):
        for r in read_columns(f, ["stage", "reason"]):
            stage, reason = r["stage"], r["reason"]
            by_stage[stage] = by_stage.get(stage, 0) + 1
            by_reason[(stage, reason)] = by_reason.get((stage, reason), 0) + 1
    return by_stage, by_reason


def print_summary(info, by_reason: dict[tuple[str, str], int], stages: tuple[str, ...]) -> None:
    m = info.manifest
    sc = m["stage_counts"]
    rows = []
    for stage in stages:
        s = sc.get(stage, {})
        rows.append((stage, s.get("in", 0), s.get("out", 0), s.get("rejected", 0), s.get("duplicates", 0),
                     s.get("cpu_seconds")))
    print(format_rows(["stage", "in", "out", "rejected", "duplicates", "cpu_s"], rows).rsplit("\n", 1)[0])
    sp = sc.get("split", {})
    print("\nsplit:   " + ", ".join(f"{k}={n}" for k, n in sp.items()))
    v = sc.get("verify", {})
    print(f"traces:  {v.get('traces', 0)} written, {v.get('correct', 0)} correct; "
          + ", ".join(f"{k}={n}" for k, n in sc.get("select", {}).items()))
    if v.get("judged"):  # open golds: the data recipe's judge decided these traces
        judge = (m.get("teachers", {}).get("judge") or {}).get("judge", "the judge")
        print("judged:  " + ", ".join(f"{k}={n}" for k, n in sorted(v["judged"].items())) + f" by {judge}")
    if by_reason:
        print("rejects: " + ", ".join(f"{s}/{r}={n}" for (s, r), n in sorted(by_reason.items(), key=lambda x: -x[1])))
    print("tables:  " + ", ".join(f"{k}={n}" for k, n in m["tables"].items()))
    a = m["accounting"]
    print(f"accounting: {a['rows_in']} in = {a['rows_written']} written + {a['rows_rejected']} rejected + "
          f"{a['rows_duplicate']} duplicates")
    print("time:    " + ", ".join(f"{k} {s:.1f} s" for k, s in sc["passes"].items()))
    print(f"\nwrote {info.path}  (teachers: {m['teachers']['caption']['model']}, {m['teachers']['distill']['model']})")
    print(f"look:   sightline audit --data {info.path.parent} summary")
