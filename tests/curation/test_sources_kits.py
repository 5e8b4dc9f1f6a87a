"""The shapes evaluation kits and real repositories ship: VLMEvalKit / MMBench TSVs (base64 images,
option columns, hints, shared images), CSV, data: URIs, Git LFS pointers, mixed folders, Windows
paths, and the answer types sources write."""
import base64
import csv
import io
import json

import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.sources import REASONS, inspect_source, read_source, validate_spec
from curation.sources.values import map_answer_type

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 12345\n"


def png(color=(200, 30, 30), size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def split(items):
    examples, rejects = {}, {}
    for kind, row in items:
        (examples if kind == "example" else rejects)[row["source_id"]] = row
    return examples, rejects


def write_tsv(path, header, rows, delimiter="\t"):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def mmbench_tsv(tmp_path):
    """VLMEvalKit's MMBench layout: index, question, hint, A-E (empty past the last option), answer,
    category, image (base64; a short value names the row whose image it shares)."""
    red, blue = png((220, 0, 0)), png((0, 0, 220))
    header = ["index", "question", "hint", "A", "B", "C", "D", "E", "answer", "category", "image"]
    rows = [
        [0, "What colour is the square?", "The picture is a flat square.", "red", "blue", "", "", "", "A",
         "colour", b64(red)],
        [1, "Which colour is missing?", "", "red", "blue", "green", "yellow", "black", "C", "colour", b64(blue)],
        [2, "Is the square blue?", "", "yes", "no", "", "", "", "A", "attribute", "1"],  # shares row 1's image
        [3, "How many squares?", "", "1", "2", "3", "", "", "D", "count", b64(red)],     # D past the options
    ]
    path = tmp_path / "MMBench_DEV_EN.tsv"
    write_tsv(path, header, rows)
    return path, red, blue


def test_vlmevalkit_tsv_reads_with_type_auto_and_no_columns(tmp_path):
    path, red, blue = mmbench_tsv(tmp_path)
    s = validate_spec({"name": "mmb", "path": str(path)})
    assert s["type"] == "tsv"
    assert s["columns"]["choices"] == ["A", "B", "C", "D", "E"] and s["columns"]["id"] == "index"
    examples, rejects = split(read_source({"name": "mmb", "path": str(path)}))
    assert sorted(examples) == ["0", "1", "2"]
    first = examples["0"]
    assert first["question"] == "Hint: The picture is a flat square.\nWhat colour is the square?"
    assert first["choices"] == ["red", "blue"]                     # empty option columns are no options
    assert (first["answer"], first["answer_type"], first["task"]) == ("A", "multiple_choice", "colour")
    assert first["images"][0]["bytes"] == red                      # base64 decoded
    assert examples["1"]["choices"] == ["red", "blue", "green", "yellow", "black"]
    assert examples["1"]["question"] == "Which colour is missing?"  # no hint, nothing prepended
    assert examples["2"]["images"][0]["bytes"] == blue             # index "1" names row 1's image
    assert rejects["3"]["reason"] == "answer_letter_outside_choices"


def test_columns_map_several_option_columns_into_choices(tmp_path):
    header = ["qid", "text", "opt1", "opt2", "opt3", "gold", "picture"]
    (tmp_path / "a.png").write_bytes(png())
    write_tsv(tmp_path / "quiz.csv", header, [["q1", "Which?", "cat", "dog", "", "B", "a.png"]], delimiter=",")
    spec = {"name": "quiz", "path": str(tmp_path / "quiz.csv"),
            "columns": {"id": "qid", "question": "text", "answer": "gold", "image": "picture",
                        "choices": ["opt1", "opt2", "opt3"]}}
    examples, _ = split(read_source(spec))
    assert examples["q1"]["choices"] == ["cat", "dog"] and examples["q1"]["answer"] == "B"
    with pytest.raises(SightlineError, match=r"column 'opt4' \(mapped from 'choices'\) not in quiz.csv"):
        validate_spec({**spec, "columns": {**spec["columns"], "choices": ["opt1", "opt4"]}})


def test_inline_images_data_uri_base64_and_image_lists(tmp_path):
    red, blue = png((220, 0, 0)), png((0, 0, 220))
    rows = [{"question": "Q0?", "answer": "1", "image": "data:image/png;base64," + b64(red)},
            {"question": "Q1?", "answer": "1", "image": [b64(red), "data:image/png;base64," + b64(blue)]},
            {"question": "Q2?", "answer": "1", "image": str([b64(blue), b64(red)])},   # a list written as text
            {"question": "Q3?", "answer": "1", "image": "data:image/png,notbase64"},
            {"question": "Q4?", "answer": "1", "image": "iVBORw0KGgo" + "!" * 100}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples, rejects = split(read_source({"name": "inline", "path": str(tmp_path / "d.jsonl")}))
    assert examples["0"]["images"][0] == {"bytes": red, "path": None}
    assert [im["bytes"] for im in examples["1"]["images"]] == [red, blue]
    assert [im["bytes"] for im in examples["2"]["images"]] == [blue, red]
    assert rejects["3"]["reason"] == "bad_image_value" and "not base64" in rejects["3"]["detail"]
    assert rejects["4"]["reason"] == "image_missing"  # not base64 text: taken as a path, and not there


def test_git_lfs_pointers_are_named_as_such(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(LFS)
    rows = [{"question": "Q?", "answer": "1", "image": "imgs/a.png"},
            {"question": "Q2?", "answer": "1", "image": {"bytes": LFS, "path": "a.png"}}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:1]) + "\n")
    _, rejects = split(read_source({"name": "lfs", "path": str(tmp_path / "d.jsonl")}))
    assert rejects["0"]["reason"] == "image_lfs_pointer" and "git lfs pull" in rejects["0"]["detail"]
    assert "image_lfs_pointer" in REASONS
    # a data file that is a pointer: one line at validation, and inspect says so without a traceback
    (tmp_path / "pq").mkdir()
    (tmp_path / "pq" / "train-00000.parquet").write_bytes(LFS)
    with pytest.raises(SightlineError, match="Git LFS pointer.*git lfs pull"):
        validate_spec({"name": "pq", "path": str(tmp_path / "pq")})
    info = inspect_source(str(tmp_path / "pq"))
    assert "Git LFS pointer" in info["error"]
    (tmp_path / "t.jsonl").write_bytes(LFS)
    with pytest.raises(SightlineError, match=r"t.jsonl.*a Git LFS pointer"):
        validate_spec({"name": "t", "path": str(tmp_path / "t.jsonl")})


def test_mixed_folder_reads_every_supported_file(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "one.jsonl").write_text(json.dumps({"question": "Q1?", "answer": "1", "image": "a.png"}) + "\n")
    (tmp_path / "two.json").write_text(json.dumps([{"question": "Q2?", "answer": "2", "image": "a.png"}]))
    write_tsv(tmp_path / "three.tsv", ["question", "answer", "image"], [["Q3?", "3", "a.png"]])
    s = validate_spec({"name": "mix", "path": str(tmp_path)})
    assert s["type"] == "mixed"
    examples, rejects = split(read_source({"name": "mix", "path": str(tmp_path)}))
    assert sorted(examples) == ["one.jsonl:0", "three.tsv:0", "two.json:0"] and not rejects


def test_windows_paths_and_unknown_keys(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(png())
    doc = {"0": {"question": "Find r.", "answer": "$r=5$", "image": ["images\\1.jpg"]}}
    (tmp_path / "set.json").write_text(json.dumps(doc))
    examples, _ = split(read_source({"name": "win", "path": str(tmp_path / "set.json")}))
    assert examples["0"]["images"][0]["bytes"] == png()
    with pytest.raises(SightlineError, match="unknown key.*image_rot; did you mean 'image_root'"):
        validate_spec({"name": "win", "path": str(tmp_path / "set.json"), "image_rot": "x"})
    with pytest.raises(SightlineError, match="did you mean 'choices'"):
        validate_spec({"name": "win", "path": str(tmp_path / "set.json"), "columns": {"choice": "x"}})


def test_answer_types_sources_write_are_mapped_or_inferred(tmp_path):
    assert map_answer_type("float") == "number" and map_answer_type("Integer") == "integer"
    assert map_answer_type("free_form") is None and map_answer_type("multi-choice") == "multiple_choice"
    (tmp_path / "a.png").write_bytes(png())
    rows = [{"question": "Q0?", "answer": "1.5", "answer_type": "float"},
            {"question": "Q1?", "answer": "B", "answer_type": "multi_choice", "choices": ["x", "y"]},
            {"question": "Q2?", "answer": "[1, 2]", "answer_type": "list"},
            {"question": "Q3?", "answer": "12", "answer_type": "single-step"},
            {"question": "Q4?", "answer": "A, C", "answer_type": "multi_choice", "choices": ["x", "y", "z"]},
            {"question": "Q5?", "answer": "C", "answer_type": "choice"},   # options only in the picture
            {"question": "Q6?", "answer": "The dog is asleep on the red sofa by the window."}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({**r, "image": "a.png"}) for r in rows) + "\n")
    examples, rejects = split(read_source({"name": "types", "path": str(tmp_path / "d.jsonl")}))
    assert not rejects
    got = {k: e["answer_type"] for k, e in examples.items()}
    assert got == {"0": "number", "1": "multiple_choice", "2": "math", "3": "integer", "4": "multi_choice",
                   "5": "text", "6": "open"}


def chat_rows():
    """A ShareGPT-style multi-turn chat (one image per exchange) and an OpenAI-style one with parts."""
    sharegpt = {"id": "c1", "images": ["a.png", "b.png", "c.png"], "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "<image>What is in the first picture?"},
        {"from": "gpt", "value": "A red square on a white background."},
        {"from": "human", "value": "<image>And in the second one?"},
        {"from": "gpt", "value": "A blue square."},
        {"from": "human", "value": "<image>How many squares are there in all three?"},
        {"from": "gpt", "value": "3"}]}
    openai = {"id": "c2", "messages": [
        {"role": "user", "content": [{"type": "image", "image": "b.png"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "blue"}]}]}
    return sharegpt, openai


