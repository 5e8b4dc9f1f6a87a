"""The difficulty pipeline: k rollouts per `rl` prompt by a policy -> verify -> pass rate -> a new version.

    sightline difficulty --data data/mini --model runs/mini/sft/final --k 8 [--version N]
        [--backend transformers|vllm] [--temperature 1.0] [--max-new-tokens 64] [--batch-size 8]
        [--limit N] [--workers 1] [--engine-args '{max_model_len: 4096}'] [--levels '[2, 3]']
        [--max-pass-rate 0.5] [--max-per-example 1] [--keep-traces false] [--round N]

Graph (Beam, FnApiRunner named explicitly so it never tries to download the Prism runner):
  chosen rl rows -> RunInference(GenerationHandler over the policy: loaded once per worker, k sampled
  completions per prompt, batched, failing rows retried alone) -> rollout_verdict (the GRPO accuracy
  reward's verifier; ``curation.difficulty.policy.rollout_traces``) -> scores, rejects, traces, sft.
Then ``curation.difficulty.derive.derive_version`` publishes the child version: `rl` gets ``n_rollouts``,
``n_correct`` and ``pass_rate`` (``curation.difficulty.rules.with_scores``); `traces` gets every rollout
(verdict, status, teacher ``policy:<folder>@<weights hash>``) and `sft` the selected correct ones
(rejection sampling: the curate pipeline's select rule, shortest first, ``--max-per-example`` per
prompt), each in a shard of its own beside the parent's; every other table is copied byte for byte.
A prompt whose rollouts or verification fail goes to `rejects` (stage ``difficulty``) instead of `rl`,
so ``stage_counts.difficulty`` reads in = out + rejected. Rows outside ``--levels``, above
``--max-pass-rate`` or past ``--limit`` (counted among the chosen ones) are carried unscored. The
store may be a local folder or object storage.
"""
from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import typing
from pathlib import Path

from curation.difficulty.derive import derive_version
from curation.difficulty.policy import chosen_rows, pass_salt, rollout_traces
from curation.difficulty.rules import (
    STAGE,
    difficulty_counts,
    difficulty_reject,
    row_key,
    score_rollouts,
    with_scores,
)
from curation.difficulty.settings import DifficultyConfig
from curation.errors import SightlineError
from curation.generation.judge import Judge, require_local_model
from curation.generation.prompts import PROMPT_VERSION
from curation.generation.teachers import checkpoint_hash, policy_id
from curation.loader import build as build_config
from curation.loader import parse_value, to_dict
from curation.rejects import Reject, error_reject_row
from curation.store.versions import Store
from pipelines.args import doc_parser
from schemas.counters import Count, Outcome, Stage


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_rows(job: tuple[int, str, list[int]]):
    """One rl shard -> its chosen rows (``curation.difficulty.policy.chosen_rows``), tagged with ``_key`` (``row_key``)."""
    import pyarrow.parquet as pq

    shard, path, chosen = job
    chosen, row = set(chosen), 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        for r in batch.to_pylist():
            if row in chosen:
                yield {**r, "_key": row_key(shard, row)}
            row += 1


def rollout_verdict(result, teacher: dict | None, select, salt: str, judge=None):
    """PredictionResult(rl row, texts | error) -> a scores row ``{_key, n_rollouts, n_correct}``, or the prompt's
    reject; with ``teacher``, every rollout as a ``traces`` row and the selected ones as ``sft`` rows too.
    ``judge`` (a ``curation.generation.judge.Judge``) decides the rollouts of ``open`` rows."""
    from pipelines.transforms import REJECTS, Routed, table_row

    row = result.example
    texts, error = result.inference.get("texts"), result.inference.get("error")
    out = (score_rollouts(row, texts, error, judge) if teacher is None
           else rollout_traces(row, texts, error, teacher, select, salt, judge))
    if isinstance(out, Reject):  # keyed like its scores, so the derived version leaves the prompt out of rl
        return Routed(outputs=((REJECTS, difficulty_reject(row, out)),),
                      counts=((Count(Stage.DIFFICULTY, Outcome.REJECTED), 1),))
    scores = out if teacher is None else {"n_rollouts": out.n_rollouts, "n_correct": out.n_correct}
    outputs = () if teacher is None else (*(("traces", table_row("traces", t)) for t in out.traces),
                                          *(("sft", table_row("sft", x)) for x in out.sft))
    return Routed(row={"_key": row["_key"], **scores}, outputs=outputs,
                  counts=((Count(Stage.DIFFICULTY, Outcome.ROLLOUTS), scores["n_rollouts"]),
                          (Count(Stage.DIFFICULTY, Outcome.CORRECT), scores["n_correct"])))


def _failed_batch_reject(bad) -> dict:
    """RunInference's (row, error) dead letter -> the row's ``difficulty_error`` reject, keyed like its scores."""
    return {"_key": bad[0].get("_key"), **error_reject_row(STAGE, bad[0], bad[1])}


