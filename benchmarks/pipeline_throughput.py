"""Curate pipeline throughput and peak memory against a plain Python loop doing the same work.

    .venv/bin/python benchmarks/pipeline_throughput.py                  # 2k, 20k, 200k rows (long: ~1 h on 2 cores)
    .venv/bin/python benchmarks/pipeline_throughput.py --rows 2000 20000 --two-workers-up-to 20000

Every measurement is a fresh Python process started from the recipe `configs/data/mini.yaml` with
`synthetic.n` set to the row count (program teachers, no model); the time is the process's wall
time, interpreter start and imports included (what `sightline data` costs a user), and the peak RSS
is the process's own `ru_maxrss` or, with worker processes, the largest of them.

What each side does, with the same `curation` functions on the same rows:
- **loop**: one process, no Beam. Generate and validate every row and keep the valid ones in a
  list; hash bands (`duplicates.band_entries`) in a dict of buckets; the images in each bucket's owned
  candidate pairs (`duplicates.pair_members`); thumbnails of those images; each bucket's pairs confirmed
  (`duplicates.confirmed_in_bucket`, as the pipeline does); split groups; duplicate rows (`duplicate_key`,
  `duplicates_in_group`); then per row `placed`, `decontam_row`, the program caption and distill
  teachers (`curation.generation.rollouts`), `captioned`, `distilled` (rewrite, verify, select), `rl_row`; the
  tables written as zstd Parquet in 1,000-row chunks.
- **pipeline**: `pipelines.curate.run` with 1 or 2 local worker processes: the same rules as Beam
  transforms in two passes (valid rows spilled to Parquet work shards and read back, hash buckets
  and candidate thumbnails shuffled), then the store's commit (every shard re-read for its row count
  and sha256, the manifest). The loop writes no manifest and keeps every row in memory instead.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs/data/mini.yaml"
CHUNK = 1000


def _recipe(n: int, out: str):
    from curation.recipe import load_data_recipe

    return load_data_recipe(str(RECIPE), [f"output_root={out}", f"synthetic.n={n}"])


def _valid_rows(recipe) -> tuple[list[dict], list[dict]]:
    from curation.rejects import Reject, reject_row
    from curation.synthetic import generate
    from curation.images.validate import validate_row

    syn = recipe.synthetic
    level = tuple(syn.level) if isinstance(syn.level, list) else syn.level
    rows, rejects = [], []
    for row in generate(syn.n, seed=syn.seed, image_size=syn.image_size, families=syn.families, level=level):
        out = validate_row(dict(row, source="synthetic"), recipe.validate)
        if isinstance(out, Reject):
            rejects.append(reject_row("validate", row, out.reason, out.detail))
        else:
            rows.append(out)
    return rows, rejects


def _split_groups(rows: list[dict], threshold: int) -> dict[str, str]:
    """Image key -> split group, for images with a confirmed near-copy (the pipeline's scan, as a loop:
    buckets of hash bands, the images in pairs a bucket owns, their thumbnails, each bucket confirmed)."""
    from curation.images import duplicates as D
    from curation.images.hashes import hash_from_hex

    buckets: dict[tuple[int, int], bytearray] = defaultdict(bytearray)
    first_row: dict[str, dict] = {}
    for row in rows:
        first_row.setdefault(row["image_key"], row)
        for band, member in D.band_entries(row["image_key"], hash_from_hex(row["image_hash"]), threshold):
            buckets[band] += member
    members = {band: D.pair_members(band, bytes(packed), threshold) for band, packed in buckets.items()}
    thumbs = {k: D.thumbnail_of(first_row[k]) for k in sorted({k for ms in members.values() for k, _ in ms})}
    groups: dict[str, str] = {}
    for band, ms in members.items():
        for a, b in D.confirmed_in_bucket(band, [(k, h, thumbs[k]) for k, (_, h) in ms], threshold):
            for image, group in D.group_edges(a, b):
                groups[image] = min(group, groups.get(image, group))
    return {k: g for k, g in groups.items() if k != g}


def _drops(rows: list[dict], groups: dict[str, str], scope: str) -> dict[str, dict]:
    from curation.images import duplicates as D
    from schemas import normalize_question

    problems: dict[str, list] = defaultdict(list)
    for r in rows:
        q = normalize_question(r["question"])
        key = D.duplicate_key(groups.get(r["image_key"], r["image_key"]), q, r["answer"], scope)
        problems[key].append((r["id"], D.row_key(r), r["image_key"], q))
    return {d["key"]: d for members in problems.values() for d in D.duplicates_in_group(members)}


def loop_job(n: int, out: str) -> dict:
    """The baseline: one process, one loop over the rows, the pipeline's rules called directly."""
    from curation.generation.assemble import distilled, rl_eligible, rl_row, teachable
    from curation.decontam import decontam_row
    from curation.images.duplicates import placed
    from curation.generation.prompts import DISTILL_PROMPT_VERSION
    from curation.rejects import Reject, reject_row
    from curation.generation.rollouts import generator_for

    recipe = _recipe(n, out)
    cap, dis = recipe.caption, recipe.distill
    rows, rejects = _valid_rows(recipe)
    groups = _split_groups(rows, recipe.dedup.threshold)
    drops = _drops(rows, groups, recipe.dedup.scope)
    captioner, reasoner = generator_for(cap).load(), generator_for(dis).load()
    teacher = dis.record(DISTILL_PROMPT_VERSION)
    tables: dict[str, list] = defaultdict(list)
    written = 0
    for row in rows:
        kept = placed(row, drops, groups, recipe.test_fraction, recipe.val_fraction, recipe.split_salt)
        kept = kept if isinstance(kept, Reject) else decontam_row(kept, None)
        if not isinstance(kept, Reject) and kept["split"] == "train" and teachable(kept, cap):
            kept = _caption(kept, captioner, cap)
            done = kept if isinstance(kept, Reject) else distilled(kept, **_texts(reasoner, kept, dis), teacher=teacher,
                                                                    select=recipe.select)
            if isinstance(done, Reject):
                kept = done
            else:
                tables["traces"] += [complete("traces", t) for t in done.traces]
                tables["sft"] += [complete("sft", s) for s in done.sft]
        if isinstance(kept, Reject):
            rejects.append(reject_row("dedup", row, kept.reason, kept.detail))
            continue
        row = kept
        if rl_eligible(row, recipe.rl.keep_open) is None:
            table = "rl" if row["split"] == "train" else row["split"]
            tables[table].append(complete(table, rl_row(row)))
        tables["examples"].append(complete("examples", row))
        written += 1
        for table, buf in tables.items():
            if len(buf) >= CHUNK:
                _flush(table, buf, out)
    tables["rejects"] += [complete("rejects", r) for r in rejects]
    for table, buf in tables.items():
        _flush(table, buf, out)
    return {"examples": written}


