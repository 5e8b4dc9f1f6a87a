"""Where a Beam pass spends its time and memory: a profile per stage, from Beam's own metrics.

``sightline data --profile`` (and ``benchmarks/pipeline_throughput.py``) print, for each step of the graph
as the code names it ("Validate", "Hash bands", "Write tables: examples", ...), the elements it took in
and put out and the seconds it ran, and for each pass its wall time and peak memory:

- elements: Beam's ``element_count`` of the step's main input and of its outputs (every PCollection is
  counted by the runner; nothing is estimated);
- seconds: Beam's ``ptransform_execution_time`` (the SDK's state sampler, every 10 ms:
  ``pipelines.runner.STATE_SAMPLING_MS``) summed over the step's transforms, on every worker: "busy seconds",
  which can exceed the wall time with workers > 1;
- ``runner``: the pass's wall time minus the steps' seconds (one worker only): what the runner costs
  between steps (shuffles, encoding, scheduling) and pipeline construction;
- peak RSS: sampled every 50 ms over this process and all its children (Beam's worker processes); in-process
  (one worker), this process only, exact (the kernel's high-water mark) in a pass that set the process's high.

Identical steps over several inputs (``Validate 0``, ``Validate 1``) are one line.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Self

from pipelines import heap
from pipelines.forkserver import WORKER_NAME

EXECUTION_MSECS = "beam:metric:ptransform_execution_time:total_msecs:v1"
ELEMENT_COUNT = "beam:metric:element_count:v1"
USER_SUM = "beam:metric:user:sum_int64:v1"
# A step whose elements are batches (a row group as one Arrow table) counts the rows inside them in a Beam counter
# of this namespace named "rows": its profile's rows are those, not its elements.
ROWS = "sightline.profile"


def rows_counter():
    """The Beam counter in which a step that takes batches counts their rows (``ROWS``), in its DoFn's ``setup``."""
    from apache_beam.metrics import Metrics

    return Metrics.counter(ROWS, "rows")


_INDEX = re.compile(r" \d+$")


@dataclass
class StepProfile:
    step: str
    elements_in: int = 0
    elements_out: int = 0
    seconds: float = 0.0
    rows_in: int | None = None  # rows inside its elements, for a step that takes batches (``ROWS``)

    @property
    def rows(self) -> int:
        """Elements through the step: those it took in, or for a reader (which takes in a few file names or ranges
        and puts out ten times as many rows, or more) those it put out. Not the larger of the two: a step's out
        counts every output it makes (e.g. a row's traces and sft rows besides the row). A step that takes
        batches and counts their rows (``ROWS``): those."""
        if self.rows_in is not None:
            return self.rows_in
        return self.elements_in if self.elements_in * 10 >= self.elements_out else self.elements_out

    @property
    def rows_per_s(self) -> float | None:
        """Elements through the step (``rows``) per busy second."""
        n = self.rows
        return n / self.seconds if self.seconds > 0 and n else None


@dataclass
class PassProfile:
    name: str
    wall_seconds: float
    peak_rss_mb: float
    workers: int = 1
    steps: list[StepProfile] = field(default_factory=list)

    @property
    def runner_seconds(self) -> float | None:
        """Wall time not spent inside any step (meaningful with one worker only)."""
        if self.workers > 1:
            return None
        return max(0.0, self.wall_seconds - sum(s.seconds for s in self.steps))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["runner_seconds"] = self.runner_seconds
        return d


