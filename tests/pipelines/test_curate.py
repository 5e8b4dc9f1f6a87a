"""The curate pipeline end to end on real Beam runs, real Parquet, real teachers (program / tiny model)."""
import io
import json
import struct
import zlib

import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.errors import SightlineError
from curation.store.versions import Store
from curation.recipe import load_data_recipe
from pipelines.curate import run


def _cfg(tmp_path, *sets):
    return load_data_recipe("configs/data/mini.yaml", [f"output_root={tmp_path}", "synthetic.n=50", *sets])


def _ids(store, table, version="latest"):
    return sorted(store.read_table(table, version, columns=["id"]).column("id").to_pylist())


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    info = run(_cfg(root, "distill.error_rate=0.0"))
    return Store(root / "mini"), info


def test_counts_in_every_table_with_exact_teachers(mini_run):
    store, info = mini_run
    ex = store.read_table("examples").to_pylist()
    rejects = store.read_table("rejects").to_pylist()
    assert len(ex) + len(rejects) == 50  # every input row is somewhere
    train = [e for e in ex if e["split"] == "train"]
    test = [e for e in ex if e["split"] == "test"]
    val = [e for e in ex if e["split"] == "val"]
    assert train and test and val and len(train) + len(test) + len(val) == len(ex)
    # held-out rows never reach sft or rl; they form the test table
    assert _ids(store, "test") == sorted(e["id"] for e in test)
    assert _ids(store, "val") == sorted(e["id"] for e in val)
    assert _ids(store, "rl") == sorted(e["id"] for e in train)
    assert not set(_ids(store, "sft")) & set(_ids(store, "test"))
    traces = store.read_table("traces").to_pylist()
    assert len(traces) == 2 * len(train)  # distill.n = 2 per train example
    assert all(t["correct"] and t["format_ok"] for t in traces)  # error_rate 0: the program teacher is exact
    assert len(_ids(store, "sft")) == len(train)  # at most 1 per example, every example has a correct trace
    assert {t["status"] for t in traces} == {"selected", "not_shortest"}
    for t in traces:  # shortest correct first
        if t["status"] == "not_shortest":
            sel = next(s for s in traces if s["id"] == t["id"] and s["selected"])
            assert sel["length_chars"] <= t["length_chars"]
    assert all(e["caption"] and e["caption_teacher"] == "program:caption" for e in train)
    assert all(r["stage"] == "dedup" for r in rejects)
    m = info.manifest
    assert m["accounting"]["rows_in"] == 50
    assert m["accounting"]["rows_written"] == len(ex) and m["accounting"]["rows_duplicate"] == len(rejects)
    split = m["stage_counts"]["split"]
    assert (split["train"], split["val"], split["test"]) == (len(train), len(val), len(test))
    assert m["teachers"]["distill"]["model"].startswith("program:solution")
    assert store.verify() == []


def test_sft_rows_are_chat_messages_with_the_image(mini_run):
    store, _ = mini_run
    sft = store.read_table("sft").to_pylist()[0]
    ex = {e["id"]: e for e in store.read_table("examples").to_pylist()}[sft["id"]]
    user, assistant = sft["messages"]
    assert user["role"] == "user" and user["content"][0]["type"] == "image"
    assert ex["question"] in user["content"][1]["text"]
    assert assistant["content"][0]["text"].startswith("<think>")
    assert sft["images"][0]["bytes"] == ex["images"][0]["bytes"]


def test_rerun_gives_same_ids_and_counts_in_one_shard_or_rolled_into_many(mini_run, tmp_path):
    store, info = mini_run
    # write.file_bytes rolls each table into a new shard (a Parquet writer holds every row group's metadata
    # until its file closes); 8 KB row groups and files make many shards of 50 rows' examples
    again = run(_cfg(tmp_path, "distill.error_rate=0.0", "write.row_group_bytes=8192", "write.file_bytes=8192",
                     "write.record_batch_size=4"))
    other = Store(tmp_path / "mini")
    for table in ("examples", "traces", "sft", "rl", "test", "rejects"):
        assert _ids(other, table) == _ids(store, table), table
    assert len(other.table_files("examples")) >= len(store.table_files("examples")) + 4  # one per branch, or rolled
    assert again.manifest["stage_counts"]["dedup"] == info.manifest["stage_counts"]["dedup"]
    assert again.manifest["accounting"] == info.manifest["accounting"]


def test_write_settings_are_checked():
    with pytest.raises(SightlineError, match="file_bytes >= row_group_bytes"):
        load_data_recipe("configs/data/mini.yaml", ["write.file_bytes=1000"])


def test_wrong_traces_are_kept_as_data_but_not_selected(tmp_path):
    info = run(_cfg(tmp_path, "distill.error_rate=1.0", "synthetic.n=30"))
    store = Store(info.path.parent)
    traces = store.read_table("traces").to_pylist()
    assert traces and not any(t["correct"] for t in traces)
    assert {t["status"] for t in traces} == {"incorrect"}
    assert store.read_table("sft").num_rows == 0
    assert store.read_table("rl").num_rows == len({t["id"] for t in traces})


