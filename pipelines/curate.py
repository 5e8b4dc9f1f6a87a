"""The curate pipeline (`make data`): ingest -> validate -> dedup -> decontaminate -> caption ->
distill -> verify -> select -> versioned Parquet shards + manifest.

Two Beam passes, so memory stays flat with the number of rows: only ids and hashes ever cross a
shuffle, never image bytes.
  pass 1 (scan):    ingest, validate, perceptual hash -> work shards of valid rows; dedup keys ->
                    GroupByKey per hash band (multi-index hashing, no all-pairs) -> decisions.
  pass 2 (curate):  work shards -> apply decisions, decontaminate, split -> caption (RunInference)
                    -> distill (RunInference) -> rewrite, verify, select -> tables.
Both run in-process by default (FnApiRunner named explicitly, so Beam never tries to download its
Prism runner), or on N local processes with --workers N. See docs/dataflow.md for Dataflow.

    sightline data --config configs/data/mini.yaml [--set synthetic.n=500] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from curation.errors import SightlineError
from curation.teachers import TeacherSpec
from pipelines.recipe import load_recipe

_TEACHER_DEFAULTS = {k: v for k, v in asdict(TeacherSpec(role="caption")).items() if k != "role"}

DEFAULTS: dict = {
    "name": "mini",
    "output_root": "data",
    "seed": 0,
    "test_fraction": 0.15,
    "split_salt": "",
    "synthetic": {"n": 0, "seed": 0, "image_size": 112, "families": None, "level": None, "chunk": 250},
    "sources": [],          # file sources: JSONL / Parquet / HF dataset dirs (see curation/sources.py)
    "validate": {"max_pixels": 16_000_000, "min_side": 16, "max_bytes": 50_000_000},
    "dedup": {"threshold": None, "scope": "image"},   # threshold None: curation.dedup.DEFAULT_THRESHOLD
    "decontam": {"eval_sets": []},
    "caption": dict(_TEACHER_DEFAULTS),
    "distill": dict(_TEACHER_DEFAULTS, n=2),
    "select": {"max_per_example": 1, "min_chars": 20, "max_chars": 4000, "max_rewrite_edits": 3},
    "write": {"row_group_bytes": 8 << 20, "record_batch_size": 256},
    "runner": {"workers": 1},
}

WORK_ROW_GROUP_BYTES = 1 << 20
STAGES = ("ingest", "validate", "dedup", "decontam", "caption", "distill")


def resolve_config(path: str | None, overrides: list[str]) -> dict:
    cfg = load_recipe(path, overrides, DEFAULTS)
    if cfg["dedup"]["threshold"] is None:
        from curation.dedup import DEFAULT_THRESHOLD

        cfg["dedup"]["threshold"] = DEFAULT_THRESHOLD
    from pipelines.transforms import DEDUP_SCOPES

    if cfg["dedup"]["scope"] not in DEDUP_SCOPES:
        raise SightlineError(f"dedup.scope must be one of {', '.join(DEDUP_SCOPES)}")
    if not 0 <= cfg["test_fraction"] < 1:
        raise SightlineError("test_fraction must be in [0, 1)")
    if not cfg["synthetic"]["n"] and not cfg["sources"]:
        raise SightlineError("no input: set synthetic.n > 0 or list file sources under `sources:`")
    if not isinstance(cfg["sources"], list):
        raise SightlineError("`sources:` must be a list of source specs")
    for spec in cfg["sources"]:
        from curation.sources import validate_spec

        validate_spec(spec)
    cfg["caption_spec"] = TeacherSpec.from_dict("caption", cfg["caption"])
    cfg["distill_spec"] = TeacherSpec.from_dict("reason", cfg["distill"])
    return cfg


def _options(workers: int, beam_args: list[str] | None = None):
    from apache_beam.options.pipeline_options import PipelineOptions

    mode = "multi_processing" if workers > 1 else "in_memory"
    return PipelineOptions(beam_args or [], direct_running_mode=mode, direct_num_workers=max(1, workers))


def _runner(beam_args: list[str] | None = None):
    """The in-process FnApiRunner, named so Beam never tries to fetch Prism; `-- --runner=X` overrides."""
    if any(a.startswith("--runner") for a in beam_args or []):
        return None  # PipelineOptions' --runner decides (e.g. DataflowRunner; see docs/dataflow.md)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _write(pcoll, table: str, directory: Path, cfg: dict, prefix: str = "part", *, folder: str | None = None,
           codec: str = "zstd", row_group_bytes: int | None = None):
    """Parquet shards of ``table``'s schema into ``directory/(folder or table)/prefix-SSSSS-of-NNNNN.parquet``."""
    import apache_beam as beam

    from schemas import SCHEMAS

    folder = folder or table
    return pcoll | f"Write {folder} {prefix}" >> beam.io.WriteToParquet(
        str(directory / folder / prefix), schema=SCHEMAS[table], codec=codec, file_name_suffix=".parquet",
        row_group_buffer_size=row_group_bytes or cfg["write"]["row_group_bytes"],
        record_batch_size=cfg["write"]["record_batch_size"], shard_name_template="-SSSSS-of-NNNNN")


