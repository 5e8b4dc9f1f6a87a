"""One small source per shape datasets are shipped in, read through ``read_source`` as shipped."""
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.sources import read_source, validate_spec
from schemas import row_id, to_table


def png(color=(200, 30, 30), size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def read(spec):
    items = list(read_source(spec))
    examples = [r for kind, r in items if kind == "example"]
    rejects = {r["source_id"]: r["reason"] for kind, r in items if kind == "reject"}
    if examples:
        to_table("examples", examples)  # every row fits the examples schema
    return examples, rejects


def test_jsonl_puzzle_set_one_file_per_category_by_glob(tmp_path):
    for k, category in enumerate(["colour", "count"]):
        folder = tmp_path / "puzzles" / category
        folder.mkdir(parents=True)
        lines = []
        for i in range(2):
            (folder / f"{i}.png").write_bytes(png((k, i, 9)))
            lines.append(json.dumps({"id": i, "question": f"{category} puzzle {i}?", "answer": str(i),
                                     "image": f"{category}/{i}.png", "category": category}))
        (tmp_path / "puzzles" / f"{category}.jsonl").write_text("\n".join(lines) + "\n")
    spec = {"type": "auto", "name": "puzzles", "path": str(tmp_path / "puzzles" / "*.jsonl"),
            "columns": {"task": "category"}, "answer_type": "integer"}
    assert validate_spec(spec)["type"] == "jsonl"
    examples, rejects = read(spec)
    assert not rejects
    # One source, files in sorted order; ids name the file, since each file numbers its rows from 0.
    assert [e["source_id"] for e in examples] == ["colour.jsonl:0", "colour.jsonl:1", "count.jsonl:0", "count.jsonl:1"]
    assert [e["task"] for e in examples] == ["colour", "colour", "count", "count"]
    assert examples[3]["images"] == [{"bytes": png((1, 1, 9)), "path": "count/1.png"}]
    assert examples[3]["answer"] == "1" and examples[3]["answer_type"] == "integer"


def test_json_array(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png())
    rows = [{"pid": "p1", "query": "Which shape? (A) circle (B) square", "label": "B", "image": "img/a.png"},
            {"pid": "p2", "query": "How many sides?", "label": 4, "image": "img/a.png"},
            [1, 2]]
    (tmp_path / "data.json").write_text(json.dumps(rows, indent=2))
    spec = {"type": "json", "name": "arr", "path": str(tmp_path / "data.json"),
            "columns": {"question": "query", "answer": "label", "id": "pid"}}
    examples, rejects = read(spec)
    assert rejects == {"2": "bad_json"}
    first, second = examples
    assert (first["source_id"], first["question"], first["choices"]) == ("p1", "Which shape?", ["circle", "square"])
    assert (first["answer"], first["answer_type"]) == ("B", "multiple_choice")
    assert (second["answer"], second["choices"]) == ("4", None)
    assert first["id"] == row_id(png(), "Which shape?")
    assert validate_spec({**spec, "type": "auto"})["type"] == "json"


def test_json_object_keyed_by_id_with_image_root(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "q7.png").write_bytes(png((1, 2, 3)))
    (images / "q9.png").write_bytes(png((4, 5, 6)))
    doc = {"q7": {"question": "<image>\nWhat colour is it?", "answer": "red", "image": "q7.png"},
           "q9": {"question": "Is it dark?", "answer": True, "image": "q9.png"},
           "q10": {"question": "Escape?", "answer": "x", "image": "../secret.png"}}
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "problems.json").write_text(json.dumps(doc))
    spec = {"type": "auto", "name": "keyed", "path": str(tmp_path / "meta" / "problems.json"),
            "image_root": str(images), "columns": {"task": "_key"}}
    examples, rejects = read(spec)
    assert [e["source_id"] for e in examples] == ["q7", "q9"]          # the key becomes source_id
    assert examples[0]["question"] == "What colour is it?"              # <image> placeholder stripped
    assert examples[0]["images"][0]["bytes"] == png((1, 2, 3))
    assert examples[0]["task"] == "q7"                                  # `_key` is mappable like a column
    assert examples[1]["answer"] == "yes"
    assert rejects == {"q10": "image_path_outside"}                     # paths may not escape image_root


