"""The versioned store: ``<root>/vNNNN/<table>/part-*.parquet`` + ``manifest.json``, where ``<root>`` is a
local folder (``data/mini``) or any fsspec URL (``gs://bucket/data/mini``, ``s3://...``, ``memory://...``).

Publishing (a crash never leaves a visible half version; versions are immutable):

- local folder: the version is written into a hidden staging folder, its manifest last, and the folder is
  renamed into place (atomic on one filesystem);
- object storage (no atomic rename): the writer first claims ``vNNNN`` (``store_fs.claim_folder``), writes
  the shards into it and the manifest last. Readers only see versions whose ``manifest.json`` parses,
  validates and names that version, so a folder without one (a writer at work, or one that crashed) is
  invisible. ``begin(spool=True)`` writes the shards to a local folder first and uploads them at commit,
  for writers that only speak ``pathlib``/``shutil``.

Readers on object storage get verified local copies: ``local_copy`` downloads a version's files into a
cache keyed by root, version and the manifest's sha256, checking every file's sha256 on the way, so DuckDB
and ``datasets`` read local Parquet and never need a network extension.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import SightlineError
from curation.store.fs import (
    FsPath,
    StorePath,
    default_cache_root,
    download_verified,
    location,
    parquet_metadata,
    sha256_of,
)
from curation.store.writer import (  # re-exported: callers import these from curation.store.versions
    MANIFEST,
    ROW_GROUP_ROWS,
    STAGING_PREFIX,
    VERSION_RE,
    Staging,
    StoreWriter,
    VersionInfo,
    git_commit,
    sha256_file,
    shard_name,
    version_dirname,
    write_parquet,
)
from schemas import SCHEMAS
from schemas.manifest import validate_manifest

__all__ = ["MANIFEST", "ROW_GROUP_ROWS", "STAGING_PREFIX", "VERSION_RE", "Staging", "Store", "VersionInfo",
           "git_commit", "sha256_file", "shard_name", "version_dirname", "write_parquet"]


class Store(StoreWriter):
    """One named dataset: ``root`` is ``data/<name>`` or ``<scheme>://.../<name>``."""

    def __init__(self, root: str | os.PathLike | FsPath, *, cache_dir: str | os.PathLike | None = None):
        self.root: StorePath = location(root)
        self.name = self.root.name
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._manifest_text: dict[int, str] = {}  # remote only: versions are immutable, reads cost a request

    @classmethod
    def under(cls, output_root: str | os.PathLike, name: str, **kwargs: Any) -> Store:
        """``Store(<output_root>/<name>)`` without ``Path()`` mangling ``gs://`` into ``gs:/``."""
        return cls(location(output_root) / name, **kwargs)

    @property
    def is_remote(self) -> bool:
        return isinstance(self.root, FsPath)

    @property
    def cache_root(self) -> Path:
        return self._cache_dir or default_cache_root()

    # ---- reading -------------------------------------------------------------------------
    def _read_manifest(self, version: int) -> dict | None:
        """The version's manifest if it is complete and valid, else None (the version does not exist yet)."""
        text = self._manifest_text.get(version)
        if text is None:
            try:
                text = (self.root / version_dirname(version) / MANIFEST).read_text()
            except (OSError, UnicodeDecodeError):
                return None
        try:
            m = json.loads(text)
        except ValueError:
            return None  # half-written on a filesystem without atomic writes
        if not isinstance(m, dict) or m.get("version") != version or validate_manifest(m):
            return None
        if self.is_remote:
            self._manifest_text[version] = text
        return m

    def _numbered_folders(self) -> dict[int, StorePath]:
        """Every ``vNNNN`` entry under the root, published or not."""
        if not self.root.is_dir():
            return {}
        out = {}
        for p in self.root.iterdir():
            m = VERSION_RE.match(p.name)
            if m:
                out[int(m.group(1))] = p
        return out

    def versions(self) -> list[int]:
        return sorted(v for v in self._numbered_folders() if self._read_manifest(v) is not None)

    def latest(self) -> int | None:
        vs = self.versions()
        return vs[-1] if vs else None

    def resolve(self, version: int | str | None = "latest") -> int:
        """Version number for ``N``, ``vNNNN``, ``latest`` or None; a clear error otherwise."""
        if not self.root.is_dir():
            raise SightlineError(f"no data folder at {self.root} (run `make data` or pass --data data/<name>)")
        vs = self.versions()
        if not vs:
            raise SightlineError(f"{self.root} has no complete version yet")
        if version in (None, "latest"):
            return vs[-1]
        s = str(version)
        m = re.fullmatch(r"v?(\d+)", s)
        if not m:
            raise SightlineError(f"bad version {s!r}: use a number, vNNNN or latest")
        v = int(m.group(1))
        if v not in vs:
            raise SightlineError(f"{self.root} has no version {v} (versions: {', '.join(map(str, vs))})")
        return v

    def path(self, version: int | str | None = "latest") -> StorePath:
        return self.root / version_dirname(self.resolve(version))

    def manifest(self, version: int | str | None = "latest") -> dict:
        v = self.resolve(version)
        m = self._read_manifest(v)
        if m is None:  # removed between resolve and read
            raise SightlineError(f"{self.root} v{v:04d}: manifest is gone or unreadable")
        return m

    def table_files(self, table: str, version: int | str | None = "latest") -> list[StorePath]:
        """The table's shards where they live (``FsPath`` on object storage); readers want ``local_files``."""
        if table not in SCHEMAS:
            raise SightlineError(f"unknown table {table!r}; tables: {', '.join(SCHEMAS)}")
        v = self.resolve(version)
        base = self.root / version_dirname(v)
        return [base / e["path"] for e in self.manifest(v)["files"][table]]

    def local_copy(self, version: int | str | None = "latest", tables: Iterable[str] | None = None) -> Path:
        """A local folder holding the version (its manifest and ``tables``' shards, default all).

        Local roots: the version folder itself. Object storage: a cache folder under ``cache_root`` named
        by root + version + the manifest's sha256, filled once with sha256-verified downloads.
        """
        v = self.resolve(version)
        if isinstance(self.root, Path):
            return self.root / version_dirname(v)
        manifest = self.manifest(v)
        text = self._manifest_text[v]
        digest = hashlib.sha256(text.encode()).hexdigest()
        key = hashlib.sha256(f"{self.root}\n{v}\n{digest}".encode()).hexdigest()[:20]
        dest = self.cache_root / f"{self.name}-{key}" / version_dirname(v)
        src = self.root / version_dirname(v)
        for table in (SCHEMAS if tables is None else tables):
            if table not in SCHEMAS:
                raise SightlineError(f"unknown table {table!r}; tables: {', '.join(SCHEMAS)}")
            for e in manifest["files"].get(table, []):
                download_verified(src / e["path"], dest / e["path"], e["sha256"], e.get("bytes"))
        if not (dest / MANIFEST).is_file():
            tmp = dest / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
            tmp.write_text(text)
            os.replace(tmp, dest / MANIFEST)
        return dest

    def local_files(self, table: str, version: int | str | None = "latest") -> list[Path]:
        """The table's shards as local paths (downloaded and verified first on object storage)."""
        if table not in SCHEMAS:
            raise SightlineError(f"unknown table {table!r}; tables: {', '.join(SCHEMAS)}")
        v = self.resolve(version)
        base = self.local_copy(v, [table])
        return [base / e["path"] for e in self.manifest(v)["files"][table]]

    def read_table(self, table: str, version: int | str | None = "latest", columns: list[str] | None = None) -> pa.Table:
        """One table of a version. A derived version may keep its parent's shards of an older schema beside
        new ones (traces before schema 4 have no ``judge``): a column a shard lacks reads as nulls."""
        files = self.local_files(table, version)
        parts = [_read_shard(f, table, columns) for f in files]
        if not parts:
            empty = SCHEMAS[table].empty_table()
            return empty.select(columns) if columns is not None else empty
        return pa.concat_tables(parts, promote_options="default")

    def iter_batches(self, table: str, version: int | str | None = "latest", *, batch_size: int = 256,
                     columns: list[str] | None = None) -> Iterable[pa.RecordBatch]:
        for f in self.local_files(table, version):
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)

    def verify(self, version: int | str | None = "latest") -> list[str]:
        """Re-check every file's sha256 and row count where it lives against the manifest; return the problems."""
        v = self.resolve(version)
        base = self.root / version_dirname(v)
        manifest = self.manifest(v)
        problems = [f"manifest: {p}" for p in validate_manifest(manifest)]
        listed = set()
        for entries in manifest.get("files", {}).values():
            for e in entries:
                f = base / e["path"]
                listed.add(e["path"])
                if not f.is_file():
                    problems.append(f"{e['path']}: missing")
                    continue
                digest = sha256_of(f)
                if digest != e["sha256"]:
                    problems.append(f"{e['path']}: sha256 {digest[:12]}... does not match manifest {e['sha256'][:12]}...")
                    continue
                try:
                    rows = parquet_metadata(f).num_rows
                except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                    problems.append(f"{e['path']}: unreadable ({err})")
                    continue
                if rows != e["rows"]:
                    problems.append(f"{e['path']}: {rows} rows, manifest says {e['rows']}")
        for f in base.rglob("*.parquet"):
            rel = f.relative_to(base).as_posix()
            if rel not in listed:
                problems.append(f"{rel}: not listed in the manifest")
        return problems


def _read_shard(path, table: str, columns: list[str] | None) -> pa.Table:
    """A shard's ``columns`` (all when None); a column of the table's current schema that an older shard
    lacks comes back as nulls of its type."""
    have = set(pq.read_schema(path).names)
    wanted = list(columns) if columns is not None else None
    shard = pq.read_table(path, columns=[c for c in wanted if c in have] if wanted is not None else None)
    schema = SCHEMAS[table]
    for name in (wanted if wanted is not None else schema.names):
        if name not in shard.column_names and name in schema.names:
            shard = shard.append_column(schema.field(name), pa.nulls(shard.num_rows, schema.field(name).type))
    return shard.select(wanted) if wanted is not None else shard

