"""Writing a version: ``Staging`` (shards in, manifest last) and ``StoreWriter``, the publishing half of
``curation.store.versions.Store``.

Local root: a hidden staging folder, the manifest written last, then one ``rename`` (atomic on one
filesystem). Object storage has no rename: the writer claims ``vNNNN`` first (``store_fs.claim_folder``),
writes the shards into it and the manifest last; readers ignore a folder without a valid manifest, so a
crash leaves nothing visible. ``begin(spool=True)`` writes locally and uploads at commit instead.

What a killed writer leaves (a staging folder, a claimed folder, a spool) names its owner and carries its
heartbeat (``curation.store.owner``); ``collect_garbage`` (run by every ``begin`` and by ``sightline data
gc``) removes such folders once their owner is gone, and never one whose writer is alive.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import random
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import SightlineError
from curation.store.card import CARD, card_entry, render_card
from curation.store.fs import (
    FsPath,
    StorePath,
    claim_folder,
    copy_file,
    location,
    new_claim_token,
    parquet_rows_and_schema,
    release_claims,
    remove_tree,
    sha256_of,
)
from curation.store.owner import STALE_S, Heartbeat, abandoned
from schemas import check_table, SCHEMA_VERSION, SCHEMAS, to_table
from schemas.manifest import validate_manifest

VERSION_RE = re.compile(r"^v(\d{4,})$")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
ROW_GROUP_ROWS = 256  # image bytes live in rows: small row groups keep readers' memory bounded
CLAIM_ATTEMPTS = 20
SPOOL_PREFIX = "sightline-spool-"


def version_dirname(version: int) -> str:
    return f"v{version:04d}"


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def sha256_file(path: str | os.PathLike | FsPath) -> str:
    return sha256_of(location(path))


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the checkout Sightline runs from (None outside git); '+dirty' if modified."""
    root = Path(cwd or Path(__file__).resolve().parent.parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=False).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_parquet(table: pa.Table, path: str | os.PathLike | FsPath, *, row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """One zstd Parquet file at a local path or a URL (``gs://...``)."""
    p = location(path)
    if isinstance(p, FsPath):
        with p.open("wb") as f:
            pq.write_table(table, f, compression="zstd", row_group_size=row_group_rows)
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, p, compression="zstd", row_group_size=row_group_rows)


@dataclass
class GarbageReport:
    """What ``collect_garbage`` removed (or would, on a dry run) and what it kept because its writer is alive."""
    removed: list[str]
    kept: list[str]


@dataclass
class VersionInfo:
    version: int
    path: StorePath
    manifest: dict


