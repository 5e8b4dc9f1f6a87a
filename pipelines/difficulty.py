"""The difficulty pipeline: k rollouts per `rl` prompt by a policy -> verify -> pass rate -> a new version.

    sightline difficulty --data data/mini --model runs/mini/sft/final --k 8 [--version N]
        [--backend transformers|vllm] [--temperature 1.0] [--max-new-tokens 64] [--batch-size 8]
        [--limit N] [--workers 1] [--engine-args '{max_model_len: 4096}']

Graph (Beam, FnApiRunner named explicitly so it never tries to download the Prism runner):
  rl shards -> rows -> RunInference(GenerationHandler over the policy: loaded once per worker, k
  sampled completions per prompt, batched, failing rows retried alone) -> ScoreRollouts
  (``curation.difficulty.rules.score_rollouts``: the GRPO accuracy reward's verifier) -> scores, rejects.
Then ``curation.difficulty.derive.derive_version`` publishes the child version: `rl` gets ``n_rollouts``,
``n_correct`` and ``pass_rate`` (``curation.difficulty.rules.with_scores``), every other table is copied byte
for byte, and a prompt whose rollouts or verification fail goes to `rejects` (stage ``difficulty``)
instead of `rl`, so ``stage_counts.difficulty`` reads in = out + rejected. Rows past ``--limit`` are
carried unscored. The store may be a local folder or object storage.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from curation.difficulty.rules import STAGE
from curation.errors import SightlineError
from training.difficulty import DifficultyConfig


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_rows(job: tuple[int, str, int, int | None]):
    """One rl shard -> rows tagged with ``_key`` (``curation.difficulty.rules.row_key``); rows past the limit skipped."""
    import pyarrow.parquet as pq

    from curation.difficulty.rules import row_key

    shard, path, offset, limit = job
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        for r in batch.to_pylist():
            if limit is None or offset + row < limit:
                yield {**r, "_key": row_key(shard, row)}
            row += 1


def _score_rollouts_dofn():
    import apache_beam as beam

    from pipelines.transforms import REJECTS, Counted

    class ScoreRollouts(Counted):
        """PredictionResult(rl row, texts | error) -> a scores row ``{_key, n_rollouts, n_correct}`` or a reject."""

        stage = STAGE

        def process(self, result):
            from curation.difficulty.rules import difficulty_reject, score_rollouts
            from curation.rejects import Reject

            row = result.example
            self.count("in")
            out = score_rollouts(row, result.inference.get("texts"), result.inference.get("error"))
            if isinstance(out, Reject):
                self.count("rejected")
                yield beam.pvalue.TaggedOutput(REJECTS, difficulty_reject(row, out))
                return
            self.count("out")
            self.count("rollouts", out["n_rollouts"])
            self.count("correct", out["n_correct"])
            yield {"_key": row["_key"], **out}

    return ScoreRollouts()


def _failed_batch_reject(bad) -> dict:
    """RunInference's (row, error) dead letter -> the row's ``difficulty_error`` reject, keyed like its scores."""
    from curation.rejects import error_reject_row

    return {"_key": bad[0].get("_key"), **error_reject_row(STAGE, bad[0], bad[1])}


def build(p, jobs: list, cfg: DifficultyConfig, work: Path) -> None:
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from pipelines.inference import GenerationHandler
    from pipelines.transforms import REJECTS

    rows = (p | "rl shards" >> beam.Create(jobs) | "Spread shards" >> beam.Reshuffle()
            | "Read rl" >> beam.FlatMap(read_rows))
    handler = GenerationHandler(cfg.policy_spec(), progress_every=max(cfg.batch_size, 32))
    inferred = rows | "Rollouts" >> RunInference(handler).with_exception_handling()
    scored = inferred[0] | "Verify" >> beam.ParDo(_score_rollouts_dofn()).with_outputs(REJECTS, main="scores")
    failed = (inferred[1].failed_inferences
              | "Unbatch failures" >> beam.FlatMap(lambda batch_err: [(e, batch_err[1]) for e in batch_err[0]])
              | "Failures to rejects" >> beam.Map(_failed_batch_reject))
    (scored["scores"] | "Scores json" >> beam.Map(json.dumps)
     | "Write scores" >> beam.io.WriteToText(str(work / "scores"), file_name_suffix=".jsonl"))
    ((scored[REJECTS], failed) | "All rejects" >> beam.Flatten() | "Rejects json" >> beam.Map(json.dumps)
     | "Write rejects" >> beam.io.WriteToText(str(work / "rejects"), file_name_suffix=".jsonl"))


def _rollouts(store, parent: int, cfg: DifficultyConfig) -> tuple[dict[str, dict], list[dict], int]:
    """Run the graph over ``parent``'s rl shards: (scores by key, rejects with their ``_key``, rl rows in)."""
    from curation.difficulty.rules import shard_jobs
    from pipelines.runner import new_pipeline
    from training.callbacks import read_jsonl

    rows = [e["rows"] for e in store.manifest(parent)["files"]["rl"]]
    files = store.local_files("rl", parent)  # verified local copies when the store is on object storage
    jobs = [(shard, str(files[shard]), offset, cfg.limit) for shard, offset in shard_jobs(rows, cfg.limit)]
    n_in = sum(rows)
    _log(f"difficulty: {store.root} v{parent:04d}, {n_in if cfg.limit is None else min(cfg.limit, n_in)} of "
         f"{n_in} rl prompts x k={cfg.k} rollouts by {cfg.backend}:{cfg.model} (T={cfg.temperature}, "
         f"{cfg.max_new_tokens} new tokens, batch {cfg.batch_size})")
    with tempfile.TemporaryDirectory(prefix="sightline-difficulty-") as tmp:
        work = Path(tmp)
        if jobs:
            pipeline = new_pipeline(cfg.workers)
            build(pipeline, jobs, cfg, work)
            pipeline.run().wait_until_finish()
        scores = {s["_key"]: s for f in sorted(work.glob("scores*")) for s in read_jsonl(f)}
        rejects = [r for f in sorted(work.glob("rejects*")) for r in read_jsonl(f)]
    return scores, rejects, n_in


