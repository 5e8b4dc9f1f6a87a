"""The difficulty pipeline: k rollouts per `rl` prompt by a policy -> verify -> pass rate -> a new version.

    sightline difficulty --data data/mini --model runs/mini/sft/final --k 8 [--version N]
        [--temperature 1.0] [--max-new-tokens 64] [--batch-size 8] [--limit N] [--workers 1]

Graph (Beam, FnApiRunner named explicitly so it never tries to download the Prism runner):
  rl shards -> rows -> BatchElements + RunInference(RolloutHandler: the policy, loaded once per
  worker, k sampled completions per prompt, batched) -> Score (curation.verify.verify on each
  completion, the GRPO accuracy reward's function) -> scores, rejects.
The new version's parent is the input version. `rl` gets ``n_rollouts``, ``n_correct`` and
``pass_rate = n_correct / n_rollouts``; its shards keep their rows, order and names. Every other
table is copied byte for byte. A prompt whose rollouts or verification fail goes to `rejects`
(stage ``difficulty``, a reason, in an extra shard) instead of `rl`, so the manifest's
``stage_counts.difficulty`` reads in = out + rejected. Rows past ``--limit`` are carried unscored.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from curation.errors import SightlineError
from training.difficulty import STAGE, DifficultyConfig

# ---------------------------------------------------------------------------- transforms


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_rows(job: tuple[int, str, int, int | None]) -> Iterable[dict]:
    """One rl shard -> rows tagged with ``_key = "<shard>:<row>"``; rows past the limit are skipped."""
    import pyarrow.parquet as pq

    shard, path, offset, limit = job
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        for r in batch.to_pylist():
            if limit is None or offset + row < limit:
                yield {**r, "_key": f"{shard}:{row}"}
            row += 1


class Policy:
    """The loaded checkpoint (Beam's shared-model cache keeps a weak reference, which a tuple cannot take)."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor


def _rollout_handler(cfg: DifficultyConfig, model: str, progress_every: int):
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult

    class RolloutHandler(ModelHandler):
        """rl rows in, PredictionResult(row, {"texts": [k completions]} or {"error": ...}) out.

        Prompts are rendered and decoded as ``curation.models.generate_texts`` does for the
        held-out score (the full conversational prompt through the processor's chat template),
        sampled like GRPO's rollouts. A failing batch is retried row by row.
        """

        def __init__(self):
            super().__init__()
            self._done, self._t0 = 0, None

        def load_model(self):
            from curation.models import load_model_and_processor

            return Policy(*load_model_and_processor(model, dtype=cfg.dtype, device=cfg.device))

        def _generate(self, rows: Sequence[dict], loaded) -> list[list[str]]:
            import hashlib
            import io

            import torch
            from PIL import Image

            from curation.models import generate_texts

            policy, processor = loaded.model, loaded.processor
            images = [[Image.open(io.BytesIO(im["bytes"])).convert("RGB") for im in (r.get("images") or [])]
                      for r in rows]
            torch.manual_seed(cfg.seed + int(hashlib.sha256(rows[0]["id"].encode()).hexdigest()[:8], 16))
            texts = generate_texts(policy, processor, [r["prompt"] for r in rows], images,
                                   max_new_tokens=cfg.max_new_tokens, batch_size=len(rows), progress=False,
                                   do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                                   num_return_sequences=cfg.k)
            assert len(texts) == cfg.k * len(rows), "generate returned the wrong number of sequences"
            return [texts[i * cfg.k:(i + 1) * cfg.k] for i in range(len(rows))]  # prompt-major, as HF returns

        def run_inference(self, batch, loaded, inference_args=None):
            try:
                outs = [{"texts": t} for t in self._generate(batch, loaded)]
            except Exception:  # noqa: BLE001 - isolate the failing rows
                outs = []
                for row in batch:
                    try:
                        outs.append({"texts": self._generate([row], loaded)[0]})
                    except Exception as e:  # noqa: BLE001 - one bad row becomes one reject
                        outs.append({"error": f"{type(e).__name__}: {e}"[:2000]})
            self._progress(len(batch))
            return [PredictionResult(example=r, inference=o, model_id=model) for r, o in zip(batch, outs)]

        def _progress(self, n: int) -> None:
            self._t0 = self._t0 or time.perf_counter()
            before, self._done = self._done, self._done + n
            if progress_every and before // progress_every != self._done // progress_every:
                rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
                _log(f"  rollouts: {self._done} prompts x {cfg.k} ({rate:.1f} prompts/s)")

        def batch_elements_kwargs(self):
            return {"min_batch_size": 1, "max_batch_size": cfg.batch_size}

        def get_metrics_namespace(self) -> str:
            return "sightline_difficulty"

    return RolloutHandler()


def _score_fn():
    import apache_beam as beam

    from pipelines.transforms import REJECTS, Counted
    from schemas import make_reject

    class Score(Counted):
        """Verify each rollout: a scores row ``{_key, n_rollouts, n_correct}``, or a reject with its reason."""

        stage = STAGE

        def process(self, result):
            from curation.verify import verify

            row, out = result.example, result.inference
            self.count("in")
            if "error" in out:
                self.count("rejected")
                yield self._reject(row, "rollout_error", out["error"])
                return
            try:
                correct = [bool(verify(t, row["solution"], choices=row.get("choices"),
                                       answer_type=row.get("answer_type")).correct) for t in out["texts"]]
            except Exception as e:  # noqa: BLE001 - a verifier bug must not take the batch down
                self.count("rejected")
                yield self._reject(row, "verify_error", f"{type(e).__name__}: {e}")
                return
            self.count("out")
            self.count("rollouts", len(correct))
            self.count("correct", sum(correct))
            yield {"_key": row["_key"], "n_rollouts": len(correct), "n_correct": sum(correct)}

        def _reject(self, row, reason, detail):
            question = next((p["text"] for m in row.get("prompt") or [] for p in m.get("content") or []
                             if p.get("type") == "text"), None)
            return beam.pvalue.TaggedOutput(REJECTS, {"_key": row["_key"], **make_reject(
                STAGE, reason, source=row.get("source") or "?", source_id=str(row.get("source_id", "?")),
                id=row.get("id"), detail=detail, question=question)})

    return Score()


def build(p, jobs: list, cfg: DifficultyConfig, model: str, work: Path) -> None:
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from pipelines.transforms import REJECTS

    rows = (p | "rl shards" >> beam.Create(jobs) | "Spread shards" >> beam.Reshuffle()
            | "Read rl" >> beam.FlatMap(read_rows))
    progress = max(cfg.batch_size, 32)
    inferred = rows | "Rollouts" >> RunInference(_rollout_handler(cfg, model, progress)).with_exception_handling()
    scored = (inferred[0] | "Verify" >> beam.ParDo(_score_fn()).with_outputs(REJECTS, main="scores"))
    failed = (inferred[1].failed_inferences
              | "Unbatch failures" >> beam.FlatMap(lambda be: [(e, be[1]) for e in be[0]])
              | "Failures to rejects" >> beam.Map(_failed_batch_reject))
    (scored["scores"] | "Scores json" >> beam.Map(json.dumps)
     | "Write scores" >> beam.io.WriteToText(str(work / "scores"), file_name_suffix=".jsonl"))
    ((scored[REJECTS], failed) | "All rejects" >> beam.Flatten() | "Rejects json" >> beam.Map(json.dumps)
     | "Write rejects" >> beam.io.WriteToText(str(work / "rejects"), file_name_suffix=".jsonl"))


def _failed_batch_reject(bad) -> dict:
    from pipelines.transforms import dead_letter_to_reject

    reject = dead_letter_to_reject(STAGE)(bad)
    reject["reason"] = "rollout_error"
    return {"_key": bad[0].get("_key"), **reject}


# ---------------------------------------------------------------------------- run


def _read_jsonl(folder: Path, prefix: str) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob(prefix + "*")) for line in f.read_text().splitlines()
            if line.strip()]


