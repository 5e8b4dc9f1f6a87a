"""A source that does not parse fails loudly: one line, before rows flow or after ingest."""
import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.sources import ingest_health, read_source, validate_spec


def png(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buf, "PNG")
    return buf.getvalue()


def rows(n: int) -> list[dict]:
    return [{"question": f"Q{i}?", "answer": str(i), "image": "a.png"} for i in range(n)]


def health_of(spec: dict) -> str | None:
    """What the pipeline does per source: count ingest rejects, then ask ingest_health."""
    counts, first, n = Counter(), {}, 0
    for kind, row in read_source(spec):
        n += 1
        if kind == "reject":
            counts[row["reason"]] += 1
            first.setdefault(row["reason"], row["detail"])
    top = max(counts, key=counts.get) if counts else None
    return ingest_health(spec["name"], n, dict(counts), first.get(top, ""))


def test_ingest_health_lines_and_threshold():
    assert ingest_health("x", 1000, {"bad_json": 400}, "d") is None
    assert ingest_health("x", 1000, {"bad_json": 400}, "d", max_reject_fraction=0.3) is not None
    line = ingest_health("x", 1000, {"bad_json": 990, "missing_image": 10}, "a line is a JSON object, got list")
    assert line == ("source 'x': 1000 of 1000 rows rejected at ingest (top: bad_json x990: a line is a JSON "
                    "object, got list); looks like a JSON array: use type: json")
    wrong = ingest_health("y", 10, {"missing_question": 10},
                          "no 'qustion' (question) in the row; did you mean 'question'? (row has: question)")
    assert wrong.endswith("a wrong column name? set columns: {question: question}")
    assert ingest_health("z", 0, {}, "").startswith("source 'z': no rows read")
    paths = ingest_health("w", 4, {"image_missing": 3}, "no file /x/a.png")
    assert "set image_root" in paths and "\n" not in paths


def test_json_array_read_as_jsonl_is_a_one_line_error(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(rows(50), indent=2))
    spec = {"type": "jsonl", "name": "arr", "path": str(tmp_path / "a.json")}
    with pytest.raises(SightlineError, match="^source 'arr': a.json looks like a JSON array, not JSON lines: "
                                             "use type: json$"):
        validate_spec(spec)
    (tmp_path / "b.json").write_text(json.dumps({"question": "Q?", "answer": "1", "image": "a.png"}, indent=2))
    with pytest.raises(SightlineError, match="looks like one JSON document: use type: json$"):
        validate_spec({**spec, "path": str(tmp_path / "b.json")})


def test_json_array_among_jsonl_files_ends_in_the_health_line(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "0.jsonl").write_text(json.dumps(rows(1)[0]) + "\n")
    (tmp_path / "1.jsonl").write_text(json.dumps(rows(30)) + "\n" + json.dumps(rows(30)) + "\n")
    spec = {"type": "jsonl", "name": "mixed", "path": str(tmp_path / "*.jsonl")}
    assert health_of(spec) == ("source 'mixed': 2 of 3 rows rejected at ingest (top: bad_json x2: a line is a "
                               "JSON object, got list); looks like a JSON array: use type: json")


def test_binary_files_are_one_line_errors(tmp_path):
    pq.write_table(pa.table({"question": ["Q?"]}), tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_bytes((tmp_path / "t.parquet").read_bytes())
    with pytest.raises(SightlineError, match="^source 'b': .*t.jsonl is a Parquet file: use type: parquet$"):
        validate_spec({"type": "jsonl", "name": "b", "path": str(tmp_path / "t.jsonl")})
    (tmp_path / "blob.json").write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(SightlineError, match="^source 'b': .*blob.json is a binary file"):
        validate_spec({"type": "json", "name": "b", "path": str(tmp_path / "blob.json")})
    with pytest.raises(SightlineError, match="cannot read .*blob.json as a source: a binary file"):
        validate_spec({"type": "auto", "name": "b", "path": str(tmp_path / "blob.json")})
    (tmp_path / "pic.json").write_bytes(png())
    with pytest.raises(SightlineError, match="a PNG image, not a table"):
        validate_spec({"type": "json", "name": "b", "path": str(tmp_path / "pic.json")})


def test_jsonl_read_as_json_says_so(tmp_path):
    (tmp_path / "r.json").write_text("\n".join(json.dumps(r) for r in rows(3)) + "\n")
    with pytest.raises(SightlineError, match="not one JSON document: Extra data.*looks like JSON lines: use type: jsonl"):
        validate_spec({"type": "json", "name": "l", "path": str(tmp_path / "r.json")})
    assert validate_spec({"type": "auto", "name": "l", "path": str(tmp_path / "r.json")})["type"] == "jsonl"


def test_a_broken_file_among_many_is_one_reject_and_a_wrong_column_is_hinted(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "0.json").write_text(json.dumps(rows(2)))
    (tmp_path / "1.json").write_bytes(b"\x1f\x8b\x08compressed")
    items = list(read_source({"type": "json", "name": "m", "path": str(tmp_path / "*.json")}))
    assert [(k, r["source_id"], r.get("reason")) for k, r in items] == [
        ("example", "0.json:0", None), ("example", "0.json:1", None), ("reject", "1.json", "bad_file")]
    assert items[2][1]["detail"] == "1.json is gzip-compressed: decompress it first"
    # a field present on the first rows but not later: rows say what they have, the line says what to map
    later = [{"question": "Q?", "answer": "1", "image": "a.png"}] + [{"prompt": f"Q{i}?", "answer": "1", "image": "a.png"}
                                                                     for i in range(5)]
    (tmp_path / "later.jsonl").write_text("\n".join(json.dumps(r) for r in later))
    line = health_of({"type": "jsonl", "name": "later", "path": str(tmp_path / "later.jsonl")})
    assert line.startswith("source 'later': 5 of 6 rows rejected at ingest (top: missing_question x5: no 'question'")
    assert line.endswith("check the column mapping: `sightline data inspect PATH` shows the columns and a mapping")


def test_empty_source_and_empty_folder_are_errors(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(SightlineError, match="e.jsonl has no rows"):
        validate_spec({"type": "jsonl", "name": "e", "path": str(tmp_path / "e.jsonl")})
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x.txt").write_text("x")
    with pytest.raises(SightlineError, match=r"no .parquet files under .*dir \(found .txt\)"):
        validate_spec({"type": "parquet", "name": "e", "path": str(tmp_path / "dir")})
    with pytest.raises(SightlineError, match="no files match"):
        validate_spec({"type": "json", "name": "e", "path": str(tmp_path / "dir" / "*.json")})


def test_a_source_may_set_its_own_reject_threshold(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps(rows(1)[0]) + "\n")
    spec = {"type": "jsonl", "name": "t", "path": str(tmp_path / "r.jsonl")}
    assert validate_spec(spec)["max_reject_fraction"] is None          # None: the recipe's setting
    assert validate_spec({**spec, "max_reject_fraction": 0.2})["max_reject_fraction"] == 0.2
    with pytest.raises(SightlineError, match="max_reject_fraction must be a number from 0 to 1"):
        validate_spec({**spec, "max_reject_fraction": 1.5})