class Staging:
    """A version being written. Tables go in as shards; ``commit`` writes the manifest and publishes.

    ``path`` is a local ``Path`` (local roots, or ``spool=True``) or the claimed remote version folder.
    """

    def __init__(self, store: StoreWriter, path: StorePath, *, version: int | None = None, spool: bool = False,
                 heartbeat: Heartbeat | None = None):
        self.store = store
        self.path = path
        self.version = version  # claimed up front only when writing straight into object storage
        self.spool = spool
        self.committed = False
        self.heartbeat = heartbeat  # says "a live writer owns this folder" until commit or abort

    def _release(self) -> None:
        """Stop the heartbeat and remove the owner file (before publishing: a version holds only its files)."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def table_dir(self, table: str) -> StorePath:
        if table not in SCHEMAS:
            raise SightlineError(f"unknown table {table!r}")
        d = self.path / table
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_table(self, name: str, table: pa.Table | Iterable[dict], *, rows_per_shard: int = 2000) -> None:
        """Write a whole table (checked against its schema) as ``ceil(rows/rows_per_shard)`` shards."""
        if not isinstance(table, pa.Table):
            table = to_table(name, table)
        table = check_table(name, table)
        d = self.table_dir(name)
        count = max(1, -(-table.num_rows // rows_per_shard))
        for i in range(count):
            write_parquet(table.slice(i * rows_per_shard, rows_per_shard), d / shard_name(i, count))

    def file_entries(self) -> dict[str, list[dict]]:
        """Every table's shards with rows, sha256 and bytes (an empty shard for a table never written)."""
        files: dict[str, list[dict]] = {}
        for name in SCHEMAS:
            d = self.path / name
            if not d.exists():
                self.table_dir(name)  # every version has every table, possibly with one empty shard
                write_parquet(SCHEMAS[name].empty_table(), d / shard_name(0, 1))
            entries = []
            for f in sorted(d.glob("*.parquet")):
                # one footer read (parquet_rows_and_schema: the schema through the metadata kept every footer
                # alive), an empty table without Schema.empty_table(), which imports pandas
                rows, schema = parquet_rows_and_schema(f)
                check_table(name, pa.Table.from_batches([], schema=schema))
                entries.append({"path": f"{name}/{f.name}", "rows": rows, "sha256": sha256_of(f),
                                "bytes": f.stat().st_size})
            files[name] = entries
        return files

    def commit(self, *, parent: int | None, config: dict, teachers: dict | None = None,
               stage_counts: dict | None = None, accounting: dict | None = None,
               extra: dict | None = None) -> VersionInfo:
        """Check every shard, then publish with the manifest written last."""
        files = self.file_entries()
        manifest = {
            "name": self.store.name,
            "version": None,  # set at publish time
            "parent": parent,
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "schema_version": SCHEMA_VERSION,
            "config": config,
            "teachers": teachers or {},
            "stage_counts": stage_counts or {},
            "accounting": accounting or {},
            "tables": {n: sum(e["rows"] for e in es) for n, es in files.items()},
            "files": files,
        }
        manifest.update(extra or {})
        # the dataset card, made from the manifest, goes in before the manifest, which lists it with its hash
        text = render_card(manifest)
        (self.path / CARD).write_text(text)
        manifest["card"] = card_entry(text)
        return self.store._publish(self, manifest)

    def abort(self) -> None:
        """Drop everything written; a claimed remote number is given back (its folder is removed)."""
        self._release()
        remove_tree(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.committed:
            self.abort()


def _check_manifest(manifest: dict) -> None:
    problems = validate_manifest(manifest)
    if problems:
        raise SightlineError("refusing to publish: " + "; ".join(problems))


def _manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()


class StoreWriter:
    """The writing half of ``Store``; uses its ``root``, ``name``, ``latest``, ``_numbered_folders`` and
    ``_read_manifest``."""

    root: StorePath
    name: str

    def begin(self, *, spool: bool = False) -> Staging:
        """Start a new version, hidden from readers until commit.

        Local root: a staging folder. Object storage: claims the next number and returns its folder
        (``str(st.path)`` is a URL Beam can write to); with ``spool=True`` a local folder instead,
        uploaded at commit (the number is then claimed at commit).
        """
        try:  # what killed writers left behind; a live writer's folder is never touched
            self.collect_garbage()
        except (OSError, SightlineError):
            pass  # not this run's business to fail over
        token = new_claim_token()
        if isinstance(self.root, Path):
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
            path.mkdir()
            return Staging(self, path, heartbeat=Heartbeat(path, token))
        if spool:
            path = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{self.name}-"))
            return Staging(self, path, spool=True, heartbeat=Heartbeat(path, token))
        version = self._claim_next_version()
        path = self.root / version_dirname(version)
        return Staging(self, path, version=version, heartbeat=Heartbeat(path, token))

    def _claim_next_version(self) -> int:
        token = new_claim_token()
        for attempt in range(CLAIM_ATTEMPTS):
            version = max(self._numbered_folders(), default=0) + 1
            if claim_folder(self.root / version_dirname(version), token):
                return version
            time.sleep(random.uniform(0.0, 0.02 * (attempt + 1)))  # two losers must not collide forever
        raise SightlineError(f"could not claim a version number under {self.root} in {CLAIM_ATTEMPTS} tries "
                             "(other writers kept taking them); nothing was published, try again")

    def _publish(self, staging: Staging, manifest: dict) -> VersionInfo:
        if isinstance(self.root, Path):
            return self._publish_local(staging, manifest)
        if staging.spool:
            manifest["version"] = 0  # validate before claiming a number
            _check_manifest(manifest)
            staging.version = self._claim_next_version()
            target = self.root / version_dirname(staging.version)
            upload = Heartbeat(target, new_claim_token())  # an upload can outlast STALE_S
            try:
                for entries in manifest["files"].values():
                    for e in entries:
                        copy_file(staging.path / e["path"], target / e["path"])
                copy_file(staging.path / CARD, target / CARD)
            except BaseException:
                upload.stop(remove=False)
                remove_tree(target)  # give the number back; the spool is still complete
                raise
            upload.stop(remove=False)  # removed below with the claims, after the manifest
        target = self.root / version_dirname(staging.version)
        manifest["version"] = staging.version
        _check_manifest(manifest)
        heartbeat, staging.heartbeat = staging.heartbeat, None
        if heartbeat is not None:
            heartbeat.stop(remove=False)  # no owner file written after the manifest
        (target / MANIFEST).write_bytes(_manifest_bytes(manifest))  # last: from here on it is visible
        if heartbeat is not None and not staging.spool:
            heartbeat.stop()  # the owner file, now that the manifest holds the folder
        release_claims(target)  # claim markers and owner files
        if staging.spool:
            remove_tree(staging.path)
        staging.committed = True
        return VersionInfo(staging.version, target, manifest)

    def _publish_local(self, staging: Staging, manifest: dict) -> VersionInfo:
        # The number is taken at publish time; a concurrent writer that wins the rename makes
        # ours fail with FileExistsError/OSError, and we retry with the next number.
        for _ in range(100):
            version = max([self.latest() or 0, *self._numbered_folders()]) + 1  # foreign folders block too
            manifest["version"] = version
            _check_manifest(manifest)
            tmp = staging.path / (MANIFEST + ".tmp")
            with open(tmp, "wb") as f:
                f.write(_manifest_bytes(manifest))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, staging.path / MANIFEST)
            staging._release()  # the owner file is not part of the version (a folder this fresh is never collected)
            target = self.root / version_dirname(version)
            try:
                os.rename(staging.path, target)  # fails if target exists and is non-empty
            except OSError:
                if target.exists():
                    continue
                raise
            staging.committed = True
            return VersionInfo(version, target, manifest)
        raise SightlineError(f"could not publish a version under {self.root}")

    def collect_garbage(self, *, stale_s: float | None = None, dry_run: bool = False) -> GarbageReport:
        """Remove what killed writers left: local staging folders, unpublished claimed ``vNNNN`` folders on
        object storage and local spool folders, each only when its owner is gone (``curation.store.owner``:
        a dead process on this host, or no heartbeat for ``stale_s``, default ``owner.STALE_S``)."""
        stale = STALE_S if stale_s is None else stale_s
        if isinstance(self.root, Path):
            folders = [p for p in self.root.glob(STAGING_PREFIX + "*") if p.is_dir()]
        else:
            folders = [p for v, p in sorted(self._numbered_folders().items()) if self._read_manifest(v) is None]
            folders += sorted(Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}{self.name}-*"))
        report = GarbageReport([], [])
        for p in folders:
            if abandoned(p, stale_s=stale):
                if not dry_run:
                    remove_tree(p)
                report.removed.append(str(p))
            else:
                report.kept.append(str(p))
        return report

    def clean_staging(self, older_than_s: float | None = None) -> int:
        """``collect_garbage``'s count of removed folders (``older_than_s``: its ``stale_s``)."""
        return len(self.collect_garbage(stale_s=older_than_s).removed)

    def write_version(self, tables: dict[str, Any], *, parent: int | None = None, config: dict | None = None,
                      **commit_kwargs: Any) -> VersionInfo:
        """Convenience: write whole tables and commit in one call."""
        with self.begin() as st:
            for name, t in tables.items():
                st.write_table(name, t)
            return st.commit(parent=parent, config=config or {}, **commit_kwargs)

