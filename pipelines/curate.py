"""The curate pipeline (`make data`): ingest -> validate -> dedup -> split -> decontaminate -> caption ->
distill -> verify -> select -> versioned Parquet shards + manifest.

Two Beam passes; only ids, hashes and the thumbnails of candidate near-copies ever cross a shuffle:
  pass 1 (scan):    ingest, validate -> work shards of valid rows; near-copy images (hash-band
                    candidates, confirmed on thumbnails) -> split groups; duplicate rows -> decisions.
  pass 2 (curate):  work shards -> drop duplicates, place each row's split group in train/val/test,
                    decontaminate -> caption (RunInference) -> distill (RunInference) -> verify, select
                    -> tables. Rows no caption teacher can serve, and every val/test row, go to the
                    tables uncaptioned.
The rules are ``curation`` functions (validate_row, duplicates, assemble, ...); this module only wires
them. In-process by default (FnApiRunner named explicitly, so Beam never tries to download its Prism
runner), or on N local processes with --workers N. See docs/dataflow.md for Dataflow.

    sightline data --config configs/data/mini.yaml [--set synthetic.n=500] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from curation.errors import SightlineError
from curation.recipe import DataRecipe, load_data_recipe

WORK_ROW_GROUP_BYTES = 1 << 20


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _write(pcoll, table: str, directory: Path, recipe: DataRecipe, **kw):
    from pipelines.runner import write_table

    kw.setdefault("row_group_bytes", recipe.write.row_group_bytes)
    return write_table(pcoll, table, directory, record_batch_size=recipe.write.record_batch_size, **kw)


# ---------------------------------------------------------------------------- pass 1


def _ingest(p, recipe: DataRecipe):
    """All sources -> (rows, [reject pcolls])."""
    import apache_beam as beam

    from pipelines import transforms as T
    from pipelines.runner import dead_letters

    rows, rejects = [], []
    syn = recipe.synthetic
    if syn.n:
        level = tuple(syn.level) if isinstance(syn.level, list) else syn.level
        params = {"seed": syn.seed, "image_size": syn.image_size, "families": syn.families, "level": level}
        ranges = [(s, min(syn.chunk, syn.n - s)) for s in range(0, syn.n, syn.chunk)]
        out = (p | "Synthetic ranges" >> beam.Create(ranges) | "Spread ranges" >> beam.Reshuffle()
               | "Ingest synthetic" >> beam.ParDo(T.IngestSynthetic(params, "synthetic"))
               .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
        rows.append(out["rows"])
        rejects.append(dead_letters(out["bad"], "ingest"))
    if recipe.sources:
        out = (p | "Source specs" >> beam.Create(recipe.sources) | "Spread specs" >> beam.Reshuffle()
               | "Ingest files" >> beam.ParDo(T.IngestFiles())
               .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
        rows += [out["rows"]]
        rejects += [out[T.REJECTS], dead_letters(out["bad"], "ingest")]
    return (tuple(rows) | "All sources" >> beam.Flatten()) if len(rows) > 1 else rows[0], rejects


def _near_copy_groups(valid, recipe: DataRecipe):
    """Valid rows -> (image key, split group) for every image that has a confirmed near-copy."""
    import apache_beam as beam

    from curation import duplicates as D
    from curation.dedup import hash_from_hex

    th = recipe.dedup.threshold
    pairs = (valid | "Image hashes" >> beam.Map(lambda r: (r["image_key"], hash_from_hex(r["image_hash"])))
             | "Distinct images" >> beam.Distinct()
             | "Hash bands" >> beam.FlatMap(lambda kh: D.image_band_entries(kh[0], kh[1], th))
             | "Group bands" >> beam.GroupByKey()
             | "Candidate pairs" >> beam.FlatMap(lambda kv: D.candidate_pairs(kv[1], th))
             | "Distinct pairs" >> beam.Distinct())
    if recipe.dedup.confirm:
        wanted = (pairs | "Candidate images" >> beam.FlatMap(lambda abd: [abd[0], abd[1]])
                  | "Distinct candidates" >> beam.Distinct() | "As keys" >> beam.Map(lambda k: (k, True)))
        thumbs = (valid
                  | "Candidate rows" >> beam.Filter(lambda r, want: r["image_key"] in want,
                                                    beam.pvalue.AsDict(wanted))
                  | "One row per image" >> beam.Map(lambda r: (r["image_key"], r))
                  | "First row" >> beam.CombinePerKey(lambda rows: next(iter(rows)))
                  | "Thumbnails" >> beam.MapTuple(lambda k, r: (k, D.thumbnail_of(r))))
        by_a = pairs | "Pairs by a" >> beam.Map(lambda abd: (abd[0], abd[1]))
        with_a = ({"pairs": by_a, "thumb": thumbs} | "Join a" >> beam.CoGroupByKey()
                  | "Thumb a" >> beam.FlatMap(lambda kv: [(b, (kv[0], t)) for t in kv[1]["thumb"][:1]
                                                          for b in kv[1]["pairs"]]))
        pairs = ({"pairs": with_a, "thumb": thumbs} | "Join b" >> beam.CoGroupByKey()
                 | "Confirm" >> beam.FlatMap(lambda kv: [(a, kv[0]) for t in kv[1]["thumb"][:1]
                                                         for a, ta in kv[1]["pairs"] if D.near_copies(ta, t)]))
    else:
        pairs = pairs | "Hash decides" >> beam.Map(lambda abd: (abd[0], abd[1]))
    return (pairs | "Group edges" >> beam.FlatMapTuple(D.group_edges)
            | "Smallest in group" >> beam.CombinePerKey(min)
            | "Not alone" >> beam.Filter(lambda kv: kv[0] != kv[1]))


def _duplicate_decisions(valid, groups, recipe: DataRecipe):
    """Rows (light fields only) + split groups -> drop decisions of duplicate rows."""
    import apache_beam as beam

    from curation import duplicates as D
    from schemas import normalize_question

    scope = recipe.dedup.scope
    light = valid | "Light rows" >> beam.Map(lambda r: (r["image_key"], (
        r["id"], D.row_key(r), normalize_question(r["question"]), r["answer"])))

    def keyed(kv):
        image, g = kv[0], kv[1]["group"]
        group = g[0] if g else image
        for rid, rkey, q, answer in kv[1]["rows"]:
            yield D.duplicate_key(group, q, answer, scope), (rid, rkey, image, q)

    return ({"rows": light, "group": groups} | "Join groups" >> beam.CoGroupByKey()
            | "Duplicate keys" >> beam.FlatMap(keyed) | "Group problems" >> beam.GroupByKey()
            | "Drops" >> beam.FlatMap(lambda kv: D.duplicates_in_group(kv[1])))


def build_scan(p, recipe: DataRecipe, staging: Path, work: Path):
    """Pass 1: ingest, validate; write valid rows to work shards, decisions and scan rejects."""
    import apache_beam as beam

    from curation.validate import validate_row
    from pipelines import transforms as T
    from pipelines.runner import dead_letters

    ingested, rejects = _ingest(p, recipe)
    val = (ingested | "Validate" >> beam.ParDo(T.ApplyRule("validate", validate_row, recipe.validate))
           .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    valid = val["rows"]
    rejects += [val[T.REJECTS], dead_letters(val["bad"], "validate")]
    # Work rows: uncompressed (PNG bytes do not compress) and in ~1 MB row groups, so pass 2 can
    # split them into many small read ranges for its workers without shuffling the rows.
    _write(valid | "Work rows" >> beam.Map(lambda r: T.complete("examples", r)), "examples", work, recipe,
           folder="rows", codec="none", row_group_bytes=WORK_ROW_GROUP_BYTES)
    groups = _near_copy_groups(valid, recipe)
    drops = _duplicate_decisions(valid, groups, recipe)
    group_lines = groups | "Group decisions" >> beam.MapTuple(lambda k, g: {"kind": "group", "key": k, "group": g})
    ((drops, group_lines) | "Decisions" >> beam.Flatten() | "Decision json" >> beam.Map(json.dumps, sort_keys=True)
     | "Write decisions" >> beam.io.WriteToText(str(work / "dedup" / "decisions"), file_name_suffix=".jsonl"))
    _write(tuple(rejects) | "Scan rejects" >> beam.Flatten() | "Complete scan rejects" >> beam.Map(
        lambda r: T.complete("rejects", r)), "rejects", staging, recipe, prefix="scan")


# ---------------------------------------------------------------------------- pass 2


def _teachers(train, recipe: DataRecipe, rejects: list):
    """Train rows -> rows after the caption and distill teachers (+ traces, sft), and uncaptioned rows."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from curation.assemble import teachable
    from curation.prompts import DISTILL_PROMPT_VERSION
    from pipelines import transforms as T
    from pipelines.inference import TeacherHandler
    from pipelines.runner import dead_letters, failed_batches

    cap, dis = recipe.caption, recipe.distill
    parts = train | "Teachable?" >> beam.Partition(lambda r, n: 0 if teachable(r, cap) else 1, 2)
    skipped = parts[1] | "Count uncaptioned" >> beam.ParDo(T.PassThrough("caption", "skipped"))
    if cap.backend == "none":  # no row reaches a teacher, and RunInference would still load one at setup
        return [skipped], None
    progress = 500 if cap.backend == "program" else 32
    c = parts[0] | "Caption" >> RunInference(TeacherHandler(cap, progress_every=progress)).with_exception_handling()
    captioned = (c[0] | "After caption" >> beam.ParDo(T.AfterCaption(cap.model_id))
                 .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    rejects += [captioned[T.REJECTS], dead_letters(captioned["bad"], "caption"), failed_batches(c[1], "caption")]
    if dis.backend == "none":
        untraced = captioned["rows"] | "Count untraced" >> beam.ParDo(T.PassThrough("distill", "skipped"))
        return [skipped, untraced], None
    d = (captioned["rows"] | "Distill" >> RunInference(TeacherHandler(dis, progress_every=progress))
         .with_exception_handling())
    fin = (d[0] | "Rewrite+verify+select" >> beam.ParDo(T.AfterDistill(dis.record(DISTILL_PROMPT_VERSION),
                                                                     recipe.select))
           .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    rejects += [fin[T.REJECTS], dead_letters(fin["bad"], "distill"), failed_batches(d[1], "distill")]
    return [skipped, fin["rows"]], fin


def build_curate(p, recipe: DataRecipe, staging: Path, work: Path, eval_index):
    """Pass 2: drop duplicates, split, decontaminate, teachers, verify, select, write every table."""
    import apache_beam as beam

    from curation.decontam import decontam_row
    from pipelines import transforms as T
    from pipelines.runner import dead_letters

    rows = (p | "Work row files" >> beam.Create([str(work / "rows" / "*.parquet")])
            | "Read work rows" >> beam.io.ReadAllFromParquet(desired_bundle_size=WORK_ROW_GROUP_BYTES))
    placed = (rows | "Dedup+split" >> beam.ParDo(T.PlaceRows(str(work / "dedup"), recipe.test_fraction,
                                                             recipe.val_fraction, recipe.split_salt))
              .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    kept = (placed["rows"] | "Decontaminate" >> beam.ParDo(T.ApplyRule("decontam", decontam_row, eval_index))
            .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    rejects = [placed[T.REJECTS], dead_letters(placed["bad"], "dedup"), kept[T.REJECTS],
               dead_letters(kept["bad"], "decontam")]
    by_split = kept["rows"] | "Train or held out" >> beam.Partition(lambda r, n: 0 if r["split"] == "train" else 1, 2)
    taught, fin = _teachers(by_split[0], recipe, rejects)
    out = ((*taught, by_split[1]) | "Rows to write" >> beam.Flatten()
           | "Split tables" >> beam.ParDo(T.WriteSplit(recipe.rl.keep_open)).with_outputs("rl", "val", "test",
                                                                                          main="examples"))
    for table in ("examples", "rl", "val", "test"):
        _write(out[table], table, staging, recipe)
    for table in ("traces", "sft"):
        _write(fin[table] if fin is not None else p | f"No {table}" >> beam.Create([]), table, staging, recipe)
    _write(tuple(rejects) | "Curate rejects" >> beam.Flatten() | "Complete curate rejects" >> beam.Map(
        lambda r: T.complete("rejects", r)), "rejects", staging, recipe, prefix="curate")


# ---------------------------------------------------------------------------- run


def _check_ingest(staging: Path, c: dict[str, int], recipe: DataRecipe) -> None:
    """Stop before publishing when a file source mostly failed to parse (one line: top reason, hint)."""
    from curation.accounting import ingest_reject_counts
    from curation.sources import ingest_health
    from pipelines.summary import read_columns

    files = sorted((staging / "rejects").glob("scan*.parquet"))
    rows = [r for f in files for r in read_columns(f, ["stage", "source", "reason", "detail"])]
    per_source = ingest_reject_counts([(r["stage"], r["source"], r["reason"], r["detail"]) for r in rows])
    for spec in recipe.sources:
        got = per_source.get(spec["name"], {"reasons": {}, "details": {}})
        top = max(got["reasons"], key=got["reasons"].get) if got["reasons"] else None
        message = ingest_health(spec["name"], c.get(f"ingest.in.{spec['name']}", 0), got["reasons"],
                                got["details"].get(top, "") if top else "",
                                recipe.ingest.max_reject_fraction if spec.get("max_reject_fraction") is None
                                else spec["max_reject_fraction"])
        if message:
            raise SightlineError(message + " (nothing was published)")


def run(recipe: DataRecipe, *, workers: int | None = None, beam_args: list[str] | None = None):
    """Run both passes and publish one new version; returns curation.store.VersionInfo."""
    from curation.accounting import ROW_STAGES, accounting, stage_counts
    from curation.config import to_dict
    from curation.decontam import EvalIndex
    from curation.prompts import CAPTION_PROMPT_VERSION, DISTILL_PROMPT_VERSION, PROMPT_VERSION
    from curation.store import Store
    from curation.store_fs import remove_tree
    from pipelines.runner import counters, new_pipeline
    from pipelines.summary import finalize_shards, print_summary, rejects_summary, table_rows

    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    workers = workers or recipe.runner.workers
    store = Store.under(recipe.output_root, recipe.name)
    # A local runner writes into a local spool folder, uploaded at commit (Beam's local runners cannot write
    # every fsspec URL, e.g. memory://); a cloud runner writes straight into the claimed version folder.
    spool = store.is_remote and not any(a.startswith("--runner") for a in beam_args or [])
    eval_index = None
    if recipe.decontam.eval_sets:
        eval_index = EvalIndex.from_files(recipe.decontam.eval_sets, threshold=recipe.dedup.threshold)
    cap, dis = recipe.caption, recipe.distill
    for spec in (cap, dis):
        if spec.backend == "transformers" and not Path(spec.model).exists():
            raise SightlineError(f"{spec.role} teacher: model path {spec.model} does not exist")
    seconds: dict[str, float] = {}
    with store.begin(spool=spool) as st:
        work = st.path / "_work"
        _log(f"[1/2] scan ({f'{workers} processes' if workers > 1 else 'in-process'}): ingest -> validate -> "
             f"near-copy groups -> duplicate decisions")
        t = time.perf_counter()
        p = new_pipeline(workers, beam_args)
        build_scan(p, recipe, st.path, work)
        r1 = p.run()
        r1.wait_until_finish()
        seconds["scan"] = time.perf_counter() - t
        c = counters(r1)
        _log(f"      {c.get('ingest.in', 0)} rows in, {c.get('validate.out', 0)} valid ({seconds['scan']:.1f} s)")
        _check_ingest(st.path, c, recipe)
        if c.get("validate.out", 0):
            _log(f"[2/2] curate: dedup + split + decontam -> caption ({cap.model_id}) -> distill "
                 f"({dis.model_id}, n={dis.n}) -> verify -> select")
            t = time.perf_counter()
            p = new_pipeline(workers, beam_args)
            build_curate(p, recipe, st.path, work, eval_index)
            r2 = p.run()
            r2.wait_until_finish()
            seconds["curate"] = time.perf_counter() - t
            for k, v in counters(r2).items():
                c[k] = c.get(k, 0) + v
        remove_tree(work)  # before commit: a version holds only what its manifest lists
        finalize_shards(st.path)
        by_stage, by_reason = rejects_summary(st.path)
        rows = table_rows(st.path)
        teachers = {"caption": cap.record(CAPTION_PROMPT_VERSION), "distill": dis.record(DISTILL_PROMPT_VERSION),
                    "prompt_version": PROMPT_VERSION}
        info = st.commit(parent=None, config=to_dict(recipe), teachers=teachers,
                         stage_counts=stage_counts(c, by_stage, seconds),
                         accounting=accounting(c, by_stage, rows.get("examples", 0)),
                         extra={"rejects_by_reason": {f"{s}/{r}": n for (s, r), n in sorted(by_reason.items())}})
    print_summary(info, by_reason, ROW_STAGES)
    if cap.backend == "program" and c.get("caption.skipped", 0):
        _log(f"warning: {c['caption.skipped']} train rows have no synthetic scene, so the program captioner cannot "
             f"serve them; they went to rl uncaptioned (no traces). Set caption.backend (transformers | vllm, with "
             f"caption.model) to caption them, or caption.backend: none to say so.")
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sightline data",
        description="Build a new version of a dataset with the Beam curate pipeline "
                    "(also: `sightline data inspect SOURCE`, `data verify --data DIR`, `data versions --data DIR`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  sightline data --config configs/data/mini.yaml --set synthetic.n=500 --workers 2\n\n"
               "recipe keys (--set KEY=VALUE):\n" + _recipe_help())
    p.add_argument("--config", default="configs/data/mini.yaml", help="YAML recipe (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set distill.n=4 (repeatable)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: recipe's runner.workers; 1 = in-process)")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.add_argument("beam_args", nargs="*", metavar="-- BEAM_ARGS",
                   help="after `--`: Beam pipeline options, e.g. -- --runner=DataflowRunner --project=P "
                        "(see docs/dataflow.md; default: in-process local runner)")
    return p


def _recipe_help() -> str:
    from curation.config import describe

    return describe(DataRecipe)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    recipe = load_data_recipe(args.config, args.overrides)
    if args.print_config:
        import yaml

        from curation.config import to_dict

        print(yaml.safe_dump(to_dict(recipe), sort_keys=False))
        return 0
    if args.workers is not None and args.workers < 1:
        raise SightlineError("--workers must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(recipe, workers=args.workers, beam_args=args.beam_args)
    return 0