class PeakRss:
    """Peak resident memory of this process plus its children (Beam's workers), sampled in a thread.

    ``with PeakRss() as m: ...`` then ``m.peak_mb``; ``m.reset()`` starts a new peak (one per pass).
    The children are listed again every ``children_every_s`` (listing them reads every process in /proc: ~1 ms,
    which every 50 ms took ~2% of the CPU from the run it measured); their memory is read at every sample.

    ``children=False`` (an in-process run: no worker processes): only this process is sampled (no listing), and
    a pass in which the kernel's high-water mark of the process (``VmHWM``, never reset here: a wrapper such as
    ``/usr/bin/time`` still sees the whole run's) rose has that exact peak, where a 50 ms sample can miss it.
    """

    def __init__(self, interval_s: float = 0.05, children_every_s: float = 0.5, children: bool = True):
        import psutil  # accelerate's dependency, so always installed with Sightline

        self._proc = psutil.Process()
        self._cmdline = self._proc.cmdline()
        self._error = psutil.Error
        self.interval_s, self.children_every_s, self.children = interval_s, children_every_s, children
        self._children: list = []
        self._listed = float("-inf")
        self.peak = 0
        self._high_water = 0  # the kernel's mark when the current peak started (0: not known)
        self._lock, self._since = threading.Lock(), 0  # _since: reset() count, so no sample from before one lands after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _kids(self) -> list:
        now = time.monotonic()
        if now - self._listed >= self.children_every_s:
            try:
                self._children = self._proc.children(recursive=True)
            except self._error:
                pass
            self._listed = now
        return self._children

    def current(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._kids() if self.children else ():
            try:
                # a child forked and not yet exec'd (e.g. the store's `git rev-parse`) shares this process's pages
                # and would count them twice: it still has our command line. So do the fork server's zygote and
                # keepers (pipelines.forkserver); its Beam workers are counted, each in full (an upper bound: they
                # share the zygote's pages of the imports).
                if child.cmdline() != self._cmdline or child.name() == WORKER_NAME:
                    total += child.memory_info().rss
            except self._error:  # exited between listing and reading
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            since = self._since
            value = self.current()
            with self._lock:
                if since == self._since:  # a sample taken across a reset() belongs to no pass: dropped
                    self.peak = max(self.peak, value)
            self._stop.wait(self.interval_s)

    def reset(self) -> None:
        with self._lock:
            self._since += 1
            self.peak = self.current()
            self._high_water = 0 if self.children else _high_water()

    @property
    def peak_mb(self) -> float:
        peak = max(self.peak, self.current())
        if self._high_water:
            mark = _high_water()
            if mark > self._high_water:  # this process's highest RSS so far was reached since reset(): exact
                peak = max(peak, mark)
        return peak / 2**20

    def __enter__(self) -> Self:
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _high_water() -> int:
    """This process's peak resident size, in bytes (``VmHWM`` of /proc/self/status); 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def step_name(unique_name: str) -> str:
    """A top-level transform's label without its per-input index: ``Validate 0`` -> ``Validate``."""
    return _INDEX.sub("", unique_name)


def step_profiles(pipeline, result) -> list[StepProfile]:
    """Per top-level step of ``pipeline`` (after ``result`` finished): elements in/out and busy seconds."""
    from apache_beam.metrics import monitoring_infos as mi
    from apache_beam.portability.api import beam_runner_api_pb2

    # the graph the runner ran (pipelines.runner keeps it), else the same translation again (same ids)
    proto = getattr(pipeline.runner, "ran", None) or pipeline.to_runner_api()
    transforms = proto.components.transforms
    side = set()
    for t in transforms.values():
        if t.spec.urn == "beam:transform:pardo:v1":
            payload = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
            side |= {t.inputs[k] for k in payload.side_inputs if k in t.inputs}
    top_of: dict[str, str] = {}  # every transform id -> its top-level ancestor's id

    def walk(tid: str, top: str) -> None:
        top_of[tid] = top
        for sub in transforms[tid].subtransforms:
            walk(sub, top)

    roots = list(proto.root_transform_ids)
    while len(roots) == 1 and transforms[roots[0]].subtransforms:  # Python wraps the graph in one root
        roots = list(transforms[roots[0]].subtransforms)
    for tid in roots:
        walk(tid, tid)
    top_by_name = {transforms[t].unique_name: top for t, top in top_of.items()}  # timings are keyed by name
    counts: dict[str, int] = {}
    msecs: dict[str, float] = {}
    rows: dict[str, int] = {}
    for info in result.monitoring_infos():
        if info.urn == ELEMENT_COUNT and "PCOLLECTION" in info.labels:
            pc = info.labels["PCOLLECTION"]
            counts[pc] = counts.get(pc, 0) + int(mi.extract_counter_value(info))
        elif info.urn == EXECUTION_MSECS and info.labels.get("PTRANSFORM") in top_by_name:
            top = top_by_name[info.labels["PTRANSFORM"]]
            msecs[top] = msecs.get(top, 0.0) + float(mi.extract_counter_value(info))
        elif (info.urn == USER_SUM and info.labels.get("NAMESPACE") == ROWS
              and info.labels.get("PTRANSFORM") in top_by_name):
            top = top_by_name[info.labels["PTRANSFORM"]]
            rows[top] = rows.get(top, 0) + int(mi.extract_counter_value(info))
    # A step's outputs: what its transforms make and none of them reads. (Not the step's own ``outputs``: a
    # composite's tagged outputs made after it was applied, e.g. Partition's, are missing there when Beam's
    # construction-time type check is off; pipelines.runner turns it off.)
    made: dict[str, set] = {tid: set() for tid in roots}
    read: dict[str, set] = {tid: set() for tid in roots}
    for tid, top in top_of.items():
        made[top] |= set(transforms[tid].outputs.values())
        read[top] |= set(transforms[tid].inputs.values())
    by_step: dict[str, StepProfile] = {}
    for tid in roots:
        t = transforms[tid]
        s = by_step.setdefault(step_name(t.unique_name), StepProfile(step_name(t.unique_name)))
        s.elements_in += sum(counts.get(pc, 0) for pc in set(t.inputs.values()) - side)
        s.elements_out += sum(counts.get(pc, 0) for pc in made[tid] - read[tid])
        s.seconds += msecs.get(tid, 0.0) / 1000
        if tid in rows:
            s.rows_in = (s.rows_in or 0) + rows[tid]
    return list(by_step.values())


def format_pass(p: PassProfile) -> str:
    """A text table of one pass: its steps in graph order (those that saw no element and took no time left
    out), then the runner's share; the peak RSS in the heading."""
    head = [f"{p.name}: {p.wall_seconds:.1f} s wall, peak RSS {p.peak_rss_mb:,.0f} MB"
            + (f", {p.workers} workers (seconds are summed over them)" if p.workers > 1 else "")]
    lines = head + ([f"  {'step':34s} {'in':>9s} {'out':>9s} {'seconds':>8s} {'rows/s':>9s}"] if p.steps else [])
    for s in p.steps:
        if not (s.seconds or s.elements_in or s.elements_out):
            continue
        rate = f"{s.rows_per_s:9,.0f}" if s.rows_per_s else f"{'':>9s}"
        lines.append(f"  {s.step[:34]:34s} {s.elements_in:9,d} {s.elements_out:9,d} {s.seconds:8.2f} {rate}")
    if p.steps and p.runner_seconds is not None:
        lines.append(f"  {'(runner: between and around steps)':34s} {'':9s} {'':9s} {p.runner_seconds:8.2f}")
    return "\n".join(lines)


def timed_run(pipeline, name: str, workers: int, rss: PeakRss | None) -> tuple[object, PassProfile]:
    """Run ``pipeline`` to the end; returns (result, its PassProfile).

    While it runs, what the process held before (modules, Beam's graph: ~1M objects) is frozen out of Python's
    cyclic garbage collector, whose full collections would otherwise walk it again and again (at 20,000 rows:
    0.46 -> 0.24 s of collections); it is handed back (``gc.unfreeze``) when the run ends. Before it starts, the
    heap's free memory (what an earlier pass let go) goes back to the OS (``pipelines.heap.trim``)."""
    import gc

    heap.trim(every=0)
    if rss is not None:
        rss.reset()
    t = time.perf_counter()
    gc.freeze()
    try:
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        gc.unfreeze()
    wall = time.perf_counter() - t
    return result, PassProfile(name, wall, rss.peak_mb if rss is not None else 0.0, workers,
                               step_profiles(pipeline, result))
