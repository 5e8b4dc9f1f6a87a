"""pipelines.runner's Beam options: one view per options class, the same answers as Beam's own views."""
from __future__ import annotations

import copy

from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, PipelineOptions, TypeOptions

from pipelines.runner import pipeline_options


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
