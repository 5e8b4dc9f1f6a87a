"""What every Sightline Beam graph shares: the runner choice, Parquet sinks, dead letters, counters."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from schemas.counters import NAMESPACE, Count, Outcome, stage_of_model_namespace
from curation.errors import SightlineError
from schemas import SCHEMAS
from pipelines.forkserver import client_command


class _Options(PipelineOptions):
    """PipelineOptions whose views (``view_as``) are made once per options class.

    Beam asks for a view for every transform it applies, translates and runs (~5 per step), and each new view
    builds an argparse parser of that class's options and parses the flags again: ~40% of a graph's
    construction time. A view is only a window onto the options' one shared dict (setting a value on any view
    sets it for all), and the flags it parses never change, so one view per class answers the same."""

    def view_as(self, cls):
        views = self.__dict__.get("_views")
        if views is None:
            views = {}
            object.__setattr__(self, "_views", views)  # PipelineOptions' own __setattr__ takes option names only
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self):  # a copy (Beam deep-copies a pipeline's options) makes its own views
        state = dict(super().__getstate__())
        state.pop("_views", None)
        return state


_DOFN_BASES = frozenset(beam.DoFn.__mro__)


def _dofn_dir(dofn) -> list[str]:
    """``dir()`` of a DoFn without the members of ``beam.DoFn`` and its bases: its own classes' and instance's.

    Beam looks for state and timer parameters (``userstate.get_dofn_specs``) by walking ``dir(dofn)`` and reading
    every method's signature (``inspect.signature``): ~30 methods, ~0.45 ms per DoFn, eight times per ParDo (two
    at construction, three at translation, two when a worker builds its operations), ~0.3 s of a curate run's
    ~1.3 s of fixed cost at 200 rows. ``beam.DoFn``'s own members never take such parameters (they are Beam's
    defaults: ``process(self, element, *args, **kwargs)``, ``setup(self)``, ...); whatever a DoFn defines or
    overrides, in any class of its own (mixins included) or on the instance, is still listed, so Beam finds the
    same specs (tests/pipelines/test_runner_options.py). Nothing else in Beam reads ``dir()`` of a DoFn."""
    names = set(vars(dofn))
    for cls in type(dofn).__mro__:
        if cls not in _DOFN_BASES:
            names.update(vars(cls))
    return sorted(names)


beam.DoFn.__dir__ = _dofn_dir  # set once, when Sightline builds or runs graphs (pipelines.runner is imported)

# Beam's state sampler (the thread behind each step's execution time) sleeps between samples, from 2 ms up to
# 200 ms, and a bundle cannot end until it wakes: every long bundle ended with the process idle for up to 0.2 s,
# 0.5-0.67 s of a 20,000-row run's 29.6 (measured over its 20 bundles). At 10 ms a bundle waits 10 ms at most;
# the thread takes no interpreter lock to sample, and the steps' seconds come in 10 ms grains instead of 200.
STATE_SAMPLING_MS = 10


def _state_sampling_period(ms: int) -> bool:
    """Beam's ``StateSampler`` made with a sampling period of ``ms`` unless told otherwise (the worker does not
    say); False (nothing changed) where its signature is not the one this was written for."""
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    code = init.__code__
    if code.co_varnames[:code.co_argcount][-1:] != ("sampling_period_ms",) or len(init.__defaults__ or ()) != 1:
        return False
    init.__defaults__ = (ms,)
    return True


_state_sampling_period(STATE_SAMPLING_MS)


def pipeline_options(workers: int, beam_args: list[str] | None = None):
    """Beam options of a Sightline graph. ``pipeline_type_check`` is off: our transforms declare no type hints,
    so Beam's construction-time check had nothing to check, yet inferring every step's output type cost
    ~0.1 s per graph (~40 ms per 100 steps). Runtime type checks were and stay off (Beam's default); what the
    graph computes does not change (only the coders of elements that cross a stage: pickled instead of typed)."""
    check_beam_args(beam_args or [])
    mode = "multi_processing" if workers > 1 else "in_memory"
    return _Options(beam_args or [], direct_running_mode=mode, direct_num_workers=max(1, workers),
                    pipeline_type_check=False)


def check_beam_args(beam_args: list[str]) -> None:
    """Refuse Beam options no ``PipelineOptions`` class knows, before anything runs: Beam itself only logs
    and drops them, so a misspelt ``--dataflow_service_options`` would start a job without its GPUs."""
    import difflib
    import logging

    from apache_beam.options.pipeline_options import PipelineOptions

    if not beam_args:
        return
    log = logging.getLogger("apache_beam.options.pipeline_options")
    level = log.level
    log.setLevel(logging.ERROR)  # Beam warns "Discarding unparseable args": we say it better
    try:
        options = PipelineOptions(beam_args)
        known = options.get_all_options()
        unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(known))
    finally:
        log.setLevel(level)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(known), n=1)
            hints.append(f"--{name}" + (f" (did you mean --{close[0]}?)" if close else ""))
        raise SightlineError(f"unknown Beam option{'s' if len(hints) > 1 else ''}: {', '.join(hints)}; "
                             "Beam would ignore it (see docs/dataflow.md)")


def runs_locally(beam_args: list[str] | None = None) -> bool:
    """Whether the pipeline runs on our local FnApiRunner (in-process or ``--workers N`` processes): no
    ``-- --runner=X`` among the Beam options."""
    return not any(a.startswith("--runner") for a in beam_args or [])


def runner(beam_args: list[str] | None = None):
    """The in-process FnApiRunner, named so Beam never tries to fetch Prism; `-- --runner=X` overrides."""
    if not runs_locally(beam_args):
        return None  # PipelineOptions' --runner decides (e.g. DataflowRunner; see docs/dataflow.md)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    class LocalRunner(FnApiRunner):
        """FnApiRunner that keeps the graph it ran (``ran``): the profile names its steps from it, instead of
        translating the pipeline a second time (~0.15 s per pass). Its worker processes (--workers N) start
        through :func:`pipelines.forkserver.beam_worker`, so Beam's start-up INFO lines stay off the terminal."""

        ran = None

        def run_via_runner_api(self, pipeline_proto, options):
            quiet_workers(pipeline_proto)
            self.ran = type(pipeline_proto)()
            self.ran.CopyFrom(pipeline_proto)  # a copy: the runner's graph stages edit outputs in place
            return super().run_via_runner_api(pipeline_proto, options)

    return LocalRunner()


def quiet_workers(pipeline_proto) -> None:
    """Local worker processes (Beam's subprocess environment, as ``direct_running_mode=multi_processing`` makes
    it) start through :func:`pipelines.forkserver.beam_worker` instead of Beam's own entry point; any other command is left alone."""
    import shlex
    import sys

    from apache_beam.portability import python_urns

    beam_default = f"{sys.executable} -m apache_beam.runners.worker.sdk_worker_main".encode()
    # inside curate.run's ForkServer workers are forked from a warm process; otherwise a cold interpreter, with a
    # NullHandler first: importing Beam logs a warning (apitools) that would give the root logger a default handler
    ours = (client_command()
            or f"{shlex.quote(sys.executable)} -c 'import logging; logging.getLogger().addHandler(logging.NullHandler()); "
               "from pipelines.forkserver import beam_worker; beam_worker()'").encode()
    for env in pipeline_proto.components.environments.values():
        if env.urn == python_urns.SUBPROCESS_SDK and env.payload == beam_default:
            env.payload = ours


def new_pipeline(workers: int, beam_args: list[str] | None = None):
    import apache_beam as beam

    return beam.Pipeline(runner=runner(beam_args), options=pipeline_options(workers, beam_args))


def write_tables(streams: list, directory: str | Path, *, label: str, prefix: str = "part",
                 folders: dict[str, str] | None = None, codec: str = "zstd", row_group_bytes: int = 1 << 20,
                 record_batch_size: int = 256, schemas: dict | None = None, file_bytes: int | None = None):
    """Parquet files of several tables: ``[(table, rows or None), ...]`` -> ``directory/(folder)/prefix-*.parquet``.

    Each stream of rows gets its own writer step (a file per bundle, in a temporary folder), fused with
    the step that makes the rows: rows are never gathered (a Flatten of rows would hold them all in
    memory on the local runner). One commit step then moves the files of finished bundles into place,
    so a retried bundle leaves nothing behind; a table without rows gets one empty file. Rows are
    dicts; keys outside the table's columns are ignored. Beam's ``WriteToParquet`` costs ~14 graph
    transforms per table; this costs one per stream and four. ``directory`` may be any Beam
    filesystem (gs://, s3://). ``schemas`` adds layouts for work files outside ``schemas.SCHEMAS``.
    ``file_bytes``: start a new file after this many bytes of row groups (default: one file per bundle).
    Returns the PCollection of ``(table, final path)``.
    """
    import uuid

    assert any(rows is not None for _, rows in streams), "write_tables needs at least one stream of rows"
    tables = sorted({t for t, _ in streams})
    folders = {t: (folders or {}).get(t, t) for t in tables}
    layouts = {t: (schemas or {}).get(t) or SCHEMAS[t] for t in tables}
    temp = f"{str(directory).rstrip('/')}/_tmp-{prefix}-{uuid.uuid4().hex[:12]}"
    written = [rows | f"{label}: {table} {i}" >> beam.ParDo(_WriteBundles(
        table, f"{temp}/{table}", prefix, layouts[table], codec, row_group_bytes, record_batch_size, file_bytes))
        for i, (table, rows) in enumerate(streams) if rows is not None]
    files = written | f"{label}: files" >> beam.Flatten()
    commit = _Commit(str(directory).rstrip("/"), temp, prefix, folders, layouts)
    return (files.pipeline | f"{label}: once" >> beam.Create([None])
            | f"{label}: commit" >> beam.ParDo(commit, beam.pvalue.AsList(files)))


class _WriteBundles(beam.DoFn):
    """Rows of one table -> a Parquet file per bundle (or, with ``file_bytes``, a new file each time one holds
    that many bytes of row groups); emits (table, temporary path) for each file when the bundle ends."""

    def __init__(self, table: str, folder: str, prefix: str, schema, codec: str, row_group_bytes: int,
                 record_batch_size: int, file_bytes: int | None = None):
        self.table, self.folder, self.prefix, self.schema, self.codec = table, folder, prefix, schema, codec
        self.row_group_bytes, self.record_batch_size, self.file_bytes = row_group_bytes, record_batch_size, file_bytes

    def start_bundle(self):
        self.file, self.done = None, []

    def process(self, row):
        if self.file is None:
            self.file = _TableFile(self.folder, self.prefix, self.schema, self.codec, self.row_group_bytes,
                                   self.record_batch_size)
        self.file.add(row)
        if self.file_bytes is not None and self.file.written >= self.file_bytes:
            self.done.append(self.file.close())
            self.file = None

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.timestamp import MIN_TIMESTAMP
        from apache_beam.utils.windowed_value import WindowedValue

        if self.file is not None:
            self.done.append(self.file.close())
        for path in self.done:
            yield WindowedValue((self.table, path), MIN_TIMESTAMP, [GlobalWindow()])
        self.file, self.done = None, []


class _TableFile:
    """Rows of one table -> Arrow record batches -> row groups of ~``row_group_bytes`` in one Parquet file."""

    def __init__(self, folder: str, prefix: str, schema, codec: str, row_group_bytes: int, batch: int):
        import uuid

        self.path = f"{folder}/{prefix}-{uuid.uuid4().hex}.parquet"
        self.schema, self.codec, self.row_group_bytes, self.batch = schema, codec, row_group_bytes, batch
        self.rows, self.batches, self.bytes, self.writer, self.handle = [], [], 0, None, None
        self.written = 0  # Arrow bytes of the row groups written so far

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self._batch()
            if self.bytes >= self.row_group_bytes:
                self._row_group()

    def _batch(self) -> None:
        import pyarrow as pa

        if self.rows:
            b = pa.RecordBatch.from_pylist(self.rows, schema=self.schema)
            self.batches.append(b)
            self.bytes += b.nbytes
            self.rows = []

    def _row_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            from apache_beam.io.filesystems import FileSystems

            self.handle = FileSystems.create(self.path)
            self.writer = pq.ParquetWriter(self.handle, self.schema, compression=self.codec,
                                           use_compliant_nested_type=True)
        if self.batches:
            self.writer.write_table(pa.Table.from_batches(self.batches, schema=self.schema))
        self.written += self.bytes
        self.batches, self.bytes = [], 0

    def close(self) -> str:
        self._batch()
        self._row_group()
        self.writer.close()
        self.handle.close()
        return self.path


class _Commit(beam.DoFn):
    """Moves the files of finished bundles (the side input) into place; an empty file for a table without rows."""

    def __init__(self, directory: str, temp: str, prefix: str, folders: dict[str, str], layouts: dict):
        self.directory, self.temp, self.prefix, self.folders, self.layouts = directory, temp, prefix, folders, layouts

    def process(self, _, written):
        from apache_beam.io.filesystems import FileSystems

        done = []
        for table, folder in sorted(self.folders.items()):
            sources = sorted(path for t, path in written if t == table)
            if not sources:
                f = _TableFile(f"{self.temp}/{table}", self.prefix, self.layouts[table], "zstd", 1, 1)
                sources = [f.close()]
            target = f"{self.directory}/{folder}"
            if not FileSystems.exists(target):
                FileSystems.mkdirs(target)
            dest = [f"{target}/{src.rsplit('/', 1)[1]}" for src in sources]
            FileSystems.rename(sources, dest)
            done += [(table, d) for d in dest]
        if "://" not in self.temp:
            import shutil

            shutil.rmtree(self.temp, ignore_errors=True)
        else:  # an object store has no folders; what is left are the files of failed bundle attempts
            left = [m.path for m in FileSystems.match([f"{self.temp}/**"])[0].metadata_list]
            if left:
                FileSystems.delete(left)
        return done


def dead_letters(bad, stage: str, what: str = "errors"):
    """Dead letters (``transforms.stage_step``'s, or with_exception_handling's) -> ``<stage>_error`` rejects rows."""
    import apache_beam as beam

    from pipelines.transforms import dead_letter_to_reject

    return bad | f"{stage} {what} to rejects" >> beam.Map(dead_letter_to_reject(stage))


def failed_batches(dlq, stage: str):
    """RunInference's failed (batch, error) pairs -> one reject per row of the batch."""
    import apache_beam as beam

    rows = dlq.failed_inferences | f"Unbatch {stage} failures" >> beam.FlatMap(
        lambda batch_err: [(row, batch_err[1]) for row in batch_err[0]])
    return dead_letters(rows, stage, "failed batches")


def counters(result) -> dict[Count, int]:
    """Sightline's counts of a finished pipeline, plus RunInference's model time per teacher stage."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[Count, int] = {}
    q = result.metrics().query(MetricsFilter())
    for c in q["counters"]:
        if c.key.metric.namespace == NAMESPACE:
            v = c.committed if c.committed is not None else c.attempted
            key = Count.parse(c.key.metric.name)
            out[key] = out.get(key, 0) + int(v or 0)
    for d in q["distributions"]:
        stage, name = stage_of_model_namespace(d.key.metric.namespace), d.key.metric.name
        if stage is not None and name in ("inference_batch_latency_micro_secs", "load_model_latency_milli_secs"):
            v = d.committed if d.committed is not None else d.attempted
            scale = 1000 if name.startswith("load_model") else 1
            key = Count(stage, Outcome.TEACHER_USECS)
            out[key] = out.get(key, 0) + int((v.sum if v else 0) * scale)
    return out