def run(data: str | Path, version: int | str | None, cfg: DifficultyConfig) -> int:
    """Score ``data``'s rl prompts by ``cfg.model``'s pass rate over ``cfg.k`` rollouts; returns the new version."""
    from curation.config import to_dict
    from curation.difficulty.derive import derive_version
    from curation.difficulty.rules import difficulty_counts, with_scores
    from curation.generation.prompts import PROMPT_VERSION
    from curation.store.versions import Store

    if not cfg.model:
        raise SightlineError("difficulty needs --model (a policy checkpoint folder)")
    if not (Path(cfg.model) / "config.json").is_file():
        raise SightlineError(f"--model {cfg.model} is not a checkpoint folder (no config.json)")
    store = Store(data)
    parent = store.resolve(version)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    scores, rejects, n_in = _rollouts(store, parent, cfg)
    rejected = {r.pop("_key") for r in rejects}
    if len(rejected) != len(rejects):
        raise SightlineError("difficulty: a prompt was rejected twice; nothing was published")
    counts = difficulty_counts(n_in, scores, rejected, time.perf_counter() - t0)
    spec = cfg.policy_spec()
    info = derive_version(
        store, parent, stage=STAGE, stage_counts=counts,
        config={"stage": STAGE, "data": str(store.root), "parent": parent, **to_dict(cfg),
                "parent_config": store.manifest(parent).get("config", {})},
        rewrite={"rl": lambda shard, table: with_scores(table, shard, scores, rejected)}, add={"rejects": rejects},
        teachers={"policy": {**spec.record(PROMPT_VERSION), "stage": STAGE}}, expect_rows={"rl": counts["out"]})
    rate = f"{counts['correct'] / counts['rollouts']:.3f}" if counts["rollouts"] else "n/a"
    _log(f"difficulty: {counts['scored']} prompts scored, {counts['rejected']} rejected, mean pass rate {rate} "
         f"({counts['seconds']:.1f} s)")
    print(f"wrote {info.path}  (parent v{parent:04d}; look: sightline audit --data {store.root} difficulty)")
    return info.version


def main(argv: list[str] | None = None) -> int:
    from dataclasses import MISSING, fields

    from curation.config import build, parse_value

    ap = argparse.ArgumentParser(prog="sightline difficulty", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder data/<name> (or gs://, s3://)")
    ap.add_argument("--version", default="latest", help="input version: N, vNNNN or latest (the new one's parent)")
    for f in fields(DifficultyConfig):  # one flag per field; the defaults live in DifficultyConfig only
        default = f.default if f.default is not MISSING else f.default_factory()
        as_yaml = isinstance(default, dict)  # a mapping flag is written as YAML: '{max_model_len: 4096}'
        ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, required=f.name == "model",
                        type=(lambda s, key=f.name: parse_value(key, s)) if as_yaml else str,
                        help=f"{f.metadata['help']} (default {'none' if default is None else default})")
    a = vars(ap.parse_args(argv))
    data, version = a.pop("data"), a.pop("version")
    run(data, version, build(DifficultyConfig, {k: v for k, v in a.items() if v is not None}, "difficulty"))
    return 0
