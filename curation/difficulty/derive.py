"""A child version: a pass over a published version that changes some tables and keeps the rest.

``derive_version`` is how a later stage (the difficulty pass today) publishes what it adds without
touching its parent (versions are immutable): every shard it does not rewrite is copied byte for byte
(``store_fs.copy_file``: server-side on one object store, so the same sha256 in both manifests), the
shards it rewrites keep their names and order, new rows go to a shard of their own named after the
stage, and the manifest carries the parent's books forward with this stage's counts added. It works
on local folders and object storage alike (``Store.local_files`` gives verified local copies to read).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import SightlineError
from curation.store.versions import Store, VersionInfo, version_dirname, write_parquet
from curation.store.fs import copy_file
from schemas import check_table, to_table

# (shard index, the parent's shard) -> the child's shard
ShardRewrite = Callable[[int, pa.Table], pa.Table]


def added_shard_path(table: str, stage: str, taken: set[str] = frozenset()) -> str:
    """Where a stage's new rows of ``table`` go: beside the parent's shards, named after the stage (and
    numbered when an earlier pass of the same stage, copied from the parent, holds the name)."""
    path, n = f"{table}/{stage}-00000-of-00001.parquet", 1
    while path in taken:
        path, n = f"{table}/{stage}-{n}-00000-of-00001.parquet", n + 1
    return path


def rejects_by_reason(parent: Mapping, stage: str, rejects: list[dict]) -> dict[str, int]:
    """The parent's ``rejects_by_reason`` plus ``<stage>/<reason>`` for each new rejects row."""
    out = dict(parent.get("rejects_by_reason") or {})
    for r in rejects:
        key = f"{stage}/{r['reason']}"
        out[key] = out.get(key, 0) + 1
    return out


def derive_version(store: Store, parent: int, *, stage: str, config: dict, stage_counts: dict,
                   rewrite: Mapping[str, ShardRewrite] | None = None, add: Mapping[str, list[dict]] | None = None,
                   teachers: dict | None = None, expect_rows: Mapping[str, int] | None = None) -> VersionInfo:
    """Publish ``parent`` with ``rewrite[table]`` applied to each of that table's shards and ``add``'s rows.

    ``stage_counts`` becomes ``stage_counts[stage]`` beside the parent's; ``teachers`` are merged over the
    parent's; ``expect_rows`` (table -> rows) is checked before the manifest is written, so a version
    whose books do not balance is never published.
    """
    rewrite, add = rewrite or {}, add or {}
    parent_manifest = store.manifest(parent)
    source = store.root / version_dirname(parent)
    rows: dict[str, int] = {}
    with store.begin() as st:
        for table, entries in parent_manifest["files"].items():
            local = store.local_files(table, parent) if table in rewrite else None
            for i, entry in enumerate(entries):
                if local is None:
                    copy_file(source / entry["path"], st.path / entry["path"])
                    rows[table] = rows.get(table, 0) + entry["rows"]
                    continue
                shard = check_table(table, rewrite[table](i, pq.read_table(local[i])))
                write_parquet(shard, st.path / entry["path"])
                rows[table] = rows.get(table, 0) + shard.num_rows
        taken = {e["path"] for entries in parent_manifest["files"].values() for e in entries}
        for table, new_rows in add.items():
            if new_rows:
                write_parquet(check_table(table, to_table(table, new_rows)),
                              st.path / added_shard_path(table, stage, taken))
                rows[table] = rows.get(table, 0) + len(new_rows)
        for table, want in (expect_rows or {}).items():
            if rows.get(table, 0) != want:
                raise SightlineError(f"refusing to publish the {stage} version: {table} has {rows.get(table, 0)} "
                                     f"rows, the stage's counts say {want}")
        return st.commit(parent=parent, config=config, teachers={**parent_manifest.get("teachers", {}),
                                                                 **(teachers or {})},
                         stage_counts={**parent_manifest.get("stage_counts", {}), stage: stage_counts},
                         accounting=parent_manifest.get("accounting", {}),
                         extra={"rejects_by_reason": rejects_by_reason(parent_manifest, stage, add.get("rejects", []))})
