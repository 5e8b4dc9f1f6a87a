"""``inspect_source``: format, files, dotted fields, a guessed mapping and parsed rows."""
import io
import json

import pytest
import yaml
from PIL import Image

from curation.errors import SightlineError
from curation.sources import format_inspection, inspect_source, read_source


def png(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buf, "PNG")
    return buf.getvalue()


def test_verl_parquet_fields_mapping_and_rows(tmp_path):
    import datasets

    rows = [{"data_source": "geo",
             "prompt": [{"role": "user", "content": f"<image>Find x{i}. (A) 1 (B) 2"}],
             "images": [{"bytes": png((i, 0, 0)), "path": None}],
             "reward_model": {"style": "rule", "ground_truth": "B"},
             "extra_info": {"index": i, "question": f"Find x{i}. (A) 1 (B) 2"}} for i in range(5)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "train.parquet"))
    info = inspect_source(str(tmp_path / "train.parquet"))
    assert (info["type"], info["n_files"], info["name"]) == ("parquet", 1, "train")
    fields = {f["path"]: f["kind"] for f in info["fields"]}
    assert fields["reward_model.ground_truth"] == "str 'B'"
    assert fields["prompt[0].content"] == "str '<image>Find x0. (A) 1 (B) 2'"
    assert fields["images"] == "list[1] of image"
    assert info["mapping"] == {"question": "extra_info.question", "answer": "reward_model.ground_truth",
                               "image": "images"}
    assert info["missing"] == [] and info["error"] is None
    assert [(r["source_id"], r["question"], r["choices"], r["answer"]) for r in info["rows"]] == [
        (str(i), f"Find x{i}.", ["1", "2"], "B") for i in range(3)]
    assert info["rows"][0]["images"] == [f"png, 24x20, {len(png((0, 0, 0)))} bytes"]
    text = format_inspection(info)
    assert "parquet, 1 file(s)" in text and "reward_model.ground_truth" in text
    # The printed recipe entry reads the source as it says.
    entry = yaml.safe_load(text.split("recipe entry")[1].split(":\n", 1)[1].split("\nrow ")[0])["sources"][0]
    assert entry["columns"] == info["mapping"] and entry["type"] == "parquet"
    assert sum(kind == "example" for kind, _ in read_source(entry)) == 5


def test_llava_json_guesses_the_conversation_turns(tmp_path):
    (tmp_path / "img.png").write_bytes(png())
    rows = [{"id": f"r{i}", "image": "img.png",
             "conversations": [{"from": "human", "value": f"<image>\nWhat is {i}?"}, {"from": "gpt", "value": str(i)}]}
            for i in range(4)]
    (tmp_path / "llava.json").write_text(json.dumps(rows))
    info = inspect_source({"path": str(tmp_path / "llava.json"), "name": "llava"})
    assert info["type"] == "json"
    assert info["mapping"] == {"question": "conversations[0].value", "answer": "conversations[1].value",
                               "image": "image", "id": "id"}
    assert [(r["source_id"], r["question"], r["answer"]) for r in info["rows"]] == [
        ("r0", "What is 0?", "0"), ("r1", "What is 1?", "1"), ("r2", "What is 2?", "2")]


def test_missing_fields_are_named_and_given_columns_win(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"q": f"Q{i}?", "gold": "1", "pic": "a.png"})
                                                   for i in range(3)))
    info = inspect_source(str(tmp_path / "rows.jsonl"))
    assert info["type"] == "jsonl" and info["missing"] == ["question", "answer", "image"]
    assert info["error"] == "no field found for question, answer, image: add them to 'columns'"
    assert "cannot parse rows yet" in format_inspection(info)
    (tmp_path / "a.png").write_bytes(png())
    info = inspect_source({"path": str(tmp_path / "rows.jsonl"), "name": "r",
                           "columns": {"question": "q", "answer": "gold", "image": "pic"}})
    assert info["guessed"] == [] and len(info["rows"]) == 3 and info["rows"][2]["question"] == "Q2?"
    with pytest.raises(SightlineError, match="path does not exist"):
        inspect_source(str(tmp_path / "nope.json"))


def test_keyed_json_and_rejected_rows_are_shown(tmp_path):
    doc = {"p1": {"question": "Q?", "answer": "A", "image": "gone.png"}}
    (tmp_path / "k.json").write_text(json.dumps(doc))
    info = inspect_source(str(tmp_path / "k.json"))
    assert info["mapping"]["id"] == "_key"
    assert info["rows"] == [{"source_id": "p1", "reject": "image_missing",
                             "detail": f"no file {tmp_path / 'gone.png'}"}]
    assert "row p1: REJECTED image_missing" in format_inspection(info)


def test_image_bytes_are_preferred_over_a_path_column(tmp_path):
    import datasets

    features = datasets.Features({"pid": datasets.Value("string"), "question": datasets.Value("string"),
                                  "image": datasets.Value("string"), "decoded_image": datasets.Image(),
                                  "choices": datasets.List(datasets.Value("string")),
                                  "answer": datasets.Value("string")})
    datasets.Dataset.from_dict({"pid": ["1"], "question": ["Which is larger?"], "image": ["images/1.jpg"],
                                "decoded_image": [{"bytes": png(), "path": None}], "choices": [["3", "5"]],
                                "answer": ["5"]}, features=features).to_parquet(str(tmp_path / "testmini.parquet"))
    info = inspect_source(str(tmp_path / "testmini.parquet"))
    assert info["mapping"] == {"question": "question", "answer": "answer", "image": "decoded_image",
                               "choices": "choices", "id": "pid"}
    assert [(r["source_id"], r["choices"], r["answer"], r["answer_type"]) for r in info["rows"]] == [
        ("1", ["3", "5"], "5", "multiple_choice")]
