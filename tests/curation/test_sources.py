import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.sources import read_source, validate_spec
from schemas import row_id, to_table
from schemas.ids import source_row_id


def png(color=(200, 30, 30), size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def split(items):
    items = list(items)
    examples = [r for kind, r in items if kind == "example"]
    rejects = {r["source_id"]: r for kind, r in items if kind == "reject"}
    return examples, rejects


# ---------------------------------------------------------------- JSONL


@pytest.fixture
def jsonl_source(tmp_path):
    root = tmp_path / "set"
    (root / "imgs" / "folder.png").mkdir(parents=True)   # a folder named like an image
    (root / "imgs" / "a.png").write_bytes(png())
    (tmp_path / "outside.png").write_bytes(png((0, 0, 255)))
    absolute = tmp_path / "abs.png"
    absolute.write_bytes(png((0, 255, 0)))
    good = {"question": "Which colour?", "answer": "B", "image": "imgs/a.png", "choices": ["blue", "red"]}
    lines = [
        json.dumps(good).encode(),                                                    # 0
        b"{not json",                                                                 # 1
        '{"question": "caf\u00e9?", "answer": "x", "image": "imgs/a.png"}'.encode("latin-1"),  # 2
        json.dumps({"answer": "1", "image": "imgs/a.png"}).encode(),                  # 3
        json.dumps({"question": "Q?", "answer": "  ", "image": "imgs/a.png"}).encode(),  # 4
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/a.png", "choices": "a,b"}).encode(),  # 5
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/gone.png"}).encode(),  # 6
        json.dumps({"question": "Q?", "answer": "1", "image": "../outside.png"}).encode(),  # 7
        json.dumps({"question": "How many?", "answer": 3, "image": str(absolute)}).encode(),  # 8
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/folder.png"}).encode(),  # 9
        b"",                                                                          # 10 blank
        b"[1, 2]",                                                                    # 11
        json.dumps({"question": "Q?", "answer": "1"}).encode(),                       # 12
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/a.png", "choices": ["a", [2]]}).encode(),  # 13
        json.dumps({"question": 5, "answer": "1", "image": "imgs/a.png"}).encode(),   # 14
        json.dumps({"question": "Q?", "answer": ["x"], "image": "imgs/a.png"}).encode(),  # 15
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/a.png", "answer_type": "essay"}).encode(),  # 16
        b'{"question": "Q\\ud800?", "answer": "1", "image": "imgs/a.png"}',           # 17 lone surrogate
        json.dumps({"question": "Q?", "answer": "1", "image": {"bytes": "aGk=", "path": None}}).encode(),  # 18
        json.dumps({"question": "Q?", "answer": "1", "image": "imgs/a.png", "answer_type": ["x"]}).encode(),  # 19
    ]
    path = root / "data.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"type": "jsonl", "name": "toy", "path": str(path), "answer_type": "integer", "task": "colours"}


def test_jsonl_reads_values_and_yields_each_reject(jsonl_source, tmp_path):
    examples, rejects = split(read_source(jsonl_source))
    assert [e["source_id"] for e in examples] == ["0", "8", "16"]
    first, second, unknown_type = examples
    assert unknown_type["answer_type"] == "integer"  # "essay" is no type we know: inferred from the gold "1"
    image = png()
    assert first["id"] == row_id(image, "Which colour?")
    assert first["images"][0] == {"bytes": image, "path": "imgs/a.png"}
    assert (first["source"], first["question"], first["answer"]) == ("toy", "Which colour?", "B")
    assert first["choices"] == ["blue", "red"]
    assert first["answer_type"] == "multiple_choice"            # choices and no answer_type given
    assert first["task"] == "colours"
    assert set(first) == set(to_table("examples", [first]).column_names)
    assert second["answer"] == "3" and second["answer_type"] == "integer"  # spec default
    assert second["images"][0]["bytes"] == png((0, 255, 0))          # absolute paths are allowed

    expected = {"1": "bad_json", "2": "bad_text_encoding", "3": "missing_question", "4": "empty_answer",
                "5": "bad_choices", "6": "image_missing", "7": "image_path_outside",
                "9": "image_unreadable", "11": "bad_json", "12": "missing_image", "13": "bad_choices",
                "14": "bad_question", "15": "bad_answer",
                "17": "bad_text_encoding", "18": "bad_image_value", "19": "bad_answer_type"}
    assert {k: r["reason"] for k, r in rejects.items()} == expected
    missing = rejects["6"]
    assert missing["stage"] == "ingest" and missing["source"] == "toy"
    assert missing["id"] == source_row_id("toy", "6")
    assert missing["question"] == "Q?" and "gone.png" in missing["detail"]
    assert len(examples) + len(rejects) == 19                    # 20 lines, one blank


def test_jsonl_options_allow_outside_limit_and_size_bound(jsonl_source):
    examples, _ = split(read_source({**jsonl_source, "allow_outside": True}))
    assert [e["source_id"] for e in examples] == ["0", "7", "8", "16"]
    assert examples[1]["images"][0]["bytes"] == png((0, 0, 255))
    assert len(list(read_source(jsonl_source, limit=3))) == 3
    assert len(list(read_source({**jsonl_source, "limit": 2}))) == 2
    _, rejects = split(read_source({**jsonl_source, "max_image_bytes": 10}))
    assert rejects["0"]["reason"] == "image_too_large_bytes"


def test_spec_mistakes_are_one_line_errors(jsonl_source, tmp_path):
    with pytest.raises(SightlineError, match="unknown type 'xml'"):
        validate_spec({**jsonl_source, "type": "xml"})
    with pytest.raises(SightlineError, match="path does not exist"):
        validate_spec({**jsonl_source, "path": str(tmp_path / "nope.jsonl")})
    with pytest.raises(SightlineError, match=r"column 'prompt' \(mapped from 'question'\) not in data.jsonl; "
                                             r"available: answer, answer_type, choices, image, question"):
        validate_spec({**jsonl_source, "columns": {"question": "prompt"}})
    with pytest.raises(SightlineError, match="unknown key"):
        validate_spec({**jsonl_source, "colums": {}})
    with pytest.raises(SightlineError, match="unknown column name"):
        validate_spec({**jsonl_source, "columns": {"caption": "c"}})
    s = validate_spec(jsonl_source)
    assert validate_spec(s) == s                                  # a validated spec validates again, unchanged
    assert s["columns"]["question"] == "question" and s["allow_outside"] is False


# ---------------------------------------------------------------- Parquet


def write_parquet(path, rows, schema):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)


