"""Copy a version out as a plain Hugging Face Hub folder: ``README.md`` (the card) + the tables' Parquet files
+ ``manifest.json``, ready for ``huggingface-cli upload`` or ``datasets.load_dataset(folder, "sft")``.

Nothing is pushed anywhere. Every file is checked against the manifest's sha256 on the way (a bad shard
stops the export before the folder appears); the folder is filled under a temporary name and renamed
into place, so a failed export leaves nothing that looks complete. A version written before cards
existed gets one made from its manifest, with the features its shards carry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from curation.errors import SightlineError
from curation.store.card import CARD, render_card
from curation.store.versions import MANIFEST, Store, version_dirname


def _copy_checked(src, dst: Path, sha256: str) -> int:
    """Copy a local ``Path`` or object-store path to ``dst``, refusing bytes that are not the manifest's."""
    h = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fi, open(dst, "wb") as fo:
        for chunk in iter(lambda: fi.read(1 << 20), b""):
            h.update(chunk)
            fo.write(chunk)
    if h.hexdigest() != sha256:
        raise SightlineError(f"{src}: sha256 does not match the manifest (run `sightline data verify`); nothing exported")
    return dst.stat().st_size


def _footer_features(path: Path) -> dict | None:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"huggingface")
    return json.loads(raw)["info"]["features"] if raw else None


def export_version(store: Store, version: int | str, dest: str | os.PathLike) -> dict:
    """Write ``dest`` (must not exist, or be an empty folder); returns files, bytes and the version."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SightlineError(f"{dest} exists and is not an empty folder; export writes a new one")
    v = store.resolve(version)
    manifest = store.manifest(v)
    base = store.local_copy(v)  # object storage: a sha256-verified local cache
    tmp = dest.parent / f".{dest.name}.export-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        n_files, n_bytes = 0, 0
        for entries in manifest["files"].values():
            for e in entries:
                n_bytes += _copy_checked(base / e["path"], tmp / e["path"], e["sha256"])
                n_files += 1
        card = manifest.get("card")
        if card:
            # where it lives: local_copy's cache holds tables and manifest only
            n_bytes += _copy_checked(store.root / version_dirname(v) / card["path"], tmp / CARD, card["sha256"])
        else:  # a version older than cards: make one, with the features its own shards declare
            features = {t: _footer_features(base / es[0]["path"]) for t, es in manifest["files"].items() if es}
            (tmp / CARD).write_text(render_card(manifest, features=features))
            n_bytes += (tmp / CARD).stat().st_size
        shutil.copyfile(base / MANIFEST, tmp / MANIFEST)
        n_bytes += (tmp / MANIFEST).stat().st_size
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": dest, "version": v, "files": n_files + 2, "bytes": n_bytes, "card_made": not card}
