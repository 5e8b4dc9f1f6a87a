"""The versioned store: ``data/<name>/vNNNN/<table>/part-*.parquet`` + ``manifest.json``.

A version is written into a hidden staging folder; its manifest is written last and the folder
is then renamed into place, so a crash never leaves a visible half version. Versions are
immutable. ``latest`` is the newest folder that has a manifest.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import SightlineError
from schemas import SCHEMA_VERSION, SCHEMAS, check_table
from schemas.manifest import validate_manifest

VERSION_RE = re.compile(r"^v(\d{4,})$")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
ROW_GROUP_ROWS = 256  # image bytes live in rows: small row groups keep readers' memory bounded


def version_dirname(version: int) -> str:
    return f"v{version:04d}"


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the checkout Sightline runs from (None outside git); '+dirty' if modified."""
    root = Path(cwd or Path(__file__).resolve().parent.parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_parquet(table: pa.Table, path: Path, *, row_group_rows: int = ROW_GROUP_ROWS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_rows)


@dataclass
class VersionInfo:
    version: int
    path: Path
    manifest: dict


class Staging:
    """A version being written. Tables go in as shards; ``commit`` writes the manifest and publishes."""

    def __init__(self, store: "Store", path: Path):
        self.store = store
        self.path = path
        self.committed = False

    def table_dir(self, table: str) -> Path:
        if table not in SCHEMAS:
            raise SightlineError(f"unknown table {table!r}")
        d = self.path / table
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_table(self, name: str, table: pa.Table | Iterable[dict], *, rows_per_shard: int = 2000) -> None:
        """Write a whole table (checked against its schema) as ``ceil(rows/rows_per_shard)`` shards."""
        from schemas import to_table

        if not isinstance(table, pa.Table):
            table = to_table(name, table)
        table = check_table(name, table)
        d = self.table_dir(name)
        count = max(1, -(-table.num_rows // rows_per_shard))
        for i in range(count):
            write_parquet(table.slice(i * rows_per_shard, rows_per_shard), d / shard_name(i, count))

    def commit(self, *, parent: int | None, config: dict, teachers: dict | None = None,
               stage_counts: dict | None = None, accounting: dict | None = None,
               extra: dict | None = None) -> VersionInfo:
        """Check every shard, write the manifest last, then rename into place (atomic on one filesystem)."""
        files: dict[str, list[dict]] = {}
        for name in SCHEMAS:
            d = self.path / name
            if not d.exists():
                self.table_dir(name)  # every version has every table, possibly with one empty shard
                write_parquet(SCHEMAS[name].empty_table(), d / shard_name(0, 1))
            entries = []
            for f in sorted(d.glob("*.parquet")):
                meta = pq.read_metadata(f)
                schema = pq.read_schema(f)
                check_table(name, schema.empty_table())
                entries.append({"path": f"{name}/{f.name}", "rows": meta.num_rows, "sha256": sha256_file(f),
                                "bytes": f.stat().st_size})
            files[name] = entries
        manifest = {
            "name": self.store.name,
            "version": None,  # set at publish time
            "parent": parent,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
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
        return self.store._publish(self, manifest)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.committed:
            self.abort()


class Store:
    """One named dataset: ``root`` is ``data/<name>``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.name = self.root.name

    # ---- reading -------------------------------------------------------------------------
    def versions(self) -> list[int]:
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            m = VERSION_RE.match(p.name)
            if m and p.is_dir() and (p / MANIFEST).is_file():
                out.append(int(m.group(1)))
        return sorted(out)

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

    def path(self, version: int | str | None = "latest") -> Path:
        return self.root / version_dirname(self.resolve(version))

    def manifest(self, version: int | str | None = "latest") -> dict:
        with open(self.path(version) / MANIFEST) as f:
            return json.load(f)

    def table_files(self, table: str, version: int | str | None = "latest") -> list[Path]:
        if table not in SCHEMAS:
            raise SightlineError(f"unknown table {table!r}; tables: {', '.join(SCHEMAS)}")
        base = self.path(version)
        return [base / e["path"] for e in self.manifest(version)["files"][table]]

    def read_table(self, table: str, version: int | str | None = "latest", columns: list[str] | None = None) -> pa.Table:
        files = self.table_files(table, version)
        parts = [pq.read_table(f, columns=columns) for f in files]
        return pa.concat_tables(parts) if parts else SCHEMAS[table].empty_table()

    def iter_batches(self, table: str, version: int | str | None = "latest", *, batch_size: int = 256,
                     columns: list[str] | None = None) -> Iterable[pa.RecordBatch]:
        for f in self.table_files(table, version):
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)

    def verify(self, version: int | str | None = "latest") -> list[str]:
        """Re-check every file's sha256 and row count against the manifest; return the problems."""
        base = self.path(version)
        manifest = self.manifest(version)
        problems = [f"manifest: {p}" for p in validate_manifest(manifest)]
        listed = set()
        for table, entries in manifest.get("files", {}).items():
            for e in entries:
                f = base / e["path"]
                listed.add(f.resolve())
                if not f.is_file():
                    problems.append(f"{e['path']}: missing")
                    continue
                digest = sha256_file(f)
                if digest != e["sha256"]:
                    problems.append(f"{e['path']}: sha256 {digest[:12]}... does not match manifest {e['sha256'][:12]}...")
                    continue
                try:
                    rows = pq.read_metadata(f).num_rows
                except Exception as err:  # a corrupt footer with a matching hash cannot happen, but be safe
                    problems.append(f"{e['path']}: unreadable ({err})")
                    continue
                if rows != e["rows"]:
                    problems.append(f"{e['path']}: {rows} rows, manifest says {e['rows']}")
        for f in base.rglob("*.parquet"):
            if f.resolve() not in listed:
                problems.append(f"{f.relative_to(base)}: not listed in the manifest")
        return problems

    # ---- writing -------------------------------------------------------------------------
    def begin(self) -> Staging:
        """Start a new version in a staging folder (hidden from readers until commit)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        path.mkdir()
        return Staging(self, path)

    def _publish(self, staging: Staging, manifest: dict) -> VersionInfo:
        # The number is taken at publish time; a concurrent writer that wins the rename makes
        # ours fail with FileExistsError/OSError, and we retry with the next number.
        for _ in range(100):
            version = (self.latest() or 0) + 1
            for p in self.root.glob("v*"):  # a folder without manifest (foreign) also blocks its number
                m = VERSION_RE.match(p.name)
                if m:
                    version = max(version, int(m.group(1)) + 1)
            manifest["version"] = version
            problems = validate_manifest(manifest)
            if problems:
                raise SightlineError("refusing to publish: " + "; ".join(problems))
            tmp = staging.path / (MANIFEST + ".tmp")
            with open(tmp, "w") as f:
                json.dump(manifest, f, indent=2, sort_keys=True, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, staging.path / MANIFEST)
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

    def clean_staging(self) -> int:
        """Remove staging folders left by crashed writers; returns how many."""
        n = 0
        for p in self.root.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
        return n

    def write_version(self, tables: dict[str, Any], *, parent: int | None = None, config: dict | None = None,
                      **commit_kwargs: Any) -> VersionInfo:
        """Convenience: write whole tables and commit in one call."""
        with self.begin() as st:
            for name, t in tables.items():
                st.write_table(name, t)
            return st.commit(parent=parent, config=config or {}, **commit_kwargs)