def test_parquet_written_by_datasets_with_image_feature(tmp_path):
    import datasets

    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "options": datasets.List(datasets.Value("int64")), "image": datasets.Image()})
    ds = datasets.Dataset.from_dict({
        "question": ["How many dots?", "How many lines?"], "answer": ["A", "E"],
        "options": [[3, 4, 5], [1, 2]],
        "image": [{"bytes": png((0, 0, 0)), "path": "dots.png"}, {"bytes": png((9, 9, 9)), "path": None}],
    }, features=features)
    ds.to_parquet(str(tmp_path / "train.parquet"))
    spec = {"type": "auto", "name": "hfpq", "path": str(tmp_path / "train.parquet"), "columns": {"choices": "options"}}
    assert validate_spec(spec)["type"] == "parquet"
    examples, rejects = read(spec)
    assert [(e["choices"], e["answer"]) for e in examples] == [(["3", "4", "5"], "A")]   # numbers -> strings
    assert examples[0]["images"] == [{"bytes": png((0, 0, 0)), "path": "dots.png"}]
    assert rejects == {"1": "answer_letter_outside_choices"}


def verl_rows():
    prompt = "<image>Which bar is tallest?\nA. left\nB. middle\nC. right"
    return [
        {"data_source": "charts", "ability": "math",
         "prompt": [{"role": "system", "content": "Think first."}, {"role": "user", "content": prompt}],
         "images": [{"bytes": png((10, 0, 0)), "path": "a.png"}, {"bytes": png((0, 10, 0)), "path": "b.png"}],
         "reward_model": {"style": "rule", "ground_truth": "B"},
         "extra_info": {"split": "train", "index": 0, "question": prompt}},
        {"data_source": "charts", "ability": "math",
         "prompt": [{"role": "user", "content": "<image><image>What is the sum of the two numbers?"}],
         "images": [{"bytes": png((20, 0, 0)), "path": None}, {"bytes": b"", "path": None}],
         "reward_model": {"style": "rule", "ground_truth": "12"},
         "extra_info": {"split": "train", "index": 1, "question": "What is the sum of the two numbers?"}},
    ]


def test_verl_easyr1_parquet_nested_columns_and_image_lists(tmp_path):
    import datasets

    features = datasets.Features({
        "data_source": datasets.Value("string"), "ability": datasets.Value("string"),
        "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
        "reward_model": {"style": datasets.Value("string"), "ground_truth": datasets.Value("string")},
        "extra_info": {"split": datasets.Value("string"), "index": datasets.Value("int64"),
                       "question": datasets.Value("string")}})
    datasets.Dataset.from_list(verl_rows(), features=features).to_parquet(str(tmp_path / "verl.parquet"))
    spec = {"name": "verl", "path": str(tmp_path / "verl.parquet"),     # type defaults to auto
            "columns": {"question": "prompt[-1].content", "answer": "reward_model.ground_truth",
                        "image": "images", "task": "data_source", "id": "extra_info.index"}}
    examples, rejects = read(spec)
    [row] = examples
    assert row["question"] == "Which bar is tallest?"                  # placeholder out, options parsed
    assert (row["choices"], row["answer"], row["answer_type"]) == (["left", "middle", "right"], "B", "multiple_choice")
    assert [im["bytes"] for im in row["images"]] == [png((10, 0, 0)), png((0, 10, 0))]   # every image kept
    assert (row["source_id"], row["task"]) == ("0", "charts")
    assert rejects == {"1": "missing_image"}                            # its second image is empty
    with pytest.raises(SightlineError, match=r"^source 'verl': column 'reward_model.groundtruth' \(mapped from "
                                             r"'answer'\) not in verl.parquet; available: .*extra_info.question, .*"
                                             r"images, prompt\[0\].content, .*did you mean 'reward_model.ground_truth'"):
        validate_spec({**spec, "columns": {**spec["columns"], "answer": "reward_model.groundtruth"}})
    with pytest.raises(SightlineError, match=r"column 'images.bytes' \(mapped from 'image'\)"):
        validate_spec({**spec, "columns": {**spec["columns"], "image": "images.bytes"}})   # a list, not a struct
    other = read({**spec, "columns": {**spec["columns"], "question": "extra_info.question", "image": "images[0]"}})
    assert [len(e["images"]) for e in other[0]] == [1, 1] and other[0][1]["question"].startswith("What is the sum")