def _dead_letters(bad, stage: str, what: str = "errors"):
    import apache_beam as beam

    from pipelines.transforms import dead_letter_to_reject

    return bad | f"{stage} {what} to rejects" >> beam.Map(dead_letter_to_reject(stage))


def _failed_batches(dlq, stage: str):
    """RunInference's failed (batch, error) pairs -> one reject per row of the batch."""
    import apache_beam as beam

    rows = dlq.failed_inferences | f"Unbatch {stage} failures" >> beam.FlatMap(
        lambda batch_err: [(row, batch_err[1]) for row in batch_err[0]])
    return _dead_letters(rows, stage, "failed batches")


def build_scan(p, cfg: dict, staging: Path, work: Path):
    """Pass 1: ingest, validate, hash; write valid rows to work shards, dedup decisions, rejects."""
    import apache_beam as beam

    from pipelines import transforms as T

    rows, rejects = [], []
    syn = cfg["synthetic"]
    if syn["n"]:
        params = {k: syn[k] for k in ("seed", "image_size", "families", "level")}
        ranges = [(s, min(syn["chunk"], syn["n"] - s)) for s in range(0, syn["n"], syn["chunk"])]
        out = (p | "Synthetic ranges" >> beam.Create(ranges) | "Spread ranges" >> beam.Reshuffle()
               | "Ingest synthetic" >> beam.ParDo(T.IngestSynthetic(params, "synthetic", cfg["test_fraction"],
                                                                    cfg["split_salt"]))
               .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
        rows.append(out["rows"])
        rejects.append(_dead_letters(out["bad"], "ingest"))
    if cfg["sources"]:
        spec_rows = (p | "Source specs" >> beam.Create(cfg["sources"]) | "Spread specs" >> beam.Reshuffle())
        out = spec_rows | "Ingest files" >> beam.ParDo(T.IngestFiles(cfg["test_fraction"], cfg["split_salt"])) \
            .with_exception_handling(main_tag="rows", dead_letter_tag="bad")
        rows.append(out["rows"])
        rejects.append(out[T.REJECTS])
        rejects.append(_dead_letters(out["bad"], "ingest"))
    if len(rows) > 1:
        ingested = tuple(rows) | "All sources" >> beam.Flatten()
    else:
        ingested = rows[0]
    v = cfg["validate"]
    val = (ingested | "Validate" >> beam.ParDo(T.Validate(v["max_pixels"], v["min_side"], v["max_bytes"]))
           .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    valid = val["rows"]
    rejects += [val[T.REJECTS], _dead_letters(val["bad"], "validate")]

    # Work rows: uncompressed (PNG bytes do not compress) and in ~1 MB row groups, so pass 2 can
    # split them into many small read ranges for its workers without shuffling the rows.
    _write(valid | "Work rows" >> beam.Map(lambda r: T.complete("examples", r)), "examples", work, cfg,
           folder="rows", codec="none", row_group_bytes=WORK_ROW_GROUP_BYTES)

    th, scope = cfg["dedup"]["threshold"], cfg["dedup"]["scope"]
    near = (valid | "Band keys" >> beam.FlatMap(T.band_entries, th, scope)
            | "Group bands" >> beam.GroupByKey()
            | "Near pairs" >> beam.FlatMap(T.near_duplicates, th)
            | "Smallest kept" >> beam.CombinePerKey(min)
            | "Near decision" >> beam.Map(lambda kv: {"kind": "near", "key": kv[0], "kept": kv[1][0],
                                                      "distance": kv[1][1]}))
    from curation.dedup import exact_key

    exact = (valid
             | "Exact keys" >> beam.Map(lambda r: (exact_key(r["question"], r["image_hash"], answer=r["answer"]),
                                                   T.row_key(r)))
             | "Group exact" >> beam.GroupByKey()
             | "Exact decision" >> beam.FlatMap(T.exact_duplicates))
    ((near, exact) | "Decisions" >> beam.Flatten() | "Decision json" >> beam.Map(json.dumps, sort_keys=True)
     | "Write decisions" >> beam.io.WriteToText(str(work / "dedup" / "decisions"), file_name_suffix=".jsonl"))
    all_rejects = tuple(rejects) | "Scan rejects" >> beam.Flatten()
    _write(all_rejects | "Complete scan rejects" >> beam.Map(lambda r: T.complete("rejects", r)),
           "rejects", staging, cfg, prefix="scan")


def build_curate(p, cfg: dict, staging: Path, work: Path, eval_index):
    """Pass 2: dedup decisions + decontam, split, caption, distill, verify, select, write tables."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from curation.prompts import DISTILL_PROMPT_VERSION
    from pipelines import transforms as T
    from pipelines.inference import TeacherHandler

    cap_spec, dis_spec = cfg["caption_spec"], cfg["distill_spec"]
    rows = (p | "Work row files" >> beam.Create([str(work / "rows" / "*.parquet")])
            | "Read work rows" >> beam.io.ReadAllFromParquet(desired_bundle_size=WORK_ROW_GROUP_BYTES))
    kept = (rows | "Dedup+decontam" >> beam.ParDo(T.DedupDecontam(str(work / "dedup"), eval_index))
            .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    rejects = [kept[T.REJECTS], _dead_letters(kept["bad"], "dedup")]
    train = kept["rows"] | "Train rows" >> beam.Filter(lambda r: r["split"] == "train")
    test = kept["rows"] | "Test rows" >> beam.Filter(lambda r: r["split"] == "test")
    held = test | "Held out" >> beam.ParDo(T.HeldOut()).with_outputs("test", main="examples")

    progress = 500 if cap_spec.backend == "program" else 32
    cap = (train | "Caption" >> RunInference(TeacherHandler(cap_spec, progress_every=progress))
           .with_exception_handling())
    captioned = (cap[0] | "After caption" >> beam.ParDo(T.AfterCaption(cap_spec.model_id))
                 .with_exception_handling(main_tag="rows", dead_letter_tag="bad"))
    rejects += [captioned[T.REJECTS], _dead_letters(captioned["bad"], "caption"),
                _failed_batches(cap[1], "caption")]
    teacher = dis_spec.record(DISTILL_PROMPT_VERSION)
    dis = (captioned["rows"] | "Distill" >> RunInference(TeacherHandler(dis_spec, progress_every=progress))
           .with_exception_handling())
    fin = (dis[0] | "Rewrite+verify+select" >> beam.ParDo(T.Finish(teacher, cfg["select"]))
           .with_exception_handling(main_tag="examples", dead_letter_tag="bad"))
    rejects += [fin[T.REJECTS], _dead_letters(fin["bad"], "distill"),
                _failed_batches(dis[1], "distill")]
    examples = (fin["examples"], held["examples"]) | "All examples" >> beam.Flatten()
    _write(examples, "examples", staging, cfg)
    for table in ("traces", "sft", "rl"):
        _write(fin[table], table, staging, cfg)
    _write(held["test"], "test", staging, cfg)
    all_rejects = tuple(rejects) | "Curate rejects" >> beam.Flatten()
    _write(all_rejects | "Complete curate rejects" >> beam.Map(lambda r: T.complete("rejects", r)),
           "rejects", staging, cfg, prefix="curate")


def _counters(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    q = result.metrics().query(MetricsFilter())
    for c in q["counters"]:
        if c.key.metric.namespace == "sightline":
            v = c.committed if c.committed is not None else c.attempted
            out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(v or 0)
    for d in q["distributions"]:  # RunInference's own timings, per teacher role
        ns, name = d.key.metric.namespace, d.key.metric.name
        if ns.startswith("sightline_") and name in ("inference_batch_latency_micro_secs", "load_model_latency_milli_secs"):
            v = d.committed if d.committed is not None else d.attempted
            scale = 1000 if name.startswith("load_model") else 1
            key = f"{ns[len('sightline_'):]}.teacher_usecs"
            out[key] = out.get(key, 0) + int((v.sum if v else 0) * scale)
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cfg: dict, *, workers: int | None = None, beam_args: list[str] | None = None):
    """Run both passes and publish one new version; returns curation.store.VersionInfo."""
    import apache_beam as beam

    from curation.prompts import CAPTION_PROMPT_VERSION, DISTILL_PROMPT_VERSION
    from curation.store import Store
    from pipelines.summary import finalize_shards, print_summary, rejects_summary, stage_counts, table_rows
    from curation.prompts import PROMPT_VERSION

    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    workers = workers or cfg["runner"]["workers"]
    store = Store(Path(cfg["output_root"]) / cfg["name"])
    eval_index = None
    if cfg["decontam"]["eval_sets"]:
        from curation.decontam import EvalIndex

        eval_index = EvalIndex.from_files(cfg["decontam"]["eval_sets"], threshold=cfg["dedup"]["threshold"])
    cap_spec, dis_spec = cfg["caption_spec"], cfg["distill_spec"]
    for spec in (cap_spec, dis_spec):
        if spec.backend != "program" and spec.backend != "vllm" and not Path(spec.model).exists():
            raise SightlineError(f"{spec.role} teacher: model path {spec.model} does not exist")
    seconds: dict[str, float] = {}
    with store.begin() as st:
        work = st.path / "_work"
        mode = f"{workers} processes" if workers > 1 else "in-process"
        _log(f"[1/2] scan ({mode}): ingest -> validate -> hash -> dedup decisions")
        t = time.perf_counter()
        p = beam.Pipeline(runner=_runner(beam_args), options=_options(workers, beam_args))
        build_scan(p, cfg, st.path, work)
        r1 = p.run()
        r1.wait_until_finish()
        seconds["scan"] = time.perf_counter() - t
        c = _counters(r1)
        _log(f"      {c.get('ingest.in', 0)} rows in, {c.get('validate.out', 0)} valid "
             f"({seconds['scan']:.1f} s)")
        if c.get("validate.out", 0):
            _log(f"[2/2] curate: dedup + decontam -> caption ({cap_spec.model_id}) -> distill "
                 f"({dis_spec.model_id}, n={dis_spec.n}) -> verify -> select")
            t = time.perf_counter()
            p = beam.Pipeline(runner=_runner(beam_args), options=_options(workers, beam_args))
            build_curate(p, cfg, st.path, work, eval_index)
            r2 = p.run()
            r2.wait_until_finish()
            seconds["curate"] = time.perf_counter() - t
            for k, v in _counters(r2).items():
                c[k] = c.get(k, 0) + v
        shutil.rmtree(work, ignore_errors=True)
        finalize_shards(st.path)
        by_stage, by_reason = rejects_summary(st.path)
        rows = table_rows(st.path)
        counts = stage_counts(c, by_stage, seconds)
        accounting = {"rows_in": c.get("ingest.in", 0), "rows_written": rows.get("examples", 0),
                      "rows_rejected": sum(v for k, v in by_stage.items() if k != "dedup"),
                      "rows_duplicate": by_stage.get("dedup", 0)}
        resolved = {k: v for k, v in cfg.items() if not k.endswith("_spec")}
        teachers = {"caption": cap_spec.record(CAPTION_PROMPT_VERSION),
                    "reason": dis_spec.record(DISTILL_PROMPT_VERSION), "prompt_version": PROMPT_VERSION}
        info = st.commit(parent=None, config=resolved, teachers=teachers, stage_counts=counts,
                         accounting=accounting, extra={"rejects_by_reason": {
                             f"{s}/{r}": n for (s, r), n in sorted(by_reason.items())}})
    print_summary(info, by_reason, STAGES)
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sightline data",
        description="Build a new version of a dataset with the Beam curate pipeline "
                    "(also: `sightline data verify --data DIR`, `sightline data versions --data DIR`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  sightline data --config configs/data/mini.yaml --set synthetic.n=500 --workers 2")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = resolve_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump({k: v for k, v in cfg.items() if not k.endswith("_spec")}, sort_keys=False))
        return 0
    if args.workers is not None and args.workers < 1:
        raise SightlineError("--workers must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(cfg, workers=args.workers, beam_args=args.beam_args)
    return 0
