"""Loud failures for empty results and the learnable-row rule end to end (`sightline data`, `data verify`).

A source whose images are all Git LFS pointers, or all undecodable, and a run whose rows are all kept
out of rl/val/test, end in one error line, exit 1 and no version. A version built with sentence golds
keeps them in examples only, counted per reason in the manifest; `data verify` fails on a version
whose rl rows break the rule."""
import io
import json

import pyarrow.parquet as pq
from PIL import Image

from curation.store.versions import Store
from pipelines.cli import main as sightline
from tests.pipelines.test_data_cli import fails_in_one_line, recipe

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"cd" * 32 + b"\nsize 2048\n"


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), ((i * 37) % 256, (i * 91) % 256, 80)).save(buf, "PNG")
    return buf.getvalue()


def write_rows(folder, rows, images):
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (folder / "imgs" / name).write_bytes(data)
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"type": "jsonl", "name": "real", "path": str(folder / "data.jsonl")}


def test_all_lfs_pointer_images_stop_the_run_saying_lfs(tmp_path, capsys):
    rows = [{"question": f"Q{i}?", "answer": str(i), "image": f"imgs/{i}.png"} for i in range(6)]
    spec = write_rows(tmp_path / "src", rows, {f"{i}.png": LFS for i in range(6)})
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out", staged=True)
    assert "6 of 6 rows rejected at ingest (top: image_lfs_pointer x6" in msg
    assert "6 images are Git LFS pointers: fetch them with git lfs pull" in msg
    assert msg.endswith("(nothing was published)")


def test_all_undecodable_images_stop_the_run_at_validate(tmp_path, capsys):
    rows = [{"question": f"Q{i}?", "answer": str(i), "image": f"imgs/{i}.png"} for i in range(6)]
    spec = write_rows(tmp_path / "src", rows, {f"{i}.png": b"\x89PNG not really" + bytes([i]) * 40
                                               for i in range(6)})
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out", staged=True)
    assert "6 of 6 rows rejected at validate (top: not_an_image x6" in msg and msg.endswith("(nothing was published)")


def test_open_golds_only_publish_nothing_and_keep_open_or_a_judge_lets_them_in(tmp_path, capsys):
    rows = [{"question": f"What is happening in picture {i}?",
             "answer": f"A small dog number {i} is sleeping on a red sofa near the window.",
             "image": f"imgs/{i}.png"} for i in range(8)]
    spec = write_rows(tmp_path / "src", rows, {f"{i}.png": png(i) for i in range(8)})
    msg = fails_in_one_line(["data", "--config", recipe(tmp_path, spec)], capsys, tmp_path / "out", staged=True)
    assert "no trainable row" in msg and "open_answer x8" in msg and "configure a judge" in msg
    cfg = recipe(tmp_path, spec)
    assert sightline(["data", "--config", cfg, "--set", "judge.backend=program"]) == 0
    store = Store(tmp_path / "out" / "mine")
    assert store.read_table("rl").num_rows + store.read_table("test").num_rows == 8
    assert store.manifest(1)["config"]["judge"]["backend"] == "program"
    assert sightline(["data", "verify", "--data", str(tmp_path / "out" / "mine")]) == 0


def test_breakers_stay_in_examples_counted_per_reason_and_verify_checks_the_rule(tmp_path, capsys):
    rows = [{"question": f"How many dots in picture {i}?", "answer": str(i), "image": f"imgs/{i}.png"}
            for i in range(6)]
    rows += [{"question": "Describe the scene.", "answer": "A cat sits on a wall and looks at the birds below.",
              "image": "imgs/6.png"},
             {"question": "What is written?", "answer": "<think>x</think>", "image": "imgs/7.png"}]
    spec = write_rows(tmp_path / "src", rows, {f"{i}.png": png(i) for i in range(8)})
    assert sightline(["data", "--config", recipe(tmp_path, spec), "--set", "test_fraction=0.3"]) == 0
    root = tmp_path / "out" / "mine"
    store = Store(root)
    m = store.manifest(1)
    assert m["stage_counts"]["split"]["kept_out_by_reason"] == {"gold_does_not_verify": 1, "open_answer": 1}
    assert store.read_table("examples").num_rows == 8
    held = store.read_table("rl").to_pylist() + store.read_table("test").to_pylist()
    assert len(held) == 6 and all(r["answer_type"] == "integer" for r in held)
    assert "kept out of rl/val/test (still in examples)" in capsys.readouterr().err
    assert sightline(["data", "verify", "--data", str(root)]) == 0
    # a version whose rl rows break the rule (here: answer_type wiped by hand) fails verify, naming the reason
    shard = next((root / "v0001" / "rl").glob("*.parquet")) if list((root / "v0001" / "rl").glob("*.parquet")) \
        else next((root / "v0001" / "test").glob("*.parquet"))
    t = pq.read_table(shard)
    t = t.set_column(t.schema.get_field_index("answer_type"), "answer_type",
                     __import__("pyarrow").array([None] * t.num_rows, type=t.schema.field("answer_type").type))
    pq.write_table(t, shard)
    capsys.readouterr()
    assert sightline(["data", "verify", "--data", str(root)]) == 1
    err = capsys.readouterr().err
    assert "is not learnable: no_answer_type" in err