def _png(color, size=(40, 40)):
    """A noisy image seeded by its color, so two of them are not perceptual duplicates."""
    import numpy as np

    rng = np.random.default_rng(list(color))
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png():
    """A real small PNG whose header claims 30000 x 30000 pixels (IHDR rewritten, CRC fixed)."""
    data = bytearray(_png((0, 0, 255)))
    ihdr = 8 + 8  # signature + length/type
    data[ihdr:ihdr + 8] = struct.pack(">II", 30000, 30000)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_bad_rows_land_in_rejects_with_distinct_reasons(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.png").write_bytes(_png((200, 30, 30)))
    (src / "ok2.png").write_bytes(_png((30, 200, 30)))
    (src / "corrupt.png").write_bytes(_png((1, 2, 3))[:60])
    (src / "bomb.png").write_bytes(_bomb_png())
    lines = [
        json.dumps({"image": "ok.png", "question": "What color is it?", "answer": "red"}).encode(),
        json.dumps({"image": "ok2.png", "question": "Is it green?", "answer": "yes"}).encode(),
        json.dumps({"image": "corrupt.png", "question": "q1?", "answer": "1"}).encode(),
        json.dumps({"image": "bomb.png", "question": "q2?", "answer": "2"}).encode(),
        json.dumps({"image": "ok.png", "question": "no answer here?"}).encode(),
        b'{"image": "ok.png", "question": "caf\xe9 \xff?", "answer": "3"}',
        json.dumps({"image": "missing.png", "question": "q3?", "answer": "4"}).encode(),
    ]
    (src / "data.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    spec = {"type": "jsonl", "name": "handmade", "path": str(src / "data.jsonl")}
    info = run(_cfg(tmp_path, "synthetic.n=0", "test_fraction=0.0", "val_fraction=0.0", "ingest.max_reject_fraction=0.9",
                    f"sources=[{json.dumps(spec)}]"))
    store = Store(info.path.parent)
    rejects = {r["source_id"]: (r["stage"], r["reason"]) for r in store.read_table("rejects").to_pylist()}
    reasons = {sid: r for sid, (_, r) in rejects.items()}
    assert reasons["2"] == "truncated_image" or reasons["2"] in ("corrupt_image", "not_an_image")
    assert reasons["3"] == "decompression_bomb"
    assert reasons["4"] == "missing_answer"
    assert reasons["5"] == "bad_text_encoding"
    assert reasons["6"] == "image_missing"
    assert len({reasons[k] for k in ("2", "3", "4", "5", "6")}) == 5
    # the two good rows have no scene: the program captioner cannot serve them, so they reach rl uncaptioned
    assert "0" not in rejects and "1" not in rejects
    rl = store.read_table("rl").to_pylist()
    assert sorted(r["source_id"] for r in rl) == ["0", "1"] and store.read_table("sft").num_rows == 0
    assert info.manifest["stage_counts"]["caption"]["skipped"] == 2
    a = info.manifest["accounting"]
    assert a["rows_in"] == 7 and a["rows_in"] == a["rows_written"] + a["rows_rejected"] + a["rows_duplicate"]


def test_multiprocessing_runner_writes_the_same_rows(mini_run, tmp_path, capfd):
    store, _ = mini_run
    info = run(_cfg(tmp_path, "distill.error_rate=0.0"), workers=2)
    other = Store(info.path.parent)
    for table in ("examples", "traces", "sft", "rl", "test", "rejects"):
        assert _ids(other, table) == _ids(store, table), table
    a = pq.read_table(other.table_files("traces")[0]).num_rows
    assert a > 0
    # the worker processes write to the same stderr (capfd sees it): our progress lines, none of Beam's INFO lines
    err = capfd.readouterr().err
    assert "[2/2] curate" in err
    assert "INFO:" not in err and "apache_beam" not in err and "apitools" not in err


def test_decontamination_drops_rows_overlapping_an_eval_set(tmp_path):
    from curation.synthetic import generate

    ev = tmp_path / "eval"
    ev.mkdir()
    lines, overlap_ids = [], set()
    for i, row in enumerate(generate(5, seed=0, level=1)):  # the images the recipe run below (level 1) generates first
        (ev / f"{i}.png").write_bytes(row["images"][0]["bytes"])
        lines.append(json.dumps({"image": f"{i}.png", "question": f"benchmark question number {i}",
                                 "answer": "x"}))
        overlap_ids.add(row["id"])
    lines.append(json.dumps({"image": "0.png", "question": "  HOW many shapes are there? ", "answer": "x"}))
    (ev / "eval.jsonl").write_text("\n".join(lines) + "\n")
    info = run(_cfg(tmp_path, "synthetic.n=40", "synthetic.level=1",
                    f"decontam.eval_sets=[{json.dumps(str(ev / 'eval.jsonl'))}]"))
    store = Store(info.path.parent)
    rej = [r for r in store.read_table("rejects").to_pylist() if r["stage"] == "decontam"]
    by_reason = {}
    for r in rej:
        by_reason.setdefault(r["reason"], set()).add(r["id"])
    assert overlap_ids <= by_reason["eval_image_overlap"]
    # the question overlap hits every generated row asking exactly that (case and spaces normalized)
    asked = {r["id"] for r in generate(40, seed=0, level=1) if r["question"] == "How many shapes are there?"}
    assert asked - overlap_ids and asked - overlap_ids <= by_reason.get("eval_question_overlap", set())
    assert not (set(_ids(store, "examples")) & (overlap_ids | asked))
    assert info.manifest["stage_counts"]["decontam"]["rejected"] == len(rej)


def test_one_local_process_reads_whole_work_files_workers_and_cloud_runners_share_row_groups():
    from pipelines.curate import WORK_FILE_BYTES, WORK_ROW_GROUP_BYTES, work_read_bytes

    assert work_read_bytes(1, local=True) == WORK_FILE_BYTES > WORK_ROW_GROUP_BYTES
    assert work_read_bytes(2, local=True) == work_read_bytes(1, local=False) == WORK_ROW_GROUP_BYTES
