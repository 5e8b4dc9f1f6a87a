"""The per-step profile (pipelines/profile.py) reads Beam's own metrics of a real in-process run."""
from __future__ import annotations

import time

import apache_beam as beam
import pytest

from pipelines.profile import PeakRss, format_pass, step_name, timed_run
from pipelines.runner import new_pipeline


def _slow(x):
    time.sleep(0.002)  # the state sampler measures time in the step, sleeping included
    return x


def test_steps_count_elements_and_time_from_beam_metrics():
    p = new_pipeline(1)
    rows = p | "Make" >> beam.Create(list(range(300)))
    for i in range(2):  # two branches of the same step are one line
        (rows | f"Slow {i}" >> beam.Map(_slow)
         | f"Key {i}" >> beam.Map(lambda x: (x % 7, x))
         | f"Group {i}" >> beam.GroupByKey()
         | f"Sizes {i}" >> beam.MapTuple(lambda k, v: len(v)))
    _, prof = timed_run(p, "test", 1, None)
    steps = {s.step: s for s in prof.steps}
    assert list(steps) == ["Make", "Slow", "Key", "Group", "Sizes"]
    assert (steps["Make"].elements_in, steps["Make"].elements_out) == (0, 300)
    assert (steps["Slow"].elements_in, steps["Slow"].elements_out) == (600, 600)
    assert (steps["Group"].elements_in, steps["Group"].elements_out) == (600, 14)
    assert (steps["Sizes"].elements_in, steps["Sizes"].elements_out) == (14, 14)
    # 600 sleeps of 2 ms: at least ~1.2 s in Slow, measured by Beam's sampler (10 ms grains)
    assert 0.8 <= steps["Slow"].seconds <= prof.wall_seconds
    assert steps["Slow"].seconds > 4 * steps["Sizes"].seconds
    assert prof.runner_seconds is not None and prof.runner_seconds >= 0
    text = format_pass(prof)
    assert "Slow" in text and "600" in text and "runner" in text


def test_a_steps_out_counts_every_output_it_makes():
    """Partition's and a multi-output ParDo's outputs are counted (new_pipeline turns Beam's construction-time
    type check off, and then a composite's tagged outputs are missing from its own ``outputs``)."""
    p = new_pipeline(1)
    parts = p | "Make" >> beam.Create(list(range(90))) | "Thirds" >> beam.Partition(lambda x, n: x % 3, 3)
    tagged = parts[0] | "Tag" >> beam.FlatMap(lambda x: [x, beam.pvalue.TaggedOutput("twice", x)]).with_outputs(
        "twice", main="once")
    for i, pc in enumerate([parts[1], parts[2], tagged.once, tagged.twice]):
        pc | f"Use {i}" >> beam.Map(lambda x: x)
    _, prof = timed_run(p, "test", 1, None)
    steps = {s.step: s for s in prof.steps}
    assert (steps["Thirds"].elements_in, steps["Thirds"].elements_out) == (90, 90)
    assert (steps["Tag"].elements_in, steps["Tag"].elements_out) == (30, 60)
    assert steps["Use"].elements_in == 60 + 60
    # rows through a step: what it took in (Tag's 30, not its 60 outputs), or a reader's out (Make's 90)
    assert (steps["Tag"].rows, steps["Make"].rows, steps["Thirds"].rows) == (30, 90, 90)


_FROZEN: list[int] = []


def _note_frozen(x):
    import gc

    _FROZEN.append(gc.get_freeze_count())
    return x


def test_the_heap_before_a_run_is_frozen_out_of_the_cyclic_gc_only_while_it_runs():
    import gc

    _FROZEN.clear()
    p = new_pipeline(1)
    p | "Make" >> beam.Create([1, 2, 3]) | "Note" >> beam.Map(_note_frozen)
    assert gc.get_freeze_count() == 0
    timed_run(p, "test", 1, None)
    assert len(_FROZEN) == 3 and min(_FROZEN) > 10_000  # the modules and the graph, frozen during the run
    assert gc.get_freeze_count() == 0  # and handed back after it


def test_step_name_drops_the_branch_index_only():
    assert step_name("Validate 0") == "Validate"
    assert step_name("Write tables: examples 12") == "Write tables: examples"
    assert step_name("Hash bands") == "Hash bands"
    assert step_name("v2 reader") == "v2 reader"


@pytest.mark.parametrize("children", [True, False])  # sampled with children / this process, with its kernel mark
def test_peak_rss_sees_a_large_allocation(children):
    with PeakRss(interval_s=0.01, children=children) as rss:
        base = rss.peak_mb
        block = bytearray(300 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
        time.sleep(0.1)
        grown = rss.peak_mb
        del block
        rss.reset()
        after = rss.peak_mb
    assert grown - base >= 250
    assert after < grown - 200  # reset starts a new peak


def test_in_process_the_kernels_mark_catches_a_peak_between_samples_and_is_left_as_it_was():
    from pipelines.profile import _high_water

    with PeakRss(interval_s=60, children=False) as rss:  # one sample at the start, none after
        base = rss.peak_mb
        block = bytearray(400 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        del block  # gone before any sample: only the kernel's high-water mark saw it
        seen = rss.peak_mb
        rss.reset()
        after = rss.peak_mb  # a new pass that sets no new high: its samples only
    assert seen - base >= 350 and after < seen - 300
    assert _high_water() >= (base + 350) * 2**20  # not reset: the process's own peak (what /usr/bin/time reports)


def test_peak_rss_counts_exec_children_but_not_a_fork_of_itself():
    import os
    import subprocess
    import sys

    with PeakRss(interval_s=0.01) as rss:
        block = bytearray(200 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.1)
        base = rss.peak_mb
        pid = os.fork()  # shares every page of this process until it execs (as subprocess does before exec)
        if pid == 0:
            time.sleep(0.4)
            os._exit(0)
        time.sleep(0.3)
        forked = rss.peak_mb
        os.waitpid(pid, 0)
        code = "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1)"
        child = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.time() + 10
        while rss.peak_mb < base + 120 and time.time() < deadline:
            time.sleep(0.05)
        with_child = rss.peak_mb
        child.wait()
        del block
    assert forked < base + 50  # not counted twice
    assert with_child >= base + 120  # a real worker process's memory is counted


class _CountsItsRows(beam.DoFn):
    def setup(self):
        from pipelines.profile import rows_counter

        self.rows = rows_counter()

    def process(self, batch):
        self.rows.inc(len(batch))
        yield len(batch)


def test_a_step_that_takes_batches_reports_the_rows_inside_them():
    p = new_pipeline(1)
    p | beam.Create([[1, 2, 3], [4, 5], [6]]) | "Batches" >> beam.ParDo(_CountsItsRows()) | "Plain" >> beam.Map(str)
    _, prof = timed_run(p, "test", 1, None)
    steps = {s.step: s for s in prof.steps}
    assert (steps["Batches"].elements_in, steps["Batches"].rows) == (3, 6)
    assert steps["Plain"].rows_in is None and steps["Plain"].rows == 3  # a step that counts nothing: its elements


def test_a_sample_taken_across_a_reset_belongs_to_no_pass():
    import threading

    started, release = threading.Event(), threading.Event()

    class Slow(PeakRss):
        def current(self):
            if threading.current_thread() is self._thread and not release.is_set():
                started.set()
                release.wait(5)
                return 10 * 2**30  # read before the reset below, stored after it
            return 2**20

    with Slow(interval_s=0.01, children=True) as rss:
        assert started.wait(5)
        rss.reset()  # a new pass starts while the thread holds its old sample
        release.set()
        time.sleep(0.1)
        assert rss.peak_mb < 10