PARQUET_SCHEMA = pa.schema([("pid", pa.string()), ("q", pa.string()), ("a", pa.string()),
                            ("img", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                            ("options", pa.list_(pa.string()))])


def test_parquet_file_with_hf_image_structs(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "p.png").write_bytes(png((9, 9, 9)))
    rows = [
        {"pid": "x1", "q": "Q one?", "a": "A", "img": {"bytes": png(), "path": "one.png"}, "options": ["a", "b"]},
        {"pid": "x2", "q": "Q two?", "a": "7", "img": {"bytes": None, "path": "pics/p.png"}, "options": []},
        {"pid": "x3", "q": "Q three?", "a": "7", "img": None, "options": None},
        {"pid": "x4", "q": "Q four?", "a": None, "img": {"bytes": png(), "path": None}, "options": None},
        {"pid": "x5", "q": "Q five?", "a": "5", "img": {"bytes": None, "path": "pics/none.png"}, "options": None},
    ]
    write_parquet(tmp_path / "eval.parquet", rows, PARQUET_SCHEMA)
    spec = {"type": "parquet", "name": "pq", "path": str(tmp_path / "eval.parquet"), "batch_size": 2,
            "columns": {"question": "q", "answer": "a", "image": "img", "choices": "options", "id": "pid"}}
    examples, rejects = split(read_source(spec))
    assert [(e["source_id"], e["answer"], e["answer_type"]) for e in examples] == [
        ("x1", "A", "multiple_choice"), ("x2", "7", "integer")]  # inferred from the gold
    assert examples[0]["images"][0] == {"bytes": png(), "path": "one.png"}
    assert examples[1]["images"][0]["bytes"] == png((9, 9, 9)) and examples[1]["choices"] is None
    assert {k: r["reason"] for k, r in rejects.items()} == {
        "x3": "missing_image", "x4": "missing_answer", "x5": "image_missing"}


def test_parquet_folder_ids_name_the_file_and_columns_are_checked(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    schema = pa.schema([("question", pa.string()), ("answer", pa.string()), ("image", pa.binary())])
    for k in range(2):
        write_parquet(folder / f"part-{k}.parquet",
                      [{"question": f"q{k}{i}?", "answer": "yes", "image": png((k, i, 0))} for i in range(3)], schema)
    spec = {"type": "parquet", "name": "shards", "path": str(folder), "answer_type": "yes_no"}
    examples, rejects = split(read_source(spec))
    assert not rejects
    assert [e["source_id"] for e in examples] == [f"part-{k}.parquet:{i}" for k in range(2) for i in range(3)]
    assert examples[4]["images"][0]["bytes"] == png((1, 1, 0)) and examples[4]["answer_type"] == "yes_no"
    with pytest.raises(SightlineError, match=r"column 'choices_x'.* available: answer, image, question"):
        validate_spec({**spec, "columns": {"choices": "choices_x"}})


# ---------------------------------------------------------------- HF save_to_disk


def test_hf_disk_dataset_and_dataset_dict(tmp_path):
    import datasets

    features = datasets.Features({"query": datasets.Value("string"), "label": datasets.Value("int64"),
                                  "opts": datasets.List(datasets.Value("string")), "picture": datasets.Image()})
    ds = datasets.Dataset.from_dict({
        "query": ["Which is red?", "Which is blue?", "Which?"],
        "label": [1, 0, 5],
        "opts": [["blue", "red"], ["blue", "red"], ["x", "y"]],
        "picture": [{"bytes": png(), "path": None}, {"bytes": png((0, 0, 255)), "path": None}, None],
    }, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    spec = {"type": "hf_disk", "name": "hf", "path": str(tmp_path / "ds"), "answer_is_index": True,
            "columns": {"question": "query", "answer": "label", "choices": "opts", "image": "picture"}}
    examples, rejects = split(read_source(spec))
    assert [(e["source_id"], e["answer"], e["answer_type"]) for e in examples] == [
        ("0", "B", "multiple_choice"), ("1", "A", "multiple_choice")]
    assert examples[1]["images"][0]["bytes"] == png((0, 0, 255))
    assert examples[0]["id"] == row_id(png(), "Which is red?")
    assert rejects["2"]["reason"] == "bad_answer"  # index 5 of two choices: checked before the image

    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(SightlineError, match="choose a split"):
        validate_spec({**spec, "path": str(tmp_path / "dd")})
    assert len(list(read_source({**spec, "path": str(tmp_path / "dd"), "split": "test"}))) == 3


def test_jsonl_line_over_the_bound_is_a_reject_and_reading_goes_on(tmp_path, monkeypatch):
    from curation.sources import formats

    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 200)
    (tmp_path / "a.png").write_bytes(png())
    row = {"question": "How many?", "answer": "2", "image": "a.png"}
    long_row = {**row, "question": "How many? " + "x" * 500}          # ~560 bytes: over the bound
    lines = [json.dumps(row), json.dumps(long_row), json.dumps({**row, "answer": "3"})]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    examples, rejects = split(read_source({"type": "jsonl", "name": "long", "path": str(tmp_path / "d.jsonl")}))
    assert [e["source_id"] for e in examples] == ["0", "2"]           # the line after it is read whole
    assert [e["answer"] for e in examples] == ["2", "3"]
    assert rejects["1"]["reason"] == "line_too_long" and "200 bytes" in rejects["1"]["detail"]