def _rewrite_rl(src: Path, dst: Path, shard: int, scores: dict[str, dict], rejected: set[str]) -> tuple[int, int]:
    """``src`` with the counts filled in (rejected rows left out) -> ``dst``; returns (rows in, rows out)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.store import write_parquet
    from schemas import check_table

    t = pq.read_table(src)
    keys = [f"{shard}:{i}" for i in range(t.num_rows)]
    n, c = t.column("n_rollouts").to_pylist(), t.column("n_correct").to_pylist()
    for i, key in enumerate(keys):
        if key in scores:
            n[i], c[i] = scores[key]["n_rollouts"], scores[key]["n_correct"]
    rate = [ci / ni if ni else None for ni, ci in zip(n, c)]
    t = t.set_column(t.schema.get_field_index("n_rollouts"), "n_rollouts", pa.array(n, pa.int32()))
    t = t.set_column(t.schema.get_field_index("n_correct"), "n_correct", pa.array(c, pa.int32()))
    t = t.set_column(t.schema.get_field_index("pass_rate"), "pass_rate", pa.array(rate, pa.float64()))
    keep = [k not in rejected for k in keys]
    out = check_table("rl", t.filter(pa.array(keep)))
    write_parquet(out, dst)
    return t.num_rows, out.num_rows


def run(data: str | Path, version: int | str | None, cfg: DifficultyConfig) -> int:
    """Score ``data``'s rl prompts by ``cfg.model``'s pass rate over ``cfg.k`` rollouts; returns the new version."""

    from curation.store import Store, write_parquet
    from pipelines.runner import new_pipeline
    from schemas import check_table, to_table

    if not cfg.model:
        raise SightlineError("difficulty needs --model (a policy checkpoint folder)")
    if not (Path(cfg.model) / "config.json").is_file():
        raise SightlineError(f"--model {cfg.model} is not a checkpoint folder (no config.json)")
    store = Store(data)
    parent = store.resolve(version)
    manifest = store.manifest(parent)
    base = store.path(parent)
    rl_files = manifest["files"]["rl"]
    jobs, offset, limit = [], 0, cfg.limit
    for i, e in enumerate(rl_files):
        if e["rows"] and (limit is None or offset < limit):
            jobs.append((i, str(base / e["path"]), offset, limit))
        offset += e["rows"]
    n_in = offset
    n_scored = n_in if limit is None else min(limit, n_in)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    _log(f"difficulty: {store.root} v{parent:04d}, {n_scored} of {n_in} rl prompts x k={cfg.k} rollouts by "
         f"{cfg.model} (T={cfg.temperature}, {cfg.max_new_tokens} new tokens, batch {cfg.batch_size})")
    t0 = time.perf_counter()
    with store.begin() as st:
        work = st.path / "_work"
        if jobs:
            pipeline = new_pipeline(cfg.workers)
            build(pipeline, jobs, cfg, cfg.model, work)
            pipeline.run().wait_until_finish()
        scores = {s["_key"]: s for s in _read_jsonl(work, "scores")}
        rejects = _read_jsonl(work, "rejects")
        rejected_keys = {r.pop("_key") for r in rejects}
        shutil.rmtree(work, ignore_errors=True)
        for table, entries in manifest["files"].items():  # every other table: the same bytes
            if table == "rl":
                continue
            for e in entries:
                dst = st.path / e["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(base / e["path"], dst)
        rows_out = 0
        for i, e in enumerate(rl_files):
            rows_out += _rewrite_rl(base / e["path"], st.path / e["path"], i, scores, rejected_keys)[1]
        if rejects:
            write_parquet(check_table("rejects", to_table("rejects", rejects)),
                          st.path / "rejects" / "difficulty-00000-of-00001.parquet")
        rollouts = sum(s["n_rollouts"] for s in scores.values())
        correct = sum(s["n_correct"] for s in scores.values())
        seconds = round(time.perf_counter() - t0, 2)
        counts = {"in": n_in, "out": rows_out, "rejected": n_in - rows_out, "scored": len(scores),
                  "unscored": n_in - len(scores) - (n_in - rows_out), "rollouts": rollouts, "correct": correct,
                  "seconds": seconds}
        assert counts["rejected"] == len(rejected_keys), "a rejected prompt is missing from rejects"
        by_reason = dict(manifest.get("rejects_by_reason") or {})
        for r in rejects:
            key = f"{STAGE}/{r['reason']}"
            by_reason[key] = by_reason.get(key, 0) + 1
        teachers = dict(manifest.get("teachers") or {})
        teachers["policy"] = {"backend": "transformers", "model": f"transformers:{cfg.model}", "stage": STAGE,
                              "sampling": {"n": cfg.k, "temperature": cfg.temperature, "top_p": cfg.top_p,
                                           "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed}}
        info = st.commit(parent=parent, config={"stage": STAGE, "data": str(store.root), "parent": parent,
                                                **asdict(cfg), "parent_config": manifest.get("config", {})},
                         teachers=teachers, stage_counts={**manifest.get("stage_counts", {}), STAGE: counts},
                         accounting=manifest.get("accounting", {}), extra={"rejects_by_reason": by_reason})
    rate = f"{correct / rollouts:.3f}" if rollouts else "n/a"
    _log(f"difficulty: {len(scores)} prompts scored, {counts['rejected']} rejected, mean pass rate {rate} "
         f"({seconds:.1f} s)")
    print(f"wrote {info.path}  (parent v{parent:04d}; look: sightline audit --data {store.root} difficulty)")
    return info.version


def main(argv: list[str] | None = None) -> int:
    from dataclasses import fields

    from curation.config import build

    ap = argparse.ArgumentParser(prog="sightline difficulty", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder data/<name>")
    ap.add_argument("--version", default="latest", help="input version: N, vNNNN or latest (the new one's parent)")
    for f in fields(DifficultyConfig):  # one flag per field; the defaults live in DifficultyConfig only
        default = f.default if f.default is not None else "none"
        ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, required=f.name == "model",
                        help=f"{f.metadata['help']} (default {default})")
    a = vars(ap.parse_args(argv))
    data, version = a.pop("data"), a.pop("version")
    run(data, version, build(DifficultyConfig, {k: v for k, v in a.items() if v is not None}, "difficulty"))
    return 0