@pytest.fixture
def chat_files(tmp_path):
    for name, colour in (("a.png", (220, 0, 0)), ("b.png", (0, 0, 220)), ("c.png", (0, 220, 0))):
        (tmp_path / name).write_bytes(png(colour))
    sharegpt, openai = chat_rows()
    (tmp_path / "share.json").write_text(json.dumps([sharegpt]))
    (tmp_path / "oai.jsonl").write_text(json.dumps(openai) + "\n")
    return tmp_path


def test_turns_first_counts_what_it_leaves_out_and_keeps_only_its_images(chat_files):
    spec = {"name": "chat", "path": str(chat_files / "share.json"), "conversation": "conversations",
            "columns": {"image": "images"}}
    notes = {}
    examples, rejects = split(read_source(spec, notes=notes))
    assert list(examples) == ["c1"] and not rejects
    row = examples["c1"]
    assert (row["question"], row["answer"]) == ("What is in the first picture?", "A red square on a white background.")
    assert [im["bytes"] for im in row["images"]] == [png((220, 0, 0))]   # the image of the kept exchange only
    assert notes["turns_left_out"] == 2
    # the LLaVA-style mapping (conversations[0].value / [1].value) is read the same way, system turn skipped
    spec2 = {"name": "chat", "path": str(chat_files / "share.json"),
             "columns": {"question": "conversations[1].value", "answer": "conversations[2].value", "image": "images"}}
    notes2 = {}
    assert split(read_source(spec2, notes=notes2))[0]["c1"]["images"] == row["images"]
    assert notes2["turns_left_out"] == 2


