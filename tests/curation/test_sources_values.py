"""Column paths and values as datasets ship them: nested keys, numbers, letters, image lists."""
import io
import json

import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.sources import REASONS, read_source, validate_spec
from curation.sources.paths import MISSING, flatten, parse_path, resolve
from curation.sources.values import gold_letters
from schemas import row_id


def png(color=(200, 30, 30), size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_column_paths_parse_resolve_and_flatten():
    assert parse_path("prompt[-1].content") == ("prompt", -1, "content")
    assert parse_path("extra_info.question") == ("extra_info", "question")
    assert parse_path("grid[0][2]") == ("grid", 0, 2)
    for bad in ("a..b", ".a", "a.", "[0]", "a[x]", " a"):
        with pytest.raises(ValueError):
            parse_path(bad)
    row = {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
           "a.b": 1, "a": {"b": 2}, "images": [{"bytes": b"x", "path": None}], "n": None}
    assert resolve(row, "prompt[-1].content") == "q" and resolve(row, "prompt[0].role") == "system"
    assert resolve(row, "a.b") == 1                      # a flat column literally named "a.b" wins
    assert resolve(row, "prompt[5].content") is MISSING and resolve(row, "x.y") is MISSING
    assert resolve(row, "n") is None and resolve(row, "n.m") is MISSING
    assert list(flatten(row)) == ["prompt[0].role", "prompt[0].content", "prompt[1].role", "prompt[1].content",
                                  "a.b", "images", "n"]


def test_gold_letters():
    assert gold_letters("B") == ["B"] and gold_letters("(C)") == ["C"] and gold_letters("D.") == ["D"]
    assert gold_letters("A, C") == ["A", "C"] and gold_letters("A and D") == ["A", "D"]
    assert gold_letters("AC") == ["A", "C"]
    assert gold_letters("triangle") is None and gold_letters("b") is None and gold_letters("AA") is None


@pytest.fixture
def make_source(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(png((0, 0, 255)))

    def make(rows, **spec):
        path = tmp_path / "rows.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        items = list(read_source({"type": "jsonl", "name": "v", "path": str(path), **spec}))
        examples = {r["source_id"]: r for kind, r in items if kind == "example"}
        rejects = {r["source_id"]: (r["reason"], r["detail"]) for kind, r in items if kind == "reject"}
        assert all(reason in REASONS for reason, _ in rejects.values())
        return examples, rejects

    return make


def test_choices_answers_and_their_precise_rejects(make_source):
    rows = [
        {"question": "Q?", "answer": "B", "image": "a.png", "choices": [3, 4.5, 6.0]},          # 0 numbers
        {"question": "Q?", "answer": "A, C", "image": "a.png", "choices": ["x", "y", "z"]},     # 1 multi
        {"question": "Q?", "answer": "D", "image": "a.png", "choices": ["x", "y", "z"]},       # 2 outside
        {"question": "Q?", "answer": "A, E", "image": "a.png", "choices": ["x", "y", "z"]},    # 3 outside
        {"question": "Q?", "answer": "y", "image": "a.png", "choices": ["x", "y", "z"]},       # 4 option text
        {"question": "Q?", "answer": "1", "image": "a.png", "choices": ["x", True]},           # 5 bool choice
        {"question": "Q?", "answer": "1", "image": "a.png", "choices": ["x", {"k": 1}]},       # 6 object choice
        {"question": "  ", "answer": "1", "image": "a.png"},                                   # 7 empty question
        {"question": "Q?", "answer": "", "image": "a.png"},                                    # 8 empty answer
        {"question": None, "answer": "1", "image": "a.png"},                                   # 9 null question
        {"answer": "1", "image": "a.png"},                                                     # 10 no question
        {"question": "Q?", "image": "a.png"},                                                  # 11 no answer
        {"question": "Q?", "answer": "AB", "image": "a.png", "choices": ["AB", "CD"]},         # 12 a segment
        {"question": "Q?", "answer": "C", "image": "a.png", "choices": ["x", "y", "z"], "answer_type": "text"},  # 13
    ]
    examples, rejects = make_source(rows)
    assert (examples["0"]["choices"], examples["0"]["answer_type"]) == (["3", "4.5", "6"], "multiple_choice")
    assert (examples["1"]["answer"], examples["1"]["answer_type"]) == ("A, C", "multi_choice")
    assert examples["4"]["answer_type"] == "multiple_choice"
    assert examples["12"]["answer_type"] == "multiple_choice"          # the option's own text, not two letters
    assert examples["13"]["answer_type"] == "text"                     # the row's own answer_type wins
    assert {k: r for k, (r, _) in rejects.items()} == {
        "2": "answer_letter_outside_choices", "3": "answer_letter_outside_choices", "5": "bad_choices",
        "6": "bad_choices", "7": "empty_question", "8": "empty_answer", "9": "missing_question",
        "10": "missing_question", "11": "missing_answer"}
    assert rejects["2"][1] == "gold 'D' names D but the 3 choices are A-C"
    assert "strings or numbers" in rejects["5"][1] and "strings or numbers" in rejects["6"][1]
    assert rejects["9"][1] == "'question' is null"
    assert rejects["10"][1].startswith("no 'question' (question) in the row")


def test_options_in_the_question_become_choices_only_when_the_row_has_none(make_source):
    rows = [
        {"question": "<image>\nWhich is red? (A) left (B) right", "answer": "A", "image": "a.png"},
        {"question": "Which is red?\nChoices:\nA: left\nB: right\nAnswer with the letter.", "answer": "B",
         "image": "a.png"},
        {"question": "Which is red? (A) left (B) right", "answer": "A", "image": "a.png", "choices": ["l", "r"]},
        {"question": "Points (A) and (B) are where?", "answer": "on the line", "image": "a.png"},
    ]
    examples, _ = make_source(rows)
    assert (examples["0"]["question"], examples["0"]["choices"]) == ("Which is red?", ["left", "right"])
    assert (examples["1"]["question"], examples["1"]["choices"]) == (
        "Which is red?\nAnswer with the letter.", ["left", "right"])
    assert (examples["2"]["question"], examples["2"]["choices"]) == ("Which is red? (A) left (B) right", ["l", "r"])
    assert (examples["3"]["choices"], examples["3"]["answer_type"]) == (None, "text")
    off, _ = make_source(rows[:1], parse_options=False)
    assert (off["0"]["question"], off["0"]["choices"]) == ("Which is red? (A) left (B) right", None)


def test_image_values_path_struct_bytes_and_lists(make_source, tmp_path):
    import base64

    rows = [
        {"question": "Q0?", "answer": "1", "image": "a.png"},
        {"question": "Q1?", "answer": "1", "image": ["a.png", "b.png"]},
        {"question": "Q2?", "answer": "1", "image": [{"path": "b.png"}, "a.png"]},
        {"question": "Q3?", "answer": "1", "image": ["a.png", "gone.png"]},
        {"question": "Q4?", "answer": "1", "image": []},
        {"question": "Q5?", "answer": "1", "image": ["a.png", 7]},
        {"question": "Q6?", "answer": "1", "image": {"bytes": base64.b64encode(png()).decode(), "path": None}},
    ]
    examples, rejects = make_source(rows)
    assert examples["0"]["images"] == [{"bytes": png(), "path": "a.png"}]
    assert [im["bytes"] for im in examples["1"]["images"]] == [png(), png((0, 0, 255))]   # all kept, in order
    assert [im["path"] for im in examples["2"]["images"]] == ["b.png", "a.png"]
    assert examples["0"]["id"] == row_id(png(), "Q0?")
    assert examples["1"]["id"] != row_id(png(), "Q1?")               # the second image is part of the id
    assert rejects["3"][0] == "image_missing" and rejects["3"][1].startswith("image 1 of 2: no file")
    assert rejects["4"] == ("missing_image", "the image list is empty")
    assert rejects["5"][0] == "bad_image_value" and rejects["5"][1].startswith("image 1 of 2:")
    assert rejects["6"][0] == "bad_image_value"                       # base64 text is not bytes


def test_image_root_and_default_root_per_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png())
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "rows.jsonl").write_text(json.dumps({"question": "Q?", "answer": "1", "image": "a.png"}))
    spec = {"type": "jsonl", "name": "r", "path": str(tmp_path / "meta" / "rows.jsonl")}
    assert [r["reason"] for _, r in read_source(spec)] == ["image_missing"]   # relative to meta/ by default
    [(kind, row)] = read_source({**spec, "image_root": str(tmp_path / "imgs")})
    assert kind == "example" and row["images"][0]["bytes"] == png()
    with pytest.raises(SightlineError, match="image_root is not a folder"):
        validate_spec({**spec, "image_root": str(tmp_path / "nope")})


