"""`sightline data` as a user meets it (``pipelines.cli.main``): sources that cannot be read end in one
error line, a non-zero exit and no new version (staging cleaned); `data inspect` shows how to map a source.

Mistakes seen in the data itself (a JSON array read as JSON lines, a binary file, a mapped nested key
that is missing) are refused before the store is touched; the same mistakes hidden behind the first
file of a glob, or behind the first rows, are caught after ingest by ``ingest.max_reject_fraction``,
once a staging folder exists: it must be gone afterwards.
"""
import gzip
import json
from pathlib import Path

import pytest
import yaml

from benchmarks.real_sources import write_source
from pipelines.cli import main as sightline


def recipe(tmp_path: Path, *sources: dict) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "output_root": str(tmp_path / "out"), "synthetic": {"n": 0},
                                    "caption": {"backend": "none"}, "distill": {"backend": "none"},
                                    "sources": list(sources)}))
    return str(path)


def fails_in_one_line(argv: list[str], capsys, out_root: Path, *, staged: bool = False) -> str:
    """Run ``sightline``; assert exit 1, one error line last on stderr, no traceback, and no version
    (nor staging) folder under ``out_root``: nothing at all when refused before the run (``staged``
    False), only the empty dataset folder when a staging folder was made and removed. Returns the error."""
    assert sightline(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("sightline data: error: ")]
    assert errors == [lines[-1]] and "Traceback" not in err, err
    left = sorted(str(p.relative_to(out_root)) for p in out_root.rglob("*")) if out_root.exists() else []
    assert left == (["mine"] if staged else []), left
    return errors[0].removeprefix("sightline data: error: ")


@pytest.fixture(scope="module")
def jsonl_source(tmp_path_factory):
    """A good JSON lines source (6 rows, relative image paths)."""
    return write_source("jsonl", tmp_path_factory.mktemp("jsonl"), 6, seed=7, repeat=0.0)


@pytest.fixture(scope="module")
def verl_source(tmp_path_factory):
    return write_source("verl", tmp_path_factory.mktemp("verl"), 6, seed=8, repeat=0.0)


# ---------------------------------------------------------------------------- refused before anything is written


def test_json_array_read_as_jsonl(tmp_path, capsys):
    (tmp_path / "test.json").write_text(json.dumps([{"question": "q?", "answer": "1", "image": "a.png"}], indent=2))
    cfg = recipe(tmp_path, {"type": "jsonl", "name": "arr", "path": str(tmp_path / "test.json")})
    msg = fails_in_one_line(["data", "--config", cfg], capsys, tmp_path / "out")
    assert msg == "source 'arr': test.json looks like a JSON array, not JSON lines: use type: json"


@pytest.mark.parametrize("kind, type_, expected", [
    ("parquet", "jsonl", "train.jsonl is a Parquet file: use type: parquet"),
    ("parquet", "json", "train.jsonl is a Parquet file: use type: parquet"),
    ("parquet", "auto", "column 'question' not in train.jsonl"),  # auto reads it as the Parquet it is
    ("png", "jsonl", "train.jsonl is a PNG image, not a table"),
    ("png", "auto", "train.jsonl as a source: a PNG image, not a table"),
    ("gzip", "jsonl", "train.jsonl is gzip-compressed: decompress it first"),
    ("gzip", "auto", "train.jsonl as a source: gzip-compressed: decompress it first"),
])
def test_binary_file_given_as_a_source(tmp_path, capsys, verl_source, kind, type_, expected):
    target = tmp_path / "train.jsonl"
    target.write_bytes({"parquet": Path(verl_source.spec["path"]).read_bytes(),
                        "png": next(iter(verl_source.problems.values())).images[0],
                        "gzip": gzip.compress(b'{"question": "q?", "answer": "1", "image": "a.png"}\n')}[kind])
    cfg = recipe(tmp_path, {"type": type_, "name": "bin", "path": str(target)})
    msg = fails_in_one_line(["data", "--config", cfg], capsys, tmp_path / "out")
    assert msg.startswith("source 'bin': ") and expected in msg, msg


def test_mapping_to_a_missing_nested_key(tmp_path, capsys, verl_source, jsonl_source):
    spec = {**verl_source.spec, "columns": {**verl_source.spec["columns"], "answer": "reward_model.groundtruth"}}
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out")
    assert msg.startswith("source 'verl': column 'reward_model.groundtruth' (mapped from 'answer') not in "
                          "train.parquet; available: ") and "did you mean 'reward_model.ground_truth'" in msg
    spec = {**jsonl_source.spec, "columns": {"question": "extra_info.question"}}  # JSON: no such nesting
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out")
    assert msg.startswith("source 'jsonl': column 'extra_info.question' (mapped from 'question') not in train.jsonl")


