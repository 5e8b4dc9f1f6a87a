"""Confirming one crowded hash bucket: held whole in memory vs from a local file in tiles.

    .venv/bin/python benchmarks/crowded_bucket.py                     # 4,000 and 12,000 images (~1 min)
    .venv/bin/python benchmarks/crowded_bucket.py --images 20000 --budget-mb 4

Synthetic diagrams of one family crowd a few hash buckets, and those grow with the rows (the largest holds
~3,200 candidate images at 60,000 rows, ~55,000 at 1,000,000), so `curation.images.bucket_confirm.
confirmed_in_buckets` moves a bucket whose thumbnails pass a byte budget to a temporary file and confirms it
in tiles (`confirmed_in_tiles`). This builds one such bucket from the recipe's own images: the first N rows of
the synthetic source (`configs/data/mini.yaml`'s levels, every family or one), every image with its real hash in one
band-0 bucket (every pair within the threshold is a candidate), and each thumbnail prepared as the pipeline
sends it. Each way runs in a fresh process; the table gives its seconds, its peak RSS above the records it
starts from (``ru_maxrss`` minus RSS after building them), and the pairs it confirms (which must be equal).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 2 ** 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _records(n: int, family: str) -> list[bytes]:
    from curation.images import duplicates as D
    from curation.images.hashes import hash_from_hex
    from curation.images.validate import ValidateConfig, validate_row
    from curation.synthetic import generate

    records = []
    for row in generate(n, seed=0, families=None if family == "all" else [family], level=(1, 2)):
        row = validate_row(row, ValidateConfig())
        member = D.thumbnail_member(row["image_key"], hash_from_hex(row["image_hash"]), D.thumbnail_of(row))
        records.append(D.bucket_record((0, 0), member))
    return records


def _child(n: int, family: str, budget: int, threshold: int) -> None:
    import numpy as np

    from curation.images import bucket_confirm as BC
    from curation.images import duplicates as D

    records = _records(n, family)
    start = _rss()
    t = time.perf_counter()
    pairs = sorted(BC.confirmed_in_buckets(iter(records), threshold, bucket_bytes=budget))
    seconds = time.perf_counter() - t
    hashes = np.array(sorted({int.from_bytes(r[D.BAND_BYTES + 32:D.BAND_BYTES + 40], "big") for r in records}), np.uint64)
    candidates = sum(len(i) for i, _ in D.owned_pair_blocks(0, hashes, threshold))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rise": max(0, peak - start), "pairs": len(pairs), "candidates": candidates,
                      "digest": hash(tuple(pairs)), "bytes": sum(len(r) for r in records)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--images", type=int, nargs="+", default=[4000, 12000], help="images in the bucket")
    ap.add_argument("--family", default="all", help="synthetic family of the bucket's images (default: every family)")
    ap.add_argument("--budget-mb", type=float, default=None,
                    help="bytes a bucket may hold before it goes to a file (default: the pipeline's BUCKET_BYTES)")
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(int(args.child[0]), args.family, int(args.child[1]), args.threshold)
        return
    sys.path.insert(0, str(ROOT))
    from curation.images.bucket_confirm import BUCKET_BYTES

    budget = int(args.budget_mb * MB) if args.budget_mb else BUCKET_BYTES
    print(f"one bucket of {args.family} diagrams, threshold {args.threshold}; tiles when over {budget / MB:.0f} MB")
    print(f"{'images':>7} {'MB':>6} {'way':<6} {'seconds':>8} {'peak rise MB':>13} {'candidate pairs':>16} {'confirmed':>9}")
    for n in args.images:
        out = {}
        for way, b in (("whole", 1 << 62), ("tiles", budget)):
            cmd = [sys.executable, __file__, "--child", str(n), str(b), "--family", args.family,
                   "--threshold", str(args.threshold)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"PYTHONHASHSEED": "0", **__import__("os").environ})
            if res.returncode:
                sys.exit(res.stderr)
            out[way] = json.loads(res.stdout.strip().splitlines()[-1])
            r = out[way]
            print(f"{n:>7,} {r['bytes'] / MB:>6.1f} {way:<6} {r['seconds']:>8.1f} {r['rise'] / MB:>13.1f} {r['candidates']:>16,} {r['pairs']:>9,}")
        if out["whole"]["digest"] != out["tiles"]["digest"]:
            sys.exit(f"different pairs at {n} images: whole {out['whole']['pairs']}, tiles {out['tiles']['pairs']}")


if __name__ == "__main__":
    main()
