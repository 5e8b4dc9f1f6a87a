"""Curate pipeline throughput and peak memory against a plain Python loop doing the same work.

    .venv/bin/python benchmarks/pipeline_throughput.py                  # 2k, 20k, 200k rows (long: ~1 h on 2 cores)
    .venv/bin/python benchmarks/pipeline_throughput.py --rows 2000 20000 --two-workers-up-to 20000
    .venv/bin/python benchmarks/pipeline_throughput.py --rows 20000 1000000 --no-loop-above 200000

Every measurement is a fresh Python process started from the recipe `configs/data/mini.yaml` with
`synthetic.n` set to the row count (program teachers, no model); the time is the process's wall
time, interpreter start and imports included (what `sightline data` costs a user; the repo's modules are compiled
to bytecode first, as after a user's first run), and the peak RSS
is the process's own `ru_maxrss`, or for the pipeline the largest sum over it and its worker processes
sampled every 50 ms (`pipelines.profile.PeakRss`), whichever is larger.

Then, for one size (`--stages-at`, default the largest with a loop run), a table per stage: the loop's
seconds (a stopwatch around the same calls) next to the pipeline steps doing that work (Beam's
execution-time metric, `pipelines.profile`), what only the pipeline does (spilling work rows, reading
them back, shuffles, the runner between steps), and each pass's wall time and peak RSS; last, the raw
speed of the libraries underneath (`benchmarks/library_speed.py`).

What each side does, with the same `curation` functions on the same rows:
- **loop**: one process, no Beam. Generate and validate every row and keep the valid ones in a
  list; hash bands (`duplicates.band_entries`) in a dict of buckets; the images in each bucket's owned
  candidate pairs (`duplicates.pair_members`); thumbnails of those images; each bucket's pairs confirmed
  (`bucket_confirm.confirmed_in_bucket`, as the pipeline does); split groups; duplicate rows (`duplicate_key`,
  `duplicates_in_group`); then per row `placed`, `decontam_row`, the program caption and distill
  teachers (`curation.generation.rollouts`), `captioned`, `distilled` (rewrite, verify, select), `rl_row`; the
  tables written as zstd Parquet in 1,000-row chunks.
- **pipeline**: `pipelines.curate.run` with 1 or 2 local worker processes: the same rules as Beam
  transforms in two passes (valid rows spilled to Parquet work shards and read back; band entries,
  candidate thumbnails and problem keys grouped through spill files, pipelines/spill.py), then the
  store's commit (every shard re-read for its row count and sha256, the manifest). The loop writes no manifest and keeps every row in memory instead.
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
PACKAGES = ("schemas", "curation", "pipelines", "training", "benchmarks")

# The loop's stages and the pipeline steps (pipelines.profile, Beam's metrics) doing the same work; the
# steps not listed here are the pipeline's own plumbing (shuffles, spills, reads), shown as "pipeline only".
STAGES = {
    "generate": ["Synthetic ranges", "Spread ranges", "Ingest synthetic"],
    "validate (decode, phash)": ["Validate"],
    "hash bands": ["Hash bands", "Bucket members"],
    "candidate pairs": ["Candidates", "Buckets of images", "Owner index files"],
    "thumbnails": ["Thumbnails"],
    "confirm near-copies": ["Confirm", "Group edges", "Smallest in group", "Not alone"],
    "duplicate rows": ["Images in groups", "Problem keys", "Group problems",
                       "Problems of images", "Group problems of groups", "Drops in groups", "Drops"],
    "dedup + split": ["Dedup+split"],
    "decontam": ["Decontaminate"],
    "caption": ["Teachable?", "Count uncaptioned", "Caption", "After caption"],
    "distill, verify, select": ["Distill", "Rewrite+verify+select"],
    "rows to tables": ["Train or held out", "Split tables"],
    "write Parquet": ["Write tables"],
}


class Stopwatch:
    """Seconds and rows per named stage of the loop."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self._t = time.perf_counter()

    def lap(self, stage: str, rows: int = 0) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._t
        self.rows[stage] += rows
        self._t = now

    def as_dict(self) -> dict:
        return {k: {"seconds": v, "rows": self.rows[k]} for k, v in self.seconds.items()}