def test_llava_style_json_conversations(tmp_path):
    coco = tmp_path / "coco" / "train2017"
    coco.mkdir(parents=True)
    (coco / "000001.png").write_bytes(png((7, 7, 7)))
    rows = [{"id": "000001", "image": "train2017/000001.png",
             "conversations": [{"from": "human", "value": "<image>\nWhat colour is the wall?"},
                               {"from": "gpt", "value": "Grey."}]},
            {"id": "000002", "image": "train2017/000001.png",
             "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
            {"id": "000003", "image": "train2017/000001.png",
             "conversations": [{"from": "human", "value": "Only a question?"}]}]
    (tmp_path / "llava_v1_5.json").write_text(json.dumps(rows))
    spec = {"type": "json", "name": "llava", "path": str(tmp_path / "llava_v1_5.json"),
            "image_root": str(tmp_path / "coco"),
            "columns": {"question": "conversations[0].value", "answer": "conversations[1].value"}}
    examples, rejects = read(spec)
    assert [(e["source_id"], e["question"], e["answer"]) for e in examples] == [
        ("000001", "What colour is the wall?", "Grey.")]
    assert examples[0]["images"][0] == {"bytes": png((7, 7, 7)), "path": "train2017/000001.png"}
    assert rejects == {"000002": "empty_question", "000003": "missing_answer"}


def test_hf_save_to_disk_folder(tmp_path):
    import datasets

    features = datasets.Features({"problem": datasets.Value("string"), "solution": datasets.Value("string"),
                                  "images": datasets.List(datasets.Image())})
    datasets.Dataset.from_dict({"problem": ["Find x.", "Find y."], "solution": ["3", "4"],
                                "images": [[{"bytes": png(), "path": None}], []]},
                               features=features).save_to_disk(str(tmp_path / "geo"))
    spec = {"type": "auto", "name": "geo", "path": str(tmp_path / "geo"),
            "columns": {"question": "problem", "answer": "solution", "image": "images"}}
    assert validate_spec(spec)["type"] == "hf_disk"
    examples, rejects = read(spec)
    assert [(e["source_id"], e["question"], e["answer"], len(e["images"])) for e in examples] == [
        ("0", "Find x.", "3", 1)]
    assert rejects == {"1": "missing_image"}


def test_folder_of_problem_folders_each_with_data_json(tmp_path):
    root = tmp_path / "problems"
    for i, (question, answer) in enumerate([("Which is bigger?\nA. 2\nB. 3", "B"), ("Pick all odd: (A) 1 (B) 2 (C) 3", "A, C")]):
        folder = root / f"{i:04d}"
        folder.mkdir(parents=True)
        (folder / "figure.png").write_bytes(png((i, 0, 0)))
        (folder / "data.json").write_text(json.dumps({"question": question, "answer": answer, "image": "figure.png"}))
    (root / "0001" / "notes.txt").write_text("not a source file")
    for path, kind in ((root / "*" / "data.json", "json"), (root / "**" / "data.json", "json"), (root, "json")):
        spec = {"type": "auto", "name": "folders", "path": str(path)}
        assert validate_spec(spec)["type"] == kind
        examples, rejects = read(spec)
        assert not rejects
        assert [e["source_id"] for e in examples] == ["0000/data.json", "0001/data.json"]
        assert [e["images"][0]["bytes"] for e in examples] == [png((0, 0, 0)), png((1, 0, 0))]  # relative to each folder
        assert [(e["question"], e["choices"]) for e in examples] == [
            ("Which is bigger?", ["2", "3"]), ("Pick all odd:", ["1", "2", "3"])]
        assert [(e["answer"], e["answer_type"]) for e in examples] == [("B", "multiple_choice"), ("A, C", "multi_choice")]


def test_parquet_via_pyarrow_nested_struct_column_paths(tmp_path):
    table = pa.Table.from_pylist([
        {"meta": {"q": "Is it on?", "a": "yes"}, "img": png(), "opts": [1.5, 2.0]},
        {"meta": {"q": "Is it off?", "a": "no"}, "img": png((1, 1, 1)), "opts": None}])
    pq.write_table(table, tmp_path / "x.parquet")
    spec = {"type": "parquet", "name": "pa", "path": str(tmp_path / "x.parquet"),
            "columns": {"question": "meta.q", "answer": "meta.a", "image": "img", "choices": "opts"}}
    examples, rejects = read(spec)
    assert [(e["question"], e["answer"], e["choices"]) for e in examples] == [
        ("Is it on?", "yes", ["1.5", "2"]), ("Is it off?", "no", None)]
    assert not rejects


def test_docs_recipe_snippets_use_known_keys():
    """Every `sources:` entry in docs/sources.md names only keys and columns the reader knows."""
    import re
    from pathlib import Path

    import yaml

    from curation.sources import COLUMNS, DEFAULTS, TYPES

    text = (Path(__file__).parents[2] / "docs" / "sources.md").read_text()
    entries = [yaml.safe_load(block)[0] for block in re.findall(r"```yaml\n(  - .*?)```", text, re.DOTALL)]
    assert len(entries) == 11  # + the VLMEvalKit TSV and the chat entries
    for entry in entries:
        assert set(entry) <= {"type", "name", "path", *DEFAULTS}, entry
        assert entry.get("type", "auto") in TYPES and set(entry.get("columns") or {}) <= set(COLUMNS)
