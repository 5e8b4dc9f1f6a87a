"""Curate pipeline throughput and memory, against a plain single-process Python loop.

    .venv/bin/python benchmarks/pipeline_throughput.py [--rows 2000] [--big 20000] [--skip-big]

Both sides do the same work on the same synthetic rows with the program teachers (no model
stages): generate, validate (bounded decode), perceptual hash, near/exact dedup, caption,
distill 2 traces, rewrite, verify, select, and write the tables as Parquet. Each measurement
runs in a fresh subprocess so peak RSS (ru_maxrss) belongs to that run alone; with several
workers it is the largest worker process, not the sum.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loop_job(n: int, out: str) -> dict:
    """The baseline: one process, one loop, same functions, Parquet written in chunks."""
    import hashlib

    import pyarrow.parquet as pq

    from curation.dedup import DEFAULT_THRESHOLD, exact_key, find_near_duplicates, hash_hex, phash64
    from curation.distill import SelectConfig, rewrite_trace, select_traces
    from curation.images import check_image
    from curation.synthetic import caption_from_scene, generate, solution_from_scene
    from curation.teachers import _rng
    from curation.verify import format_ok, verify
    from pipelines.transforms import assign_split, complete, rl_row
    from schemas import normalize_question, to_table

    t0 = time.perf_counter()
    rows, hashes = [], {}
    for row in generate(n, seed=0):
        row["split"] = assign_split(row["id"], 0.15)
        c = check_image(row["images"][0]["bytes"])
        if not c.ok:
            continue
        row.update(width=c.width, height=c.height, image_hash=hash_hex(phash64(c.image)))
        rows.append(row)
        # the mini recipe's dedup scope: images compared among rows with the same question and answer
        scope = (normalize_question(row["question"]), normalize_question(row["answer"]))
        hashes.setdefault(scope, []).append((row["id"], int(row["image_hash"], 16)))
    dropped = set()
    for group in hashes.values():
        dropped |= set(find_near_duplicates(group, DEFAULT_THRESHOLD))
    seen = set()
    out_rows = {"examples": [], "traces": [], "rl": [], "sft": []}
    cfg = SelectConfig()
    for row in rows:
        key = exact_key(row["question"], row["image_hash"], answer=row["answer"])
        if row["id"] in dropped or key in seen:
            continue
        seen.add(key)
        if row["split"] == "train":
            row["caption"] = caption_from_scene(row["scene"])
            traces = []
            for i in range(2):
                raw = solution_from_scene(row["scene"], error_rate=0.25, rng=_rng(0, row["id"], i))
                text, edits = rewrite_trace(raw)
                v = verify(text, row["answer"], choices=row.get("choices"), answer_type=row.get("answer_type"))
                traces.append({"id": row["id"], "source": row["source"], "source_id": row["source_id"],
                               "trace_id": hashlib.sha256(f"{row['id']}{i}".encode()).hexdigest()[:24],
                               "trace": text, "raw_trace": raw, "rewrite_edits": edits, "correct": v.correct,
                               "format_ok": format_ok(text), "length_chars": len(text), "extracted": v.extracted,
                               "verdict_reason": v.reason})
            select_traces(traces, cfg)
            out_rows["traces"] += [complete("traces", t) for t in traces]
            out_rows["rl"].append(complete("rl", rl_row(row)))
        out_rows["examples"].append(complete("examples", row))
        for table, buf in out_rows.items():
            if len(buf) >= 1000:
                _flush(table, buf, out, to_table, pq)
    for table, buf in out_rows.items():
        _flush(table, buf, out, to_table, pq)
    return {"seconds": time.perf_counter() - t0}


def _flush(table, buf, out, to_table, pq):
    if not buf:
        return
    d = Path(out) / table
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(table, buf), d / f"part-{len(list(d.iterdir())):05d}.parquet", compression="zstd")
    buf.clear()


def pipeline_job(n: int, out: str, workers: int) -> dict:
    import contextlib
    import io

    from pipelines.curate import resolve_config, run

    cfg = resolve_config(str(ROOT / "configs/data/mini.yaml"), [f"output_root={out}", f"synthetic.n={n}"])
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        info = run(cfg, workers=workers)
    return {"seconds": time.perf_counter() - t0, "examples": info.manifest["tables"]["examples"]}


def child(args) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as out:
        res = loop_job(args.n, out) if args.kind == "loop" else pipeline_job(args.n, out, args.workers)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res["peak_rss_mb"] = max(self_rss, kids_rss) / 1024
    print(json.dumps(res))


def measure(kind: str, n: int, workers: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--big", type=int, default=20000)
    ap.add_argument("--skip-big", action="store_true", help="skip the memory run at --big rows")
    ap.add_argument("--child", choices=["loop", "pipeline"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        a.kind = a.child
        return child(a)
    runs = [("python loop", "loop", a.rows, 1), ("pipeline, 1 worker", "pipeline", a.rows, 1),
            ("pipeline, 2 workers", "pipeline", a.rows, 2)]
    if not a.skip_big:
        runs += [("python loop", "loop", a.big, 1), ("pipeline, 1 worker", "pipeline", a.big, 1),
                 ("pipeline, 2 workers", "pipeline", a.big, 2)]
    results = []
    for label, kind, n, w in runs:
        r = measure(kind, n, w)
        results.append((label, n, r))
        print(f"  {label:22s} {n:6d} rows  {r['seconds']:7.1f} s", file=sys.stderr, flush=True)
    base = {n: r["seconds"] for label, n, r in results if label == "python loop"}
    print(f"{'run':22s} {'rows':>6s} {'seconds':>8s} {'rows/s':>8s} {'vs loop':>8s} {'peak RSS MB':>12s}")
    print("-" * 70)
    for label, n, r in results:
        print(f"{label:22s} {n:6d} {r['seconds']:8.1f} {n / r['seconds']:8.0f} "
              f"{base[n] / r['seconds']:7.2f}x {r['peak_rss_mb']:12.0f}")


if __name__ == "__main__":
    main()