def complete(table: str, row: dict) -> dict:
    """Exactly the table's columns (pipelines.transforms.complete, without importing Beam)."""
    from schemas import TABLES

    return {name: row.get(name) for name in TABLES[table].names}


def _caption(row, captioner, cap):
    from curation.generation.assemble import captioned
    from curation.generation.rollouts import request_for, texts_or_errors

    out = texts_or_errors(captioner, [request_for(row, cap)])[0]
    return captioned(row, out.get("texts"), out.get("error"), cap.model_id)


def _texts(reasoner, row, dis) -> dict:
    from curation.generation.rollouts import request_for, texts_or_errors

    out = texts_or_errors(reasoner, [request_for(row, dis)])[0]
    return {"texts": out.get("texts"), "error": out.get("error")}


def _flush(table: str, buf: list, out: str) -> None:
    import pyarrow.parquet as pq

    from schemas import to_table

    if not buf:
        return
    d = Path(out) / table
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(table, buf), d / f"part-{len(list(d.iterdir())):05d}.parquet", compression="zstd")
    buf.clear()


def pipeline_job(n: int, out: str, workers: int) -> dict:
    import contextlib
    import io

    from pipelines.curate import run

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        info = run(_recipe(n, out), workers=workers)
    return {"examples": info.manifest["tables"]["examples"]}


def child(kind: str, n: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as out:
        res = loop_job(n, out) if kind == "loop" else pipeline_job(n, out, workers)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest worker process
    res["peak_rss_mb"] = max(own, workers_rss) / 1024
    print(json.dumps(res))


def measure(kind: str, n: int, workers: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=os.environ.get("TMPDIR", str(ROOT / ".tmp")))
    t = time.perf_counter()
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{kind} ({n} rows, {workers} workers) failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]), seconds=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[2000, 20000, 200000])
    ap.add_argument("--two-workers-up-to", type=int, default=20000,
                    help="skip the 2-worker run above this many rows (default: %(default)s)")
    ap.add_argument("--child", choices=["loop", "pipeline"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.n, a.workers)
    results = []
    for n in a.rows:
        runs = [("python loop", "loop", 1), ("pipeline, 1 worker", "pipeline", 1)]
        runs += [("pipeline, 2 workers", "pipeline", 2)] if n <= a.two_workers_up_to else []
        for label, kind, workers in runs:
            r = measure(kind, n, workers)
            results.append((label, n, r))
            print(f"  {label:20s} {n:7d} rows  {r['seconds']:7.1f} s  {r['peak_rss_mb']:6.0f} MB", file=sys.stderr,
                  flush=True)
    loop = {n: r["seconds"] for label, n, r in results if label == "python loop"}
    one = {n: r["seconds"] for label, n, r in results if label == "pipeline, 1 worker"}
    print(f"recipe {RECIPE.relative_to(ROOT)} (synthetic.n = rows), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'run':20s} {'rows':>7s} {'seconds':>8s} {'rows/s':>7s} {'vs loop':>8s} {'vs 1 worker':>11s} {'peak RSS MB':>11s}")
    print("-" * 78)
    for label, n, r in results:
        print(f"{label:20s} {n:7d} {r['seconds']:8.1f} {n / r['seconds']:7.0f} {loop[n] / r['seconds']:7.2f}x "
              f"{one[n] / r['seconds']:10.2f}x {r['peak_rss_mb']:11.0f}")


if __name__ == "__main__":
    main()