def test_mapping_to_a_missing_nested_key_is_one_config_error(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    rows = [{"extra_info": {"question": "Q?"}, "reward_model": {"ground_truth": "1"}, "image": "a.png"}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    spec = {"type": "json", "name": "n", "path": str(tmp_path / "rows.json"),
            "columns": {"question": "extra_info.question", "answer": "reward_model.ground_truth"}}
    assert validate_spec(spec)["columns"]["answer"] == "reward_model.ground_truth"
    with pytest.raises(SightlineError) as e:
        validate_spec({**spec, "columns": {**spec["columns"], "answer": "reward_model.groundtruth"}})
    message = str(e.value)
    assert "\n" not in message
    assert message == ("source 'n': column 'reward_model.groundtruth' (mapped from 'answer') not in rows.json; "
                       "available: extra_info.question, image, reward_model.ground_truth; "
                       "did you mean 'reward_model.ground_truth'?")
    with pytest.raises(SightlineError, match=r"columns.question: bad column path 'a\.\.b'"):
        validate_spec({**spec, "columns": {"question": "a..b"}})


def test_records_inside_a_json_document(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    doc = {"version": 2, "data": [{"question": "Q?", "answer": "1", "image": "a.png"}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    spec = {"type": "json", "name": "d", "path": str(tmp_path / "doc.json")}
    with pytest.raises(SightlineError, match="rows seem to sit under 'data': set records: data"):
        validate_spec(spec)
    [(kind, row)] = read_source({**spec, "records": "data"})
    assert (kind, row["source_id"], row["question"]) == ("example", "0", "Q?")
