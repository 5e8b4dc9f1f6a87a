"""`sightline data`: build a dataset version, or check one.

    sightline data                                   # configs/data/mini.yaml -> data/mini/vNNNN
    sightline data --config configs/data/mini.yaml --set synthetic.n=500 --workers 2
    sightline data verify --data data/mini [--version N]
    sightline data versions --data data/mini
"""
from __future__ import annotations

import argparse
import sys

from curation.errors import SightlineError
from curation.store import Store


def _verify(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sightline data verify",
                                description="Re-check every shard's sha256 and row count against the manifest.")
    p.add_argument("--data", required=True, help="dataset folder, e.g. data/mini")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    a = p.parse_args(argv)
    store = Store(a.data)
    v = store.resolve(a.version)
    problems = store.verify(v)
    n_files = sum(len(es) for es in store.manifest(v)["files"].values())
    if problems:
        for prob in problems:
            print(f"FAIL {prob}", file=sys.stderr)
        print(f"{store.root} v{v:04d}: {len(problems)} problem(s) in {n_files} files", file=sys.stderr)
        return 1
    print(f"{store.root} v{v:04d}: OK, {n_files} files match the manifest")
    return 0


def _versions(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sightline data versions", description="List the complete versions.")
    p.add_argument("--data", required=True)
    a = p.parse_args(argv)
    store = Store(a.data)
    store.resolve("latest")  # clear error when empty or missing
    for v in store.versions():
        m = store.manifest(v)
        tables = ", ".join(f"{k}={n}" for k, n in m["tables"].items())
        print(f"v{v:04d}  parent={m['parent']}  {m['created_at']}  {tables}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    if argv and argv[0] == "verify":
        return _verify(argv[1:])
    if argv and argv[0] == "versions":
        return _versions(argv[1:])
    try:
        from pipelines import curate
    except ImportError as e:  # pragma: no cover - only while the pipeline is being built
        raise SightlineError(f"the curate pipeline is not available: {e}") from e
    return curate.main(argv)