def test_turns_all_makes_a_row_per_exchange_with_its_context_and_images(chat_files):
    spec = {"name": "chat", "path": str(chat_files / "share.json"), "conversation": "conversations",
            "columns": {"image": "images"}, "turns": "all"}
    notes = {}
    examples, _ = split(read_source(spec, notes=notes))
    assert list(examples) == ["c1", "c1#2", "c1#3"] and notes["turns_left_out"] == 0
    third = examples["c1#3"]
    assert third["question"] == ("Conversation so far:\nUser: What is in the first picture?\n"
                                 "Assistant: A red square on a white background.\nUser: And in the second one?\n"
                                 "Assistant: A blue square.\n\nHow many squares are there in all three?")
    assert third["answer"] == "3" and third["answer_type"] == "integer"
    assert [len(examples[k]["images"]) for k in examples] == [1, 2, 3]
    assert len({e["id"] for e in examples.values()}) == 3


def test_openai_content_parts_and_bad_conversations(chat_files):
    spec = {"name": "oai", "path": str(chat_files / "oai.jsonl"), "conversation": "messages"}
    examples, _ = split(read_source(spec))
    assert (examples["c2"]["question"], examples["c2"]["answer"]) == ("Colour?", "blue")
    assert examples["c2"]["images"][0]["bytes"] == png((0, 0, 220))    # the image named in the part
    info = inspect_source(str(chat_files / "oai.jsonl"))
    assert info["spec"].get("conversation") == "messages" and not info["error"]
    (chat_files / "bad.jsonl").write_text(json.dumps({"messages": "hello", "image": "a.png"}) + "\n"
                                          + json.dumps({"messages": [{"role": "user", "content": "Q?"}],
                                                        "image": "a.png"}) + "\n")
    _, rejects = split(read_source({"name": "bad", "path": str(chat_files / "bad.jsonl"),
                                    "conversation": "messages"}))
    assert {k: r["reason"] for k, r in rejects.items()} == {"0": "bad_conversation", "1": "bad_conversation"}
    assert "bad_conversation" in REASONS
    with pytest.raises(SightlineError, match="turns must be first or all"):
        validate_spec({**spec, "turns": "some"})