def _recipe(n: int, out: str):
    from curation.recipe import load_data_recipe

    return load_data_recipe(str(RECIPE), [f"output_root={out}", f"synthetic.n={n}"])


def _valid_rows(recipe, watch: Stopwatch) -> tuple[list[dict], list[dict]]:
    from curation.images.validate import validate_row
    from curation.rejects import Reject, reject_row
    from curation.synthetic import generate

    syn = recipe.synthetic
    level = tuple(syn.level) if isinstance(syn.level, list) else syn.level
    rows, rejects = [], []
    made = generate(syn.n, seed=syn.seed, image_size=syn.image_size, families=syn.families, level=level)
    watch.lap("generate")
    for row in made:
        watch.lap("generate", 1)
        out = validate_row(dict(row, source="synthetic"), recipe.validate)
        if isinstance(out, Reject):
            rejects.append(reject_row("validate", row, out.reason, out.detail))
        else:
            rows.append(out)
        watch.lap("validate (decode, phash)", 1)
    return rows, rejects


def _split_groups(rows: list[dict], threshold: int, watch: Stopwatch) -> dict[str, str]:
    """Image key -> split group, for images with a confirmed near-copy (the pipeline's scan, as a loop:
    buckets of hash bands, the images in pairs a bucket owns, their thumbnails, each bucket confirmed)."""
    from curation.images import bucket_confirm as BC
    from curation.images import duplicates as D
    from curation.images.hashes import hash_from_hex

    buckets: dict[tuple[int, int], bytearray] = defaultdict(bytearray)
    first_row: dict[str, dict] = {}
    for row in rows:
        first_row.setdefault(row["image_key"], row)
        for band, member in D.band_entries(row["image_key"], hash_from_hex(row["image_hash"]), threshold):
            buckets[band] += member
    watch.lap("hash bands", len(rows))
    members = {band: D.pair_members(band, bytes(packed), threshold) for band, packed in buckets.items()}
    wanted = sorted({k for ms in members.values() for k, _ in ms})
    watch.lap("candidate pairs", len(buckets))
    thumbs = {k: D.thumbnail_of(first_row[k]) for k in wanted}
    watch.lap("thumbnails", len(wanted))
    groups: dict[str, str] = {}
    for band, ms in members.items():
        for a, b in BC.confirmed_in_bucket(band, [(k, h, thumbs[k]) for k, (_, h) in ms], threshold):
            for image, group in D.group_edges(a, b):
                groups[image] = min(group, groups.get(image, group))
    watch.lap("confirm near-copies", len(members))
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
    from curation.decontam import decontam_row
    from curation.generation.assemble import distilled, rl_eligible, rl_row, teachable
    from curation.generation.prompts import DISTILL_PROMPT_VERSION
    from curation.generation.rollouts import generator_for
    from curation.images.duplicates import placed
    from curation.rejects import Reject, reject_row

    watch = Stopwatch()
    recipe = _recipe(n, out)
    cap, dis = recipe.caption, recipe.distill
    rows, rejects = _valid_rows(recipe, watch)
    groups = _split_groups(rows, recipe.dedup.threshold, watch)
    drops = _drops(rows, groups, recipe.dedup.scope)
    captioner, reasoner = generator_for(cap).load(), generator_for(dis).load()
    teacher = dis.record(DISTILL_PROMPT_VERSION)
    tables: dict[str, list] = defaultdict(list)
    written = 0
    watch.lap("duplicate rows", len(rows))
    for row in rows:
        kept = placed(row, drops, groups, recipe.test_fraction, recipe.val_fraction, recipe.split_salt)
        watch.lap("dedup + split", 1)
        kept = kept if isinstance(kept, Reject) else decontam_row(kept, None)
        watch.lap("decontam", 1)
        if not isinstance(kept, Reject) and kept["split"] == "train" and teachable(kept, cap):
            kept = _caption(kept, captioner, cap)
            watch.lap("caption", 1)
            done = kept if isinstance(kept, Reject) else distilled(kept, **_texts(reasoner, kept, dis), teacher=teacher,
                                                                    select=recipe.select)
            if isinstance(done, Reject):
                kept = done
            else:
                tables["traces"] += [complete("traces", t) for t in done.traces]
                tables["sft"] += [complete("sft", s) for s in done.sft]
            watch.lap("distill, verify, select", 1)
        if isinstance(kept, Reject):
            rejects.append(reject_row("dedup", row, kept.reason, kept.detail))
            continue
        row = kept
        if rl_eligible(row, recipe.rl.keep_open) is None:
            table = "rl" if row["split"] == "train" else row["split"]
            tables[table].append(complete(table, rl_row(row)))
        tables["examples"].append(complete("examples", row))
        written += 1
        watch.lap("rows to tables", 1)
        for table, buf in tables.items():
            if len(buf) >= CHUNK:
                _flush(table, buf, out)
        watch.lap("write Parquet")
    tables["rejects"] += [complete("rejects", r) for r in rejects]
    for table, buf in tables.items():
        _flush(table, buf, out)
    watch.lap("write Parquet", written)
    return {"examples": written, "stages": watch.as_dict()}


