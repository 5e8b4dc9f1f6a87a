"""The curate pipeline (`make data`): ingest -> validate -> dedup -> split -> decontaminate -> caption ->
distill -> verify -> select -> versioned Parquet shards + manifest.

Two Beam passes. No row crosses a shuffle; what grows with the rows in pass 1 (band entries, the candidates'
thumbnails, problem keys) meets through spill files in the work folder (pipelines/spill.py), because Beam's
in-process runner holds whatever crosses a shuffle in memory:
  pass 1 (scan):    ingest, validate -> work shards of valid rows; near-copy images (hash-band
                    candidates, confirmed on thumbnails) -> split groups; duplicate rows -> decisions.
  pass 2 (curate):  work shards -> drop duplicates, place each row's split group in train/val/test,
                    decontaminate -> caption (RunInference) -> distill (RunInference) -> verify, select
                    -> tables. Rows no caption teacher can serve, and every val/test row, go to the
                    tables uncaptioned.
The rules are ``curation`` functions (validate_row, duplicates, assemble, ...); this module only wires
them. In-process by default (FnApiRunner named explicitly, so Beam never tries to download its Prism
runner), or on N local processes with --workers N. See docs/dataflow.md for Dataflow.

    sightline data --config configs/data/mini.yaml [--set synthetic.n=500] [--workers 2]   # pipelines/data_cmd.py
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from curation.accounting import ROW_STAGES, accounting, by_detail, empty_result, ingest_reject_counts, stage_counts
from curation.loader import to_dict
from curation.decontam import decontam_row, EvalIndex
from curation.errors import SightlineError
from curation.generation.assemble import distill_record, teachable
from curation.generation.judge import Judge
from curation.generation.prompts import CAPTION_PROMPT_VERSION, PROMPT_VERSION
from curation.images.validate import validate_row
from curation.recipe import DataRecipe
from curation.sources import ingest_health
from curation.store.fs import remove_tree
from curation.store.versions import Store
from pipelines.forkserver import ForkServer
from pipelines.profile import PassProfile, PeakRss, timed_run
from pipelines.summary import finalize_shards, print_summary, read_columns, rejects_summary, table_rows
from schemas.counters import Count, Outcome, Stage

WORK_ROW_GROUP_BYTES = 1 << 20
# Work row files end at ~32 MB: a reader of each 1 MB range parses its file's footer first, and one file per
# bundle (1M rows: 2 GB, 2,000 row groups, a 12 MB footer, 0.23 s to open) made every read pay that ~2,000 times.
WORK_FILE_BYTES = 32 << 20


def work_read_bytes(workers: int, local: bool) -> int:
    """The work rows' read ranges: 1 MB (a row group) for workers to share, or where one process reads them all
    (in-process, on this machine) a whole file: each range opens its file and parses its footer (at 20,000 rows
    1 MB ranges cost ~0.1 s more over both reads)."""
    return WORK_FILE_BYTES if local and workers <= 1 else WORK_ROW_GROUP_BYTES
VALID = Count(Stage.VALIDATE, Outcome.OUT)  # rows that reach pass 2


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _write(streams: list, directory: Path, recipe: DataRecipe, label: str, **kw):
    """Parquet files of ``[(table, rows)]`` under ``directory`` (pipelines.runner.write_tables); returns (table, path)."""
    from pipelines.runner import write_tables

    kw.setdefault("row_group_bytes", recipe.write.row_group_bytes)
    kw.setdefault("file_bytes", recipe.write.file_bytes)
    return write_tables(streams, directory, label=label, record_batch_size=recipe.write.record_batch_size, **kw)


# ---------------------------------------------------------------------------- pass 1


def _ingest(p, recipe: DataRecipe):
    """All sources -> ([rows of each kind of source], [reject pcolls]). Kept apart, not flattened: a Flatten
    of rows holds them all in memory on the local runner."""
    import apache_beam as beam

    from pipelines import transforms
    from pipelines.runner import dead_letters

    rows, rejects = [], []
    syn = recipe.synthetic
    if syn.n:
        level = tuple(syn.level) if isinstance(syn.level, list) else syn.level
        params = {"seed": syn.seed, "image_size": syn.image_size, "families": syn.families, "level": level,
                  "open_share": syn.open_share}
        ranges = [(s, min(syn.chunk, syn.n - s)) for s in range(0, syn.n, syn.chunk)]
        out = (p | "Synthetic ranges" >> beam.Create(ranges) | "Spread ranges" >> beam.Reshuffle()
               | "Ingest synthetic" >> transforms.stage_step(transforms.RunStage(
                   Stage.INGEST, transforms.synthetic_rows, params, "synthetic", many=True, timed=True)))
        rows.append(out["rows"])
        rejects.append(dead_letters(out["bad"], "ingest"))
    if recipe.sources:
        out = (p | "Source specs" >> beam.Create(recipe.sources) | "Spread specs" >> beam.Reshuffle()
               | "Ingest files" >> transforms.stage_step(
                   transforms.RunStage(Stage.INGEST, transforms.source_rows, many=True, timed=True)))
        rows += [out["rows"]]
        rejects += [out[transforms.REJECTS], dead_letters(out["bad"], "ingest", "file errors")]
    return rows, rejects


def build_scan(p, recipe: DataRecipe, staging: str | Path, work: str | Path,
               read_bytes: int = WORK_ROW_GROUP_BYTES):
    """Pass 1: ingest, validate; write valid rows to work shards, decisions and scan rejects.

    ``staging`` (the version being written) and ``work`` (its scratch folder) are local paths or URLs;
    ``read_bytes``: the work rows' read ranges (:func:`work_read_bytes`).
    """
    import apache_beam as beam

    from pipelines import dedup, transforms
    from pipelines.runner import dead_letters

    ingested, rejects = _ingest(p, recipe)
    valid = []
    for i, rows in enumerate(ingested):
        val = rows | f"Validate {i}" >> transforms.stage_step(
            transforms.RunStage(Stage.VALIDATE, validate_row, recipe.validate, timed=True))
        valid.append(val["rows"])
        rejects += [val[transforms.REJECTS], dead_letters(val["bad"], "validate", f"errors {i}")]
    # Work rows: uncompressed (PNG bytes do not compress) and in ~1 MB row groups, so pass 2 can
    # split them into many small read ranges for its workers without shuffling the rows.
    files = _write([("examples", rows) for rows in valid], work, recipe, "Write work rows", prefix="scan",
                   folders={"examples": "rows"}, codec="none", row_group_bytes=WORK_ROW_GROUP_BYTES,
                   file_bytes=WORK_FILE_BYTES)
    _write([("rejects", r) for r in rejects], staging, recipe, "Write scan rejects", prefix="scan")
    work_files = files | "Work row paths" >> beam.MapTuple(lambda _, path: path)
    spill = f"{str(work).rstrip('/')}/spill"  # what would grow with the rows at a shuffle goes through files here
    groups = dedup.near_copy_groups(valid, work_files, recipe, read_bytes, spill)
    drops = dedup.duplicate_decisions(valid, groups, recipe, spill)
    group_lines = groups | "Group decisions" >> beam.MapTuple(lambda k, g: {"kind": "group", "key": k, "group": g})
    decisions = ((drops, group_lines) | "Decisions" >> beam.Flatten()
                 | "Decision json" >> beam.Map(lambda d: {"decision": json.dumps(d, sort_keys=True)}))
    _write([("decisions", decisions)], work, recipe, "Write decisions", folders={"decisions": "dedup"},
           schemas={"decisions": dedup.decisions_layout()})


# ---------------------------------------------------------------------------- pass 2


def _teach(rows, spec, recipe: DataRecipe, failed: list):
    """Rows -> one ``{texts | error}`` result per row from ``spec``'s teacher.

    Model teachers run under RunInference (batched, loaded once per worker; on Dataflow with the
    recipe's ``runner.accelerator`` / ``runner.min_ram`` as resource hints on this stage only).
    Program teachers need no model, so they run as a plain DoFn: no torch import for them.
    """
    import apache_beam as beam

    from pipelines import transforms

    label = spec.stage.capitalize()
    if spec.backend == "program":
        return rows | label >> beam.ParDo(transforms.ProgramTeacher(spec))
    from apache_beam.ml.inference.base import RunInference

    from pipelines.inference import GenerationHandler

    inference = RunInference(GenerationHandler(spec, progress_every=32)).with_exception_handling()
    hints = model_resource_hints(recipe)
    if hints:
        inference = inference.with_resource_hints(**hints)
    out = rows | label >> inference
    # a failed batch is the teacher's failure, not its rows': they go on without what it would have added
    failed.append(out[1].failed_inferences | f"{label} failed batches" >> beam.ParDo(transforms.TeacherBatchFailed(Stage(spec.stage))))
    return out[0]


def model_resource_hints(recipe: DataRecipe) -> dict[str, str]:
    """Beam resource hints for the model stages (``accelerator``, ``min_ram``): empty when the recipe sets none."""
    r = recipe.runner
    return {k: v for k, v in (("accelerator", r.accelerator), ("min_ram", r.min_ram)) if v}


def _teachers(train, recipe: DataRecipe, rejects: list):
    """Train rows -> rows after the caption and distill teachers (+ traces, sft), and uncaptioned rows.

    A reasoner that reads the image itself (``distill.backend: policy``) needs no caption: with
    ``caption.backend: none`` every train row goes straight to it.
    """
    import apache_beam as beam

    from pipelines import transforms
    from pipelines.runner import dead_letters

    cap, dis = recipe.caption, recipe.distill
    parts = train | "Teachable?" >> beam.Partition(lambda r, n: 0 if teachable(r, cap, dis) else 1, 2)
    skipped = parts[1] | "Count uncaptioned" >> beam.ParDo(transforms.PassThrough(Stage.CAPTION, Outcome.SKIPPED))
    if cap.backend == "none" and not dis.reads_image:  # no row reaches a teacher, and RunInference would still load one
        return [skipped], None
    failed: list = []  # rows a teacher failed on: they go on unenriched (enrich, never destroy)
    if cap.backend == "none":
        to_distill = parts[0] | "Count uncaptioned, policy reads" >> beam.ParDo(transforms.PassThrough(Stage.CAPTION, Outcome.SKIPPED))
    else:
        captioned = (_teach(parts[0], cap, recipe, failed) | "After caption" >> transforms.stage_step(
            transforms.RunStage(Stage.CAPTION, transforms.caption_verdict, cap.model_id)))
        rejects += [dead_letters(captioned["bad"], "caption")]
        failed.append(captioned["uncaptioned"])
        to_distill = captioned["rows"]
    if dis.backend == "none":
        untraced = to_distill | "Count untraced" >> beam.ParDo(transforms.PassThrough(Stage.DISTILL, Outcome.SKIPPED))
        return [skipped, untraced, *failed], None
    taught = _teach(to_distill, dis, recipe, failed)
    if not recipe.judge.enabled:
        fin = (taught | "Rewrite+verify+select" >> transforms.stage_step(transforms.RunStage(
            Stage.DISTILL, transforms.distill_verdict, distill_record(dis), recipe.select, not dis.reads_image, timed=True)))
        rejects += [fin[transforms.REJECTS], dead_letters(fin["bad"], "distill")]
        return [skipped, fin["rows"], *failed], fin
    # with a judge: rows batched so that one judge call decides the needs_judge traces of many rows
    per_call = max(1, recipe.judge.batch_size // max(1, dis.n))
    fin = (taught | "Batch for the judge" >> beam.BatchElements(min_batch_size=1, max_batch_size=per_call)
           | "Rewrite+verify+judge+select" >> transforms.stage_step(transforms.RunStage(
               Stage.DISTILL, transforms.distill_verdicts, distill_record(dis), recipe.select, not dis.reads_image,
               Judge(recipe.judge), many=True, timed=True, batch=True)))
    # a batch that failed as a whole: one reject per row of it, so the books still balance
    bad = fin["bad"] | "Unbatch distill errors" >> beam.FlatMap(lambda b: [(r, b[1]) for r in b[0]])
    rejects += [fin[transforms.REJECTS], dead_letters(bad, "distill")]
    return [skipped, fin["rows"], *failed], fin


def build_curate(p, recipe: DataRecipe, staging: str | Path, work: str | Path, eval_index,
                 read_bytes: int = WORK_ROW_GROUP_BYTES):
    """Pass 2: drop duplicates, split, decontaminate, teachers, verify, select, write every table; ``read_bytes``:
    the work rows' read ranges (:func:`work_read_bytes`)."""
    import apache_beam as beam

    from pipelines import dedup, transforms
    from pipelines.runner import dead_letters

    work = str(work).rstrip("/")
    rows = (p | "Work row files" >> beam.Create([f"{work}/rows/*.parquet"])
            | "Read work rows" >> beam.io.ReadAllFromParquet(desired_bundle_size=read_bytes))
    placement = dedup.Placement(f"{work}/dedup", recipe.test_fraction, recipe.val_fraction, recipe.split_salt)
    placed = rows | "Dedup+split" >> transforms.stage_step(transforms.RunStage(Stage.DEDUP, placement))
    kept = placed["rows"] | "Decontaminate" >> transforms.stage_step(
        transforms.RunStage(Stage.DECONTAM, decontam_row, eval_index, timed=True))
    rejects = [placed[transforms.REJECTS], dead_letters(placed["bad"], "dedup"), kept[transforms.REJECTS],
               dead_letters(kept["bad"], "decontam")]
    by_split = kept["rows"] | "Train or held out" >> beam.Partition(lambda r, n: 0 if r["split"] == "train" else 1, 2)
    taught, fin = _teachers(by_split[0], recipe, rejects)
    streams = []
    for i, rows in enumerate([*taught, by_split[1]]):  # each branch written where it is made: no Flatten of rows
        out = rows | f"Split tables {i}" >> beam.ParDo(transforms.RunStage(Stage.SPLIT, transforms.split_tables, recipe.rl.keep_open, recipe.judge.backend != "none")).with_outputs(
            "rl", "val", "test", main="examples")
        streams += [(table, out[table]) for table in ("examples", "rl", "val", "test")]
    streams += [(table, fin[table] if fin is not None else None) for table in ("traces", "sft")]
    streams += [("rejects", r) for r in rejects]
    _write(streams, staging, recipe, "Write tables", prefix="curate")


# ---------------------------------------------------------------------------- run


def _check_ingest(staging: Path, c: dict[Count, int], recipe: DataRecipe) -> None:
    """Stop before publishing when a file source mostly failed to parse (one line: top reason, hint)."""

    files = sorted((staging / "rejects").glob("scan*.parquet"))
    rows = [r for f in files for r in read_columns(f, ["stage", "source", "reason", "detail"])]
    tuples = [(r["stage"], r["source"], r["reason"], r["detail"]) for r in rows]
    per_stage = {stage: ingest_reject_counts(tuples, stage) for stage in ("ingest", "validate")}
    for spec in recipe.sources:
        fraction = (recipe.ingest.max_reject_fraction if spec.get("max_reject_fraction") is None
                    else spec["max_reject_fraction"])
        n_in = c.get(Count(Stage.INGEST, Outcome.IN, spec["name"]), 0)
        for stage in ("ingest", "validate"):  # validate sees what ingest let through
            got = per_stage[stage].get(spec["name"], {"reasons": {}, "details": {}})
            top = max(got["reasons"], key=got["reasons"].get) if got["reasons"] else None
            message = ingest_health(spec["name"], n_in, got["reasons"], got["details"].get(top, "") if top else "",
                                    fraction, stage=stage)
            if message:
                raise SightlineError(message + " (nothing was published)")
            n_in -= sum(got["reasons"].values())


def run(recipe: DataRecipe, *, workers: int | None = None, beam_args: list[str] | None = None,
        profiles: list | None = None):
    """Run both passes and publish one new version; returns curation.store.versions.VersionInfo.

    ``profiles``: a list that receives one ``pipelines.profile.PassProfile`` per pass (elements, seconds and
    rows/s per step from Beam's metrics; the pass's peak RSS, workers included) and one for the commit.
    """
    from pipelines.runner import counters, new_pipeline, runs_locally

    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    workers = workers or recipe.runner.workers
    store = Store.under(recipe.output_root, recipe.name)
    # A local runner writes into a local spool folder, uploaded at commit (Beam's local runners cannot write
    # every fsspec URL, e.g. memory://); a cloud runner writes straight into the claimed version folder.
    local = runs_locally(beam_args)
    spool = store.is_remote and local
    eval_index = None
    if recipe.decontam.eval_sets:
        eval_index = EvalIndex.from_files(recipe.decontam.eval_sets, threshold=recipe.dedup.threshold)
    cap, dis = recipe.caption, recipe.distill
    for spec in (cap, dis, recipe.judge):
        if spec.backend in ("transformers", "policy") and not Path(spec.model).exists():
            raise SightlineError(f"{spec.role} teacher: model path {spec.model} does not exist")
    seconds: dict[str, float] = {}
    # local worker processes are forked from a warm copy of this process (made before any thread starts)
    forks = ForkServer() if local and workers > 1 else contextlib.nullcontext()
    rss = PeakRss(children=workers > 1) if profiles is not None else contextlib.nullcontext()
    with forks, rss, store.begin(spool=spool) as st:
        rss = rss if profiles is not None else None
        work = st.path / "_work"
        _log(f"[1/2] scan ({f'{workers} processes' if workers > 1 else 'in-process'}): ingest -> validate -> "
             f"near-copy groups -> duplicate decisions")
        t = time.perf_counter()
        p = new_pipeline(workers, beam_args)
        build_scan(p, recipe, st.path, work, work_read_bytes(workers, local))
        r1, prof = timed_run(p, "scan", workers, rss)
        seconds["scan"] = time.perf_counter() - t
        _keep(profiles, prof)
        c = counters(r1)
        _log(f"      {c.get(Count(Stage.INGEST, Outcome.IN), 0)} rows in, {c.get(VALID, 0)} valid "
             f"({seconds['scan']:.1f} s)")
        _check_ingest(st.path, c, recipe)
        if c.get(VALID, 0):
            _log(f"[2/2] curate: dedup + split + decontam -> caption ({cap.model_id}) -> distill "
                 f"({dis.model_id}, n={dis.n}) -> verify -> select")
            t = time.perf_counter()
            p = new_pipeline(workers, beam_args)
            build_curate(p, recipe, st.path, work, eval_index, work_read_bytes(workers, local))
            r2, prof = timed_run(p, "curate", workers, rss)
            seconds["curate"] = time.perf_counter() - t
            _keep(profiles, prof)
            for k, v in counters(r2).items():
                c[k] = c.get(k, 0) + v
        t = time.perf_counter()
        if rss is not None:
            rss.reset()
        remove_tree(work)  # before commit: a version holds only what its manifest lists
        finalize_shards(st.path)
        by_stage, by_reason = rejects_summary(st.path)
        rows = table_rows(st.path)
        kept_out = by_detail(c, Stage.SPLIT, Outcome.KEPT_OUT)
        empty = empty_result(c.get(Count(Stage.INGEST, Outcome.IN), 0), rows, kept_out, {f"{s}/{r}": n for (s, r), n in by_reason.items()})
        if empty:
            raise SightlineError(empty + " (nothing was published)")
        teachers = {"caption": cap.record(CAPTION_PROMPT_VERSION), "distill": distill_record(dis),
                    "prompt_version": PROMPT_VERSION}
        if recipe.judge.enabled:  # who decided the needs_judge traces, and the open rows' rewards later
            teachers["judge"] = recipe.judge.record() | {"judge": recipe.judge.judge_id}
        info = st.commit(parent=None, config=to_dict(recipe), teachers=teachers,
                         stage_counts=stage_counts(c, by_stage, seconds),
                         accounting=accounting(c, by_stage, rows.get("examples", 0)),
                         extra={"rejects_by_reason": {f"{s}/{r}": n for (s, r), n in sorted(by_reason.items())}})
        if rss is not None:
            _keep(profiles, PassProfile("commit (shard names, counts, sha256, manifest)", time.perf_counter() - t,
                                        rss.peak_mb))
    print_summary(info, by_reason, ROW_STAGES)
    left = by_detail(c, Stage.INGEST, Outcome.TURNS_LEFT_OUT)
    for name, n in sorted(left.items()):
        _log(f"note: source {name!r}: turns: first kept the first question / answer exchange of each conversation "
             f"and left {n} later exchanges out; set turns: all on the source to make a row of each")
    kept = info.manifest["stage_counts"]["split"].get("kept_out_by_reason", {})
    if kept:
        _log("kept out of rl/val/test (still in examples): "
             + ", ".join(f"{r} x{n}" for r, n in sorted(kept.items(), key=lambda kv: -kv[1])))
    uncaptioned = c.get(Count(Stage.CAPTION, Outcome.SKIPPED), 0)
    if cap.backend == "program" and uncaptioned:
        _log(f"warning: {uncaptioned} train rows have no synthetic scene, so the program captioner cannot "
             f"serve them; they went to rl uncaptioned (no traces). Set caption.backend (transformers | vllm, with "
             f"caption.model) to caption them, or caption.backend: none to say so.")
    return info


def _keep(profiles: list | None, prof) -> None:
    if profiles is not None:
        profiles.append(prof)
