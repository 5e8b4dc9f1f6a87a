"""The Dataflow path of `sightline data`, checked without a cloud: the commands of docs/dataflow.md are
parsed by the CLI's own parser, their Beam options checked, and both passes of the curate graph built on a
DataflowRunner pipeline, put through the Dataflow runner's graph checks and translated to the portable
proto (model stages carry the recipe's resource hints). With apache-beam[gcp] installed, DataflowRunner
itself runs with --dry_run=True (the job request is built, not sent)."""
import re
import shlex
from pathlib import Path

import pytest

from curation.errors import SightlineError
from curation.recipe import load_data_recipe
from pipelines.curate import build_curate, build_scan
from pipelines.data_cmd import build_parser
from pipelines.runner import check_beam_args

DOC = Path(__file__).resolve().parents[2] / "docs" / "dataflow.md"
VARIABLES = {"BUCKET": "sightline-data-test", "PROJECT": "sightline-test-123", "REGION": "us-central1",
             "IMAGE": "us-central1-docker.pkg.dev/sightline-test-123/sightline/worker:0123abc"}
ACCELERATOR = "type:nvidia-l4;count:1;install-nvidia-driver"


def documented_commands() -> list[list[str]]:
    """argv (after `sightline data`) of every Dataflow command in docs/dataflow.md's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        text = re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], block.replace("\\\n", " "))
        for line in text.splitlines():
            if line.startswith("sightline data") and "DataflowRunner" in line:
                commands.append(shlex.split(line)[2:])
    return commands


@pytest.fixture
def launcher_source(tmp_path) -> list[str]:
    """`--set sources=...`: the recipe's dataset as the launcher would have it (a two-row JSONL here;
    /datasets/geometry3k must exist on a real launcher, which reads each source's type and columns)."""
    import json

    from curation.synthetic import generate

    lines = []
    for i, row in enumerate(generate(2, seed=0)):
        (tmp_path / f"{i}.png").write_bytes(row["images"][0]["bytes"])
        lines.append(json.dumps({"image": f"{i}.png", "question": row["question"], "answer": row["answer"]}))
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    spec = {"type": "jsonl", "name": "geometry3k", "path": str(tmp_path / "rows.jsonl")}
    return ["--set", f"sources=[{json.dumps(spec)}]"]


def _with_sets(argv: list[str], sets: list[str]) -> list[str]:
    return argv[:argv.index("--")] + sets + argv[argv.index("--"):]


def _graph(argv: list[str]):
    """The two passes of the curate graph, each on a DataflowRunner pipeline as `sightline data` builds them,
    prepared as the Dataflow runner prepares a pipeline; returns (recipe, options, [scan, curate])."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
    from apache_beam.runners.pipeline_utils import group_by_key_input_visitor

    args = build_parser().parse_args(argv)
    recipe = load_data_recipe(args.config, args.overrides)
    check_beam_args(args.beam_args)
    options = PipelineOptions(args.beam_args)
    version = f"{recipe.root}/v0001"
    passes = []
    for build in (lambda p: build_scan(p, recipe, version, f"{version}/_work"),
                  lambda p: build_curate(p, recipe, version, f"{version}/_work", None)):
        p = beam.Pipeline(options=options)  # Beam validates project, region and gs:// locations here
        assert isinstance(p.runner, DataflowRunner)
        build(p)
        p.visit(group_by_key_input_visitor(True))  # Dataflow needs deterministic key coders
        p.visit(DataflowRunner.side_input_visitor(deterministic_key_coders=True))
        p.visit(DataflowRunner.combinefn_visitor())
        passes.append(p)
    return recipe, options, passes


def _hints(proto) -> dict[str, dict[str, bytes]]:
    """Transform name -> resource hints of its environment, for every transform that has any."""
    out = {}
    for t in proto.components.transforms.values():
        env = proto.components.environments.get(t.environment_id) if t.environment_id else None
        if env is not None and env.resource_hints:
            out[t.unique_name] = dict(env.resource_hints)
    return out


def test_the_documented_commands_are_found():
    commands = documented_commands()
    assert len(commands) == 2
    assert all("--runner=DataflowRunner" in c and "--sdk_container_image=" + VARIABLES["IMAGE"] in c for c in commands)


@pytest.mark.parametrize("which", [0, 1], ids=["worker_accelerator", "resource_hints"])
def test_documented_command_builds_and_translates_for_dataflow(which, launcher_source):
    argv = _with_sets(documented_commands()[which], launcher_source)
    recipe, _, passes = _graph(argv)
    assert recipe.output_root == f"gs://{VARIABLES['BUCKET']}/data" and recipe.caption.backend == "vllm"
    scan, curate = (p.to_runner_api() for p in passes)
    names = {t.unique_name.split("/")[0] for proto in (scan, curate) for t in proto.components.transforms.values()}
    assert {"Hash bands 0", "Confirm", "Write decisions: commit", "Read work rows", "Write tables: commit"} <= names
    assert _hints(scan) == {}  # no model in pass 1
    hints = _hints(curate)
    if which == 0:
        assert hints == {}  # GPUs come from --dataflow_service_options, for every worker
        return
    assert recipe.runner.accelerator == ACCELERATOR and recipe.runner.min_ram == "32GB"
    assert {name.split("/")[0] for name in hints} == {"Caption", "Distill"}
    for name, h in hints.items():
        assert h["beam:resources:accelerator:v1"] == ACCELERATOR.encode(), name
        assert h["beam:resources:min_ram_bytes:v1"] == b"32000000000", name


def test_a_misspelt_beam_option_fails_before_anything_runs(launcher_source):
    argv = _with_sets(documented_commands()[0], launcher_source)
    typo = [a.replace("--dataflow_service_options", "--dataflow_service_optoins") for a in argv]
    with pytest.raises(SightlineError, match="did you mean --dataflow_service_options"):
        _graph(typo)
    with pytest.raises(SightlineError, match="--sdk_container_imag .*did you mean --sdk_container_image"):
        check_beam_args(["--runner=DataflowRunner", "--sdk_container_imag=x"])
    check_beam_args([a for a in argv if a.startswith("--") and "=" in a])  # the documented ones all pass


def test_program_teachers_take_no_hint():
    argv = _with_sets(documented_commands()[1], ["--set", "caption.backend=program", "--set", "distill.backend=program",
                                                  "--set", "sources=[]", "--set", "synthetic.n=100"])
    recipe, _, passes = _graph(argv)
    assert recipe.runner.accelerator == ACCELERATOR  # set, but no model stage to put it on
    assert all(_hints(p.to_runner_api()) == {} for p in passes)


def test_dataflow_runner_dry_run_builds_the_job_request(launcher_source):
    try:
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401
    except ImportError as e:
        pytest.skip(f"apache-beam[gcp] is not installed here ({e}); `make setup-gpu GPU_EXTRAS=vllm,gcp` has it")
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    argv = _with_sets(documented_commands()[1], launcher_source) + ["--dry_run=True", "--no_auth"]
    _, options, passes = _graph(argv)
    for p in passes:
        result = DataflowRunner().run_pipeline(p, options)
        assert result.job is not None and result.job.proto.name