def complete(table: str, row: dict) -> dict:
    """Exactly the table's columns (pipelines.transforms.table_row, without importing Beam)."""
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

    profiles: list = []
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        info = run(_recipe(n, out), workers=workers, profiles=profiles)
    return {"examples": info.manifest["tables"]["examples"], "passes": [p.to_dict() for p in profiles]}


def child(kind: str, n: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as out:
        res = loop_job(n, out) if kind == "loop" else pipeline_job(n, out, workers)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # with worker processes, what the machine holds is their sum with this one (sampled by pipelines.profile)
    res["peak_rss_mb"] = max([own] + [p["peak_rss_mb"] for p in res.get("passes", [])])
    print(json.dumps(res))


def measure(kind: str, n: int, workers: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=os.environ.get("TMPDIR", str(ROOT / ".tmp")))
    # both sides on the Arrow pool `sightline` uses (pipelines/__init__.py): the loop never imports pipelines
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    t = time.perf_counter()
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{kind} ({n} rows, {workers} workers) failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]), seconds=seconds)


def _rows(step: dict) -> int:
    """Rows through a step, as ``pipelines.profile.StepProfile.rows`` counts them (in, or out for a reader, or the
    rows inside its batches)."""
    from pipelines.profile import StepProfile

    return StepProfile(**{k: v for k, v in step.items() if k in StepProfile.__dataclass_fields__}).rows


