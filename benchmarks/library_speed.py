"""The floor under the curate pipeline: how fast the libraries it calls go on their own, one core.

    .venv/bin/python benchmarks/library_speed.py [--rows 2000]

On the recipe's own synthetic rows (`configs/data/mini.yaml`): Pillow decoding each PNG, imagehash's
phash of the decoded image (what `validate` adds per row), the near-copy thumbnail (`curation.images.near_copy`),
and pyarrow writing the rows as zstd Parquet in the `examples` layout. `pipeline_throughput.py` prints
these next to its per-stage table, so a stage can be compared with the work it cannot avoid.
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def library_speeds(n: int = 2000) -> dict[str, float]:
    """Items per second for each library call, on ``n`` synthetic rows of the mini recipe."""
    import imagehash
    import pyarrow.parquet as pq
    from PIL import Image

    from curation.images.near_copy import thumbnail
    from curation.recipe import load_data_recipe
    from curation.synthetic import generate
    from schemas import TABLES, to_table

    syn = load_data_recipe(str(ROOT / "configs/data/mini.yaml"), []).synthetic
    level = tuple(syn.level) if isinstance(syn.level, list) else syn.level
    rows = list(generate(n, seed=syn.seed, image_size=syn.image_size, families=syn.families, level=level))
    blobs = [r["images"][0]["bytes"] for r in rows]
    out: dict[str, float] = {}

    def rate(fn, items) -> float:
        for x in items[:10]:  # warm-up: first-call imports and caches are not the library's speed
            fn(x)
        t = time.perf_counter()
        for x in items:
            fn(x)
        return len(items) / (time.perf_counter() - t)

    def decode(b):
        im = Image.open(io.BytesIO(b))
        im.load()
        return im

    images = [decode(b) for b in blobs]
    out["Pillow decode (PNG)"] = rate(decode, blobs)
    out["imagehash phash"] = rate(lambda im: imagehash.phash(im, hash_size=8), images)
    out["thumbnail (256 px, BOX)"] = rate(thumbnail, images)
    names = TABLES["examples"].names
    full = [{k: dict(r, source="synthetic").get(k) for k in names} for r in rows]
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        def write(chunk):
            pq.write_table(to_table("examples", chunk), Path(d) / "x.parquet", compression="zstd", row_group_size=256)

        write(full[:10])  # warm-up
        chunks = [full[i:i + 500] for i in range(0, n, 500)]
        out["pyarrow Parquet write (examples, zstd)"] = n / _seconds(lambda: [write(c) for c in chunks])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    a = ap.parse_args()
    for name, rate in library_speeds(a.rows).items():
        print(f"{name:40s} {rate:9,.0f} /s")


if __name__ == "__main__":
    main()
