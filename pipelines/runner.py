"""What every Sightline Beam graph shares: the runner choice, Parquet sinks, dead letters, counters."""
from __future__ import annotations

from pathlib import Path

from curation.accounting import NAMESPACE


def pipeline_options(workers: int, beam_args: list[str] | None = None):
    from apache_beam.options.pipeline_options import PipelineOptions

    mode = "multi_processing" if workers > 1 else "in_memory"
    return PipelineOptions(beam_args or [], direct_running_mode=mode, direct_num_workers=max(1, workers))


def runner(beam_args: list[str] | None = None):
    """The in-process FnApiRunner, named so Beam never tries to fetch Prism; `-- --runner=X` overrides."""
    if any(a.startswith("--runner") for a in beam_args or []):
        return None  # PipelineOptions' --runner decides (e.g. DataflowRunner; see docs/dataflow.md)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def new_pipeline(workers: int, beam_args: list[str] | None = None):
    import apache_beam as beam

    return beam.Pipeline(runner=runner(beam_args), options=pipeline_options(workers, beam_args))


def write_table(pcoll, table: str, directory: str | Path, *, prefix: str = "part", folder: str | None = None,
                codec: str = "zstd", row_group_bytes: int = 8 << 20, record_batch_size: int = 256):
    """Parquet shards of ``table``'s schema into ``directory/(folder or table)/prefix-SSSSS-of-NNNNN.parquet``."""
    import apache_beam as beam

    from schemas import SCHEMAS

    folder = folder or table
    return pcoll | f"Write {folder} {prefix}" >> beam.io.WriteToParquet(
        f"{str(directory).rstrip('/')}/{folder}/{prefix}", schema=SCHEMAS[table], codec=codec,
        file_name_suffix=".parquet", row_group_buffer_size=row_group_bytes, record_batch_size=record_batch_size,
        shard_name_template="-SSSSS-of-NNNNN")


def dead_letters(bad, stage: str, what: str = "errors"):
    """with_exception_handling's dead letters -> ``<stage>_error`` rejects rows."""
    import apache_beam as beam

    from pipelines.transforms import dead_letter_to_reject

    return bad | f"{stage} {what} to rejects" >> beam.Map(dead_letter_to_reject(stage))


def failed_batches(dlq, stage: str):
    """RunInference's failed (batch, error) pairs -> one reject per row of the batch."""
    import apache_beam as beam

    rows = dlq.failed_inferences | f"Unbatch {stage} failures" >> beam.FlatMap(
        lambda batch_err: [(row, batch_err[1]) for row in batch_err[0]])
    return dead_letters(rows, stage, "failed batches")


def counters(result) -> dict[str, int]:
    """Sightline's counters of a finished pipeline, plus RunInference's model time per teacher stage."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    q = result.metrics().query(MetricsFilter())
    for c in q["counters"]:
        if c.key.metric.namespace == NAMESPACE:
            v = c.committed if c.committed is not None else c.attempted
            out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(v or 0)
    for d in q["distributions"]:
        ns, name = d.key.metric.namespace, d.key.metric.name
        if ns.startswith(NAMESPACE + "_") and name in ("inference_batch_latency_micro_secs",
                                                       "load_model_latency_milli_secs"):
            v = d.committed if d.committed is not None else d.attempted
            scale = 1000 if name.startswith("load_model") else 1
            key = f"{ns[len(NAMESPACE) + 1:]}.teacher_usecs"
            out[key] = out.get(key, 0) + int((v.sum if v else 0) * scale)
    return out