def stage_table(loop: dict, passes: list[dict], n: int) -> list[str]:
    """The loop's stages next to the pipeline steps doing the same work, then the pipeline's own steps."""
    steps = {}
    for p in passes:
        for st in p["steps"]:
            steps[st["step"]] = st
    lines = [f"per stage at {n:,} rows: loop vs pipeline (1 worker; Beam's execution-time metric per step)",
             f"  {'stage':26s} {'loop s':>8s} {'pipeline s':>10s} {'pipeline/loop':>13s} {'pipeline rows/s':>15s}"]
    claimed = set()
    for stage, names in STAGES.items():
        mine = [st for name, st in steps.items() if name in names or any(name.startswith(x + ":") for x in names)]
        claimed |= {st["step"] for st in mine}
        ls = loop.get(stage, {}).get("seconds", 0.0)
        ps = sum(st["seconds"] for st in mine)
        rows = max([_rows(st) for st in mine], default=0)
        ratio = f"{ps / ls:12.2f}x" if ls > 0.05 else f"{'':>13s}"
        rate = f"{rows / ps:15,.0f}" if ps > 0 else f"{'':>15s}"
        lines.append(f"  {stage:26s} {ls:8.2f} {ps:10.2f} {ratio} {rate}")
    own = sorted(((st["seconds"], name) for name, st in steps.items() if name not in claimed), reverse=True)
    top = ", ".join(f"{name} {sec:.1f}" for sec, name in own[:6] if sec >= 0.05)
    lines.append(f"  {'pipeline only: steps':26s} {'':8s} {sum(x for x, _ in own):10.2f}   ({top})")
    for p in passes:
        if p.get("runner_seconds") is not None:
            lines.append(f"  {'pipeline only: runner':26s} {'':8s} {p['runner_seconds']:10.2f}   ({p['name']} pass)")
    lines += [f"  pass {p['name']}: {p['wall_seconds']:.1f} s, peak RSS {p['peak_rss_mb']:,.0f} MB" for p in passes]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[2000, 20000, 200000])
    ap.add_argument("--two-workers-up-to", type=int, default=20000,
                    help="skip the 2-worker run above this many rows (default: %(default)s)")
    ap.add_argument("--stages-at", type=int, default=None,
                    help="print the per-stage table for this row count (default: the largest with a loop run)")
    ap.add_argument("--no-loop-above", type=int, default=None,
                    help="skip the loop above this many rows (it holds every row in memory)")
    ap.add_argument("--json", type=Path, default=None, help="also write every result (profiles included) here")
    ap.add_argument("--child", choices=["loop", "pipeline"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.n, a.workers)
    from library_speed import library_speeds

    # A user's second run reads the repo's modules as bytecode; compiled once here, so no measured process pays
    # for compiling its imports (the loop imports fewer of them): PYTHONDONTWRITEBYTECODE=1 would make every one.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in PACKAGES)], check=True,
                   stdout=subprocess.DEVNULL)
    load_start = os.getloadavg()
    results = []
    for n in a.rows:
        runs = [("python loop", "loop", 1)] if a.no_loop_above is None or n <= a.no_loop_above else []
        runs += [("pipeline, 1 worker", "pipeline", 1)]
        runs += [("pipeline, 2 workers", "pipeline", 2)] if n <= a.two_workers_up_to else []
        for label, kind, workers in runs:
            r = measure(kind, n, workers)
            results.append((label, n, r))
            print(f"  {label:20s} {n:7d} rows  {r['seconds']:7.1f} s  {r['peak_rss_mb']:6.0f} MB", file=sys.stderr,
                  flush=True)
    floor = library_speeds(2000)
    loop = {n: r for label, n, r in results if label == "python loop"}
    one = {n: r for label, n, r in results if label == "pipeline, 1 worker"}
    print(f"recipe {RECIPE.relative_to(ROOT)} (synthetic.n = rows), {os.cpu_count()} CPUs, load average "
          f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (1-minute)")
    print(f"{'run':20s} {'rows':>9s} {'seconds':>8s} {'rows/s':>7s} {'vs loop':>8s} {'vs 1 worker':>11s} "
          f"{'peak RSS MB':>11s}")
    print("-" * 80)
    for label, n, r in results:
        vs_loop = f"{loop[n]['seconds'] / r['seconds']:7.2f}x" if n in loop else f"{'-':>8s}"
        print(f"{label:20s} {n:9,d} {r['seconds']:8.1f} {n / r['seconds']:7.0f} {vs_loop} "
              f"{one[n]['seconds'] / r['seconds']:10.2f}x {r['peak_rss_mb']:11,.0f}")
    sizes = sorted(one)
    if len(sizes) > 1:
        base = one[sizes[0]]["peak_rss_mb"]
        print("peak RSS, 1 worker, vs the smallest run: "
              + ", ".join(f"{n:,} rows {one[n]['peak_rss_mb'] / base:.2f}x" for n in sizes))
    at = a.stages_at or max(loop, default=None) or max(one)
    if at in one:
        print()
        print("\n".join(stage_table(loop.get(at, {}).get("stages", {}), one[at]["passes"], at)))
    print("\nlibrary floor (one call at a time, 2,000 of the recipe's rows): "
          + ", ".join(f"{k} {v:,.0f}/s" for k, v in floor.items()))
    if a.json:
        a.json.write_text(json.dumps([{"run": label, "rows": n, **r} for label, n, r in results], indent=1))


if __name__ == "__main__":
    main()
