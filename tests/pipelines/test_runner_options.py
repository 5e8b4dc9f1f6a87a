"""pipelines.runner's Beam options: one view per options class, the same answers as Beam's own views; its
``dir()`` of a DoFn, in which Beam finds the same state and timer specs; the state sampler's period."""
from __future__ import annotations

import copy

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, PipelineOptions, TypeOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain

from pipelines.runner import new_pipeline, pipeline_options


def test_views_are_made_once_and_share_the_options():
    opts = pipeline_options(2, ["--experiments=a", "--direct_runner_bundle_repeat=3"])
    assert opts.view_as(DirectOptions) is opts.view_as(DirectOptions)
    direct = opts.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (2, "multi_processing")
    assert direct.direct_runner_bundle_repeat == 3
    assert opts.view_as(TypeOptions).pipeline_type_check is False
    # what one view sets, every view and the options see, as with Beam's views
    opts.view_as(DebugOptions).experiments = ["a", "beam_fn_api"]
    assert opts.view_as(DebugOptions).experiments == ["a", "beam_fn_api"]
    assert opts.get_all_options()["experiments"] == ["a", "beam_fn_api"]
    plain = PipelineOptions(["--experiments=a", "--direct_runner_bundle_repeat=3"], direct_running_mode="multi_processing",
                            direct_num_workers=2, pipeline_type_check=False)
    plain.view_as(DebugOptions).experiments = ["a", "beam_fn_api"]
    assert opts.get_all_options() == plain.get_all_options()


def test_a_deep_copy_has_its_own_views_and_values():
    opts = pipeline_options(1)
    opts.view_as(DebugOptions).experiments = ["x"]
    other = copy.deepcopy(opts)  # Beam's Pipeline deep-copies the options it is given
    other.view_as(DebugOptions).experiments = ["y"]
    assert opts.view_as(DebugOptions).experiments == ["x"]
    assert other.view_as(DebugOptions).experiments == ["y"]
    assert other.view_as(DirectOptions).direct_running_mode == "in_memory"


# ---------------------------------------------------------------------------- dir() of a DoFn (pipelines.runner)

_BAG = userstate.BagStateSpec("seen", VarIntCoder())
_TIMER = userstate.TimerSpec("flush", TimeDomain.WATERMARK)
_MIXIN_TIMER = userstate.TimerSpec("late", TimeDomain.WATERMARK)
_COUNT = userstate.ReadModifyWriteStateSpec("count", VarIntCoder())


class _Stateful(beam.DoFn):
    def process(self, kv, bag=beam.DoFn.StateParam(_BAG), timer=beam.DoFn.TimerParam(_TIMER)):
        yield kv

    @userstate.on_timer(_TIMER)
    def flush(self, bag=beam.DoFn.StateParam(_BAG)):
        yield from bag.read()


class _TimerMixin:  # after beam.DoFn in its subclass's MRO: what it defines is still the DoFn's
    @userstate.on_timer(_MIXIN_TIMER)
    def late(self, count=beam.DoFn.StateParam(_COUNT)):
        yield count.read()


class _WithMixin(beam.DoFn, _TimerMixin):
    def process(self, kv, timer=beam.DoFn.TimerParam(_MIXIN_TIMER)):
        yield kv


class _Counter(beam.DoFn):
    def process(self, kv, count=beam.DoFn.StateParam(_COUNT)):
        n = (count.read() or 0) + 1
        count.write(n)
        yield kv[0], n


def test_beam_finds_the_same_state_and_timer_specs_in_sightlines_dir_of_a_dofn(monkeypatch):
    from pipelines.transforms import RunStage
    from schemas.counters import Stage

    fns = [_Stateful(), _WithMixin(), _Counter(), RunStage(Stage.VALIDATE, len), beam.Map(len).fn]
    assert "default_label" not in dir(fns[0]) and "flush" in dir(fns[0]) and "late" in dir(fns[1])  # the lean dir
    lean = [userstate.get_dofn_specs(f) for f in fns]
    monkeypatch.delattr(beam.DoFn, "__dir__")  # object's dir again: every member of beam.DoFn and its bases
    assert "default_label" in dir(fns[0])
    assert lean == [userstate.get_dofn_specs(f) for f in fns]
    assert lean[0] == ({_BAG}, {_TIMER}) and lean[1] == ({_COUNT}, {_MIXIN_TIMER}) and lean[3] == (set(), set())


def test_a_stateful_dofn_still_keeps_its_state_per_key():
    with new_pipeline(1) as p:
        out = p | beam.Create([("a", 1), ("b", 1), ("a", 1), ("a", 1)]) | beam.ParDo(_Counter())
        assert_that(out, equal_to([("a", 1), ("a", 2), ("a", 3), ("b", 1)]))


def test_beams_state_sampler_wakes_every_10_ms_so_a_bundle_ends_without_waiting_up_to_200():
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils.counters import CounterFactory

    from pipelines.runner import STATE_SAMPLING_MS

    # what a bundle processor makes (it passes no period): the thread it joins at the end sleeps 10 ms at most
    assert statesampler.StateSampler("fnapi-step-x", CounterFactory()).sampling_period_ms == STATE_SAMPLING_MS == 10
    assert statesampler.StateSampler("y", CounterFactory(), sampling_period_ms=50).sampling_period_ms == 50