def build(p, jobs: list, cfg: DifficultyConfig, work: Path, teacher: dict | None = None, salt: str = "") -> None:
    """The graph: rollouts -> verify -> scores and rejects (JSON lines), traces and sft (Parquet) under ``work``."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from pipelines.inference import GenerationHandler
    from pipelines.runner import write_tables
    from pipelines.transforms import REJECTS, RunStage

    rows = (p | "rl shards" >> beam.Create(jobs) | "Spread shards" >> beam.Reshuffle()
            | "Read rl" >> beam.FlatMap(read_rows))
    handler = GenerationHandler(cfg.policy_spec(), progress_every=max(cfg.batch_size, 32))
    inferred = rows | "Rollouts" >> RunInference(handler).with_exception_handling()
    tags = ("traces", "sft") if teacher is not None else ()
    judge = Judge(cfg.judge) if cfg.judge.enabled else None
    scored = inferred[0] | "Verify" >> beam.ParDo(RunStage(STAGE, rollout_verdict, teacher, cfg.select(), salt, judge)).with_outputs(
        REJECTS, *tags, main="scores")
    failed = (inferred[1].failed_inferences
              | "Unbatch failures" >> beam.FlatMap(lambda batch_err: [(e, batch_err[1]) for e in batch_err[0]])
              | "Failures to rejects" >> beam.Map(_failed_batch_reject))
    (scored["scores"] | "Scores json" >> beam.Map(json.dumps)
     | "Write scores" >> beam.io.WriteToText(str(work / "scores"), file_name_suffix=".jsonl"))
    ((scored[REJECTS], failed) | "All rejects" >> beam.Flatten() | "Rejects json" >> beam.Map(json.dumps)
     | "Write rejects" >> beam.io.WriteToText(str(work / "rejects"), file_name_suffix=".jsonl"))
    if tags:
        write_tables([(t, scored[t]) for t in tags], work, label="Write rollouts", prefix=STAGE)


def _chosen(store, parent: int, cfg: DifficultyConfig) -> list[list[int]]:
    """Per rl shard, the rows to roll out (levels, max_pass_rate, limit): two light columns read, no images."""
    import pyarrow.parquet as pq

    shards = []
    for f in store.local_files("rl", parent):
        t = pq.read_table(f, columns=["level", "pass_rate"])
        shards.append((t.column("level").to_pylist(), t.column("pass_rate").to_pylist()))
    return chosen_rows(shards, cfg.levels, cfg.max_pass_rate, cfg.limit)


def _read_rows(files: list[Path]) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for f in files for r in pq.read_table(f).to_pylist()]


def _rollouts(store, parent: int, cfg: DifficultyConfig, teacher: dict | None) -> tuple[dict, list[dict], dict, int]:
    """Run the graph over ``parent``'s chosen rl rows: (scores by key, rejects with their ``_key``,
    {"traces": rows, "sft": rows} sorted by trace id, rl rows in)."""
    from pipelines.runner import new_pipeline
    from training.callbacks import read_jsonl

    files = store.local_files("rl", parent)  # verified local copies when the store is on object storage
    chosen = _chosen(store, parent, cfg)
    jobs = [(shard, str(files[shard]), rows) for shard, rows in enumerate(chosen) if rows]
    n_in = sum(e["rows"] for e in store.manifest(parent)["files"]["rl"])
    n_chosen = sum(map(len, chosen))
    filters = "".join([f", levels {cfg.levels}" if cfg.levels is not None else "",
                       f", pass rate <= {cfg.max_pass_rate} or unscored" if cfg.max_pass_rate is not None else "",
                       f", limit {cfg.limit}" if cfg.limit is not None else ""])
    _log(f"difficulty: {store.root} v{parent:04d}, {n_chosen} of {n_in} rl prompts{filters} x k={cfg.k} rollouts "
         f"by {cfg.backend}:{cfg.model} (T={cfg.temperature}, {cfg.max_new_tokens} new tokens, batch {cfg.batch_size})")
    added: dict[str, list[dict]] = {"traces": [], "sft": []}
    with tempfile.TemporaryDirectory(prefix="sightline-difficulty-") as tmp:
        work = Path(tmp)
        if jobs:
            pipeline = new_pipeline(cfg.workers)
            build(pipeline, jobs, cfg, work, teacher, pass_salt(parent))
            pipeline.run().wait_until_finish()
        scores = {s["_key"]: s for f in sorted(work.glob("scores*")) for s in read_jsonl(f)}
        rejects = [r for f in sorted(work.glob("rejects*")) for r in read_jsonl(f)]
        for table in added:  # in trace id order, whatever order the workers wrote them in: re-runs are identical
            added[table] = sorted(_read_rows(sorted((work / table).glob("*.parquet"))),
                                  key=lambda r: (r["trace_id"], r["id"]))
    return scores, rejects, added, n_in


def run(data: str | Path, version: int | str | None, cfg: DifficultyConfig) -> int:
    """Score ``data``'s rl prompts by ``cfg.model``'s pass rate over ``cfg.k`` rollouts; returns the new version.

    With ``cfg.keep_traces`` the child version's ``traces`` are the parent's plus every rollout of the scored
    prompts, and its ``sft`` the parent's plus the selected correct rollouts (teacher ``policy_id(cfg.model)``).
    """
    if not cfg.model:
        raise SightlineError("difficulty needs --model (a policy checkpoint folder)")
    if not (Path(cfg.model) / "config.json").is_file():
        raise SightlineError(f"--model {cfg.model} is not a checkpoint folder (no config.json)")
    require_local_model(cfg.judge)  # the pass judges in this process's workers
    try:
        content_hash = checkpoint_hash(cfg.model)
    except ValueError as e:
        raise SightlineError(f"--model {cfg.model}: {e}") from None
    store = Store(data)
    parent = store.resolve(version)
    spec = cfg.policy_spec()
    teacher_id = policy_id(cfg.model)  # the `teacher` of every traces and sft row this pass adds
    policy = {"backend": cfg.backend, "model": teacher_id, "teacher": teacher_id, "path": str(cfg.model),
              "content_hash": content_hash, "prompt_version": PROMPT_VERSION, "sampling": spec.sampling()}
    teacher = {k: policy[k] for k in ("model", "prompt_version", "sampling")} if cfg.keep_traces else None
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    scores, rejects, added, n_in = _rollouts(store, parent, cfg, teacher)
    rejected = {r.pop("_key") for r in rejects}
    if len(rejected) != len(rejects):
        raise SightlineError("difficulty: a prompt was rejected twice; nothing was published")
    counts = difficulty_counts(n_in, scores, rejected, time.perf_counter() - t0)
    counts |= {"prompts": counts["scored"] + counts["rejected"], "traces_added": len(added["traces"]),
               "sft_added": len(added["sft"])}
    before = store.manifest(parent)["tables"]
    record = {**policy, "stage": STAGE, "round": cfg.round, "parent": parent,
              "judge": cfg.judge.judge_id if cfg.judge.enabled else None}
    info = derive_version(
        store, parent, stage=STAGE, stage_counts=counts,
        config={"stage": STAGE, "data": str(store.root), "parent": parent, **to_dict(cfg),
                "parent_config": store.manifest(parent).get("config", {})},
        rewrite={"rl": lambda shard, table: with_scores(table, shard, scores, rejected)},
        # the latest pass under "policy"; under its teacher string too, so a later version still says which
        # round and parent each policy that wrote its rows came from
        add={"rejects": rejects, **added}, teachers={"policy": record, teacher_id: record},
        expect_rows={"rl": counts["out"], **{t: before.get(t, 0) + len(rows) for t, rows in added.items()}})
    rate = f"{counts['correct'] / counts['rollouts']:.3f}" if counts["rollouts"] else "n/a"
    _log(f"difficulty: {counts['scored']} prompts scored, {counts['rejected']} rejected, mean pass rate {rate}; "
         f"{counts['traces_added']} traces and {counts['sft_added']} sft rows added ({counts['seconds']:.1f} s)")
    print(f"wrote {info.path}  (parent v{parent:04d}; look: sightline audit --data {store.root} difficulty)")
    return info.version


def main(argv: list[str] | None = None) -> int:
    from dataclasses import MISSING, fields, is_dataclass

    ap = doc_parser("sightline difficulty", __doc__, epilog=None)
    ap.add_argument("--data", required=True, help="dataset folder data/<name> (or gs://, s3://)")
    ap.add_argument("--version", default="latest", help="input version: N, vNNNN or latest (the new one's parent)")
    hints = typing.get_type_hints(DifficultyConfig)
    for f in fields(DifficultyConfig):  # one flag per field; the defaults live in DifficultyConfig only
        default = f.default if f.default is not MISSING else f.default_factory()
        # mapping, section, list and true/false flags are read as YAML: '{max_model_len: 4096}', '{backend: program}',
        # '[2, 3]', false
        as_yaml = isinstance(default, (dict, bool)) or is_dataclass(default) or "list" in str(hints[f.name])
        shown = to_dict(default) if is_dataclass(default) else default
        if f.name == "judge":
            shown = {"backend": default.backend}
        ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, required=f.name == "model",
                        type=(lambda s, key=f.name: parse_value(key, s)) if as_yaml else str,
                        help=f"{f.metadata['help']} (default {'none' if shown is None else shown})")
    a = vars(ap.parse_args(argv))
    data, version = a.pop("data"), a.pop("version")
    run(data, version, build_config(DifficultyConfig, {k: v for k, v in a.items() if v is not None}, "difficulty"))
    return 0