# ---------------------------------------------------------------------------- caught after ingest: staging cleaned


def test_binary_files_behind_a_glob_stop_the_run_and_leave_no_staging(tmp_path, capsys, jsonl_source):
    folder = Path(jsonl_source.spec["path"]).parent
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text(Path(jsonl_source.spec["path"]).read_text().splitlines()[0] + "\n")
    for name in ("b.jsonl", "c.jsonl"):  # binary files in a many-file source are rejects, not a config error
        (data / name).write_bytes(gzip.compress(b"{}\n" * 10))
    spec = {"type": "jsonl", "name": "glob", "path": str(data / "*.jsonl"), "image_root": str(folder)}
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out", staged=True)
    assert msg.startswith("source 'glob': 2 of 3 rows rejected at ingest (top: bad_file x2: ")
    assert msg.endswith("(nothing was published)")


def test_nested_key_missing_on_most_rows_stops_the_run_and_leaves_no_staging(tmp_path, capsys, jsonl_source):
    folder = Path(jsonl_source.spec["path"]).parent
    rows = [json.loads(line) for line in Path(jsonl_source.spec["path"]).read_text().splitlines()]
    nested = [{"extra_info": {"question": r["question"]}, "reward_model": {"ground_truth": r["answer"]},
               "image": r["image"]} if i == 0 else {"extra_info": {"question": r["question"]}, "image": r["image"]}
              for i, r in enumerate(rows)]
    (tmp_path / "nested.jsonl").write_text("\n".join(map(json.dumps, nested)) + "\n")
    spec = {"type": "jsonl", "name": "nested", "path": str(tmp_path / "nested.jsonl"), "image_root": str(folder),
            "columns": {"question": "extra_info.question", "answer": "reward_model.ground_truth"}}
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out", staged=True)
    assert msg.startswith(f"source 'nested': {len(rows) - 1} of {len(rows)} rows rejected at ingest "
                          f"(top: missing_answer x{len(rows) - 1}")
    # the same recipe with a threshold that tolerates it publishes one version with the one good row
    assert sightline(["data", "--config", recipe(tmp_path, spec), "--set", "ingest.max_reject_fraction=1"]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "mine").iterdir()) == ["v0001"]


# ---------------------------------------------------------------------------- inspect


def test_inspect_a_verl_parquet_shows_dotted_fields_and_a_mapping(capsys, verl_source):
    assert sightline(["data", "inspect", verl_source.spec["path"]]) == 0
    out = capsys.readouterr().out
    fields = out.split("fields of the first", 1)[1].split("recipe entry", 1)[0]
    for path in ("extra_info.question", "reward_model.ground_truth", "prompt[1].content", "images"):
        assert f"  {path} " in fields, path
    entry = yaml.safe_load(out.split("recipe entry", 1)[1].split(":\n", 1)[1].split("\nrow ", 1)[0])
    assert entry["sources"][0]["type"] == "parquet"
    assert entry["sources"][0]["columns"] == {"question": "extra_info.question",
                                              "answer": "reward_model.ground_truth", "image": "images"}
    first = next(iter(verl_source.problems.values()))
    assert f"row 0:\n  question: {first.question!r}" in out  # parsed with that mapping, <image> removed


def test_inspect_a_recipe_prints_each_source(tmp_path, capsys, verl_source, jsonl_source):
    assert sightline(["data", "inspect", recipe(tmp_path, verl_source.spec, jsonl_source.spec)]) == 0
    out = capsys.readouterr().out
    assert out.count("source '") == 2
    assert f"source 'verl': parquet, 1 file(s) at {verl_source.spec['path']}" in out
    assert f"source 'jsonl': jsonl, 1 file(s) at {jsonl_source.spec['path']}" in out


def test_workers_take_a_count_or_auto(capsys):
    import os

    from pipelines.data_cmd import AUTO_WORKERS_MAX, build_parser

    parse = build_parser().parse_args
    assert parse(["--workers", "3"]).workers == 3
    assert parse([]).workers is None  # the recipe's runner.workers then
    cores = len(os.sched_getaffinity(0))
    assert parse(["--workers", "auto"]).workers == max(1, min(AUTO_WORKERS_MAX, cores))
    for bad, said in (("0", "must be >= 1"), ("two", "a number of workers or auto")):
        with pytest.raises(SystemExit):
            parse(["--workers", bad])
        assert said in capsys.readouterr().err
