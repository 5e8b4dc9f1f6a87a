"""The store on object storage: fsspec's memory:// and a registered bucket-like filesystem (sltest://) with
no rename, no exclusive create and torn writes (tests/curation/object_store.py)."""
import json
import threading
import uuid
from pathlib import Path

import fsspec
import pytest

from curation.errors import SightlineError
from curation.store.versions import Store
from curation.store.fs import FsPath, claim_folder, location
from tests.curation.killed import as_killed
from tests.curation.object_store import registered


@pytest.fixture(params=["memory", "sltest"])
def root(request, tmp_path, monkeypatch):
    """A fresh store URL on each object filesystem; the read cache goes under tmp_path."""
    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    if request.param == "sltest":
        registered()
    url = f"{request.param}://bucket-{uuid.uuid4().hex[:8]}/data/mini"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path.split("/data")[0]):
        fs.rm(path.split("/data")[0], recursive=True)


def _rows(store, table, version="latest"):
    return store.read_table(table, version).to_pylist()


def _rl(writer: int, n: int):
    """rl rows whose ids name their writer, so a mixed folder would show."""
    return [{"id": f"w{writer}-{i}", "source": "t", "source_id": str(i), "task": "counting", "level": 1,
             "prompt": [{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}], "images": [],
             "solution": str(i), "answer_type": "integer", "choices": None, "pass_rate": None,
             "n_rollouts": None, "n_correct": None} for i in range(n)]


def test_version_written_to_object_store_reads_back_equal(root, hand_built_tables, tmp_path):
    store = Store(root)
    info = store.write_version(hand_built_tables, config={"seed": 1})
    assert isinstance(store.root, FsPath) and Store(str(store.root)).root == store.root
    assert info.version == 1 and isinstance(info.path, FsPath) and info.path.name == "v0001"
    again = Store(str(store.root))  # the URL round-trips to the same place
    assert again.versions() == [1] and again.manifest()["config"] == {"seed": 1}
    for name, rows in hand_built_tables.items():
        back = _rows(again, name)
        assert len(back) == len(rows)
        for want, got in zip(rows, back):
            assert {k: got[k] for k in want} == want, name
    tables = again.manifest()["tables"]
    assert {t: tables[t] for t in hand_built_tables} == {"examples": 3, "traces": 4, "sft": 1, "rl": 2, "test": 1,
                                                          "rejects": 3}
    assert not [p for p in info.path.iterdir() if p.name.startswith("_CLAIM")]
    assert again.verify() == []
    local = again.local_copy()
    assert local.is_relative_to(tmp_path / "cache") and json.loads((local / "manifest.json").read_text())["version"] == 1
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*.parquet")) == sorted(
        e["path"] for es in again.manifest()["files"].values() for e in es)
    (info.path / "rl" / "stray.parquet").write_bytes((info.path / "rl" / "part-00000-of-00001.parquet").read_bytes())
    assert again.verify() == ["rl/stray.parquet: not listed in the manifest"]


def test_spool_writes_locally_and_uploads_at_commit(root, hand_built_tables):
    store = Store(root)
    store.write_version({"rl": hand_built_tables["rl"]}, config={})
    with store.begin(spool=True) as st:
        assert isinstance(st.path, Path)  # pathlib/shutil writers work unchanged
        st.write_table("sft", hand_built_tables["sft"])
        assert store.versions() == [1]  # nothing claimed or visible before commit
        info = st.commit(parent=1, config={"spooled": True})
    assert info.version == 2 and not st.path.exists()
    assert store.manifest(2)["parent"] == 1 and _rows(store, "sft", 2)[0]["trace_id"] == "t0"
    assert store.verify(2) == []


def test_crash_before_manifest_leaves_nothing_visible(root, hand_built_tables, monkeypatch):
    store = Store(root)
    st = store.begin()  # a writer that dies after its shards, before its manifest
    st.write_table("rl", hand_built_tables["rl"])
    st.write_table("sft", hand_built_tables["sft"])
    assert st.path.name == "v0001" and (st.path / "rl").is_dir() and str(st.path).startswith(root.split(":")[0] + "://")
    assert store.versions() == [] and store.latest() is None
    with pytest.raises(SightlineError, match="no complete version"):
        store.resolve("latest")
    st2 = store.begin()  # a second crash, inside commit this time
    st2.write_table("rl", hand_built_tables["rl"])
    monkeypatch.setattr("curation.store.writer.validate_manifest", lambda m: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        st2.commit(parent=None, config={})
    monkeypatch.undo()
    assert store.versions() == [] and not (st2.path / "manifest.json").exists()
    info = store.write_version(hand_built_tables, config={})
    assert info.version == 3 and store.versions() == [3]  # dead writers' numbers are skipped, never reused
    assert [r["id"] for r in _rows(store, "rl")] == ["e0", "e1"]
    assert store.clean_staging(older_than_s=0) == 0  # their writer (this process) is alive, whatever their age
    as_killed(st)
    as_killed(st2)
    assert store.clean_staging() == 2 and store.versions() == [3]
    assert sorted(p.name for p in store.root.iterdir()) == ["v0003"]


def test_aborted_writer_gives_its_number_back(root, hand_built_tables):
    store = Store(root)
    with pytest.raises(SightlineError, match="accounting"):
        store.write_version(hand_built_tables, config={}, accounting={
            "rows_in": 10, "rows_written": 5, "rows_rejected": 3, "rows_duplicate": 1})
    assert not store.root.exists() or list(store.root.iterdir()) == []
    assert store.write_version({}, config={}).version == 1


def test_torn_or_foreign_manifest_is_ignored(hand_built_tables, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    fs = registered()
    store = Store(f"sltest://torn-{uuid.uuid4().hex[:8]}/d")
    store.write_version(hand_built_tables, config={})
    text = (store.root / "v0001" / "manifest.json").read_bytes()
    (store.root / "v0002" / "manifest.json").write_bytes(text[: len(text) // 2])  # torn: half of it
    (store.root / "v0003" / "manifest.json").write_bytes(text)  # whole, but it names version 1
    assert store.versions() == [1]
    fs.torn_pause = 0.1  # every object is half-written for 0.1 s, the manifest too
    writer = threading.Thread(target=store.write_version, args=({}, ), kwargs={"config": {}})
    writer.start()
    key, torn_seen = f"{store.root.path}/v0004/manifest.json", 0
    while writer.is_alive():
        vs = Store(str(store.root)).versions()
        raw = fs.objects.get(key)  # read after versions(): if torn now, it was torn or absent then
        if raw is not None and raw != b"" and not raw.endswith(b"}"):
            torn_seen += 1
            assert vs == [1]
        writer.join(0.01)
    assert torn_seen and store.versions() == [1, 4]


def _write_as(root: str, k: int, barrier: threading.Barrier, results: dict) -> None:
    barrier.wait()
    try:
        results[k] = Store(root).write_version({"rl": _rl(k, 3 + k)}, config={"writer": k}).version
    except SightlineError as e:
        results[k] = str(e)


def test_concurrent_writers_never_share_a_version(root, rounds=3):
    fs = registered() if root.startswith("sltest") else None
    if fs:
        fs.ls_pause, fs.claim_pause = 0.005, 0.02  # both pick the same number and claim it: both must notice
    store = Store(root)
    for _ in range(rounds):
        barrier, results = threading.Barrier(2), {}
        threads = [threading.Thread(target=_write_as, args=(root, k, barrier, results)) for k in (0, 1)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        published = [v for v in results.values() if isinstance(v, int)]
        failed = [v for v in results.values() if isinstance(v, str)]
        assert len(published) + len(failed) == 2 and len(set(published)) == len(published)
        assert len(published) >= 1 and all("\n" not in f and "could not claim" in f for f in failed)
    for v in store.versions():
        writer = store.manifest(v)["config"]["writer"]
        ids = [row["id"] for row in _rows(store, "rl", v)]
        assert ids == [f"w{writer}-{i}" for i in range(3 + writer)]  # one writer's rows, all of them
        assert store.verify(v) == []  # nothing unlisted in the folder either
    assert len(store.versions()) >= rounds
    if fs:
        assert fs.claims_written > len(store.versions())  # the race really happened: some claims lost


def test_claim_folder_is_lost_to_any_other_object(tmp_path):
    registered()
    folder = location(f"sltest://claim-{uuid.uuid4().hex[:8]}/d/v0001")
    (folder / "_CLAIM.other").write_bytes(b"{}")
    assert claim_folder(folder, "mine") is False
    assert [p.name for p in folder.iterdir()] == ["_CLAIM.other"]  # the loser removed its marker
    empty = location(str(folder.parent / "v0002"))
    assert claim_folder(empty, "mine") is True and [p.name for p in empty.iterdir()] == ["_CLAIM.mine"]


def test_writer_that_never_wins_a_claim_fails_cleanly(hand_built_tables, tmp_path, monkeypatch):
    fs = registered()
    fs.rival_claims = True  # a competitor's marker lands next to every claim
    monkeypatch.setattr("curation.store.writer.CLAIM_ATTEMPTS", 3)
    store = Store(f"sltest://busy-{uuid.uuid4().hex[:8]}/d")
    with pytest.raises(SightlineError, match=r"could not claim a version number .* in 3 tries") as err:
        store.write_version(hand_built_tables, config={})
    assert "\n" not in str(err.value) and store.versions() == []
    assert not [k for k in fs.objects if "busy" in k and not k.endswith("_CLAIM.rival")]  # nothing of ours left


def test_audit_and_data_verify_read_a_remote_version(root, hand_built_tables, capsys):
    from pipelines.audit import run_query
    from pipelines.cli import main

    store = Store(root)
    store.write_version(hand_built_tables, config={})
    _, rows = run_query(store, "summary")
    counts = dict(rows)
    assert counts["examples"] == 3 and counts["traces correct"] == 1 and counts["rejects"] == 3
    _, rows = run_query(store, "rejects")
    assert rows[0] == ("validate", "not_an_image", 2)
    assert main(["data", "verify", "--data", str(store.root)]) == 0
    shard = store.table_files("traces")[0]
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["data", "verify", "--data", str(store.root)]) == 1
    assert "traces/part-00000-of-00001.parquet: sha256" in capsys.readouterr().err
    with pytest.raises(SightlineError, match="does not match the manifest"):
        Store(root, cache_dir=Path(str(store.cache_root) + "-fresh")).read_table("traces")


def test_training_reads_a_remote_version(root, hand_built_tables, tmp_path):
    from PIL import Image

    from training.data import load_table

    store = Store(root)
    store.write_version(hand_built_tables, config={})
    ds = load_table(str(store.root), "sft", cache_dir=tmp_path / "hf")
    assert len(ds) == 1 and isinstance(ds[0]["images"][0], Image.Image) and ds[0]["messages"][1]["role"] == "assistant"


def test_unknown_protocol_is_one_clear_line():
    with pytest.raises(SightlineError, match=r"cannot open nope://x/y: .*"):
        Store("nope://x/y")


def test_fspath_gives_writers_the_pathlib_calls_they_use(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.store.fs import copy_file, parquet_metadata, remove_tree

    registered()
    d = location(f"sltest://paths-{uuid.uuid4().hex[:8]}/v0001/rl")
    local = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), local)
    copy_file(local, d / "tmp-0.parquet")  # local -> remote
    assert (d / "tmp-0.parquet").rename(d / "tmp-0.parquet").is_file()  # onto itself: nothing happens
    moved = (d / "tmp-0.parquet").rename((d / "tmp-0.parquet").with_name("part-00000-of-00001.parquet"))
    assert [p.name for p in d.glob("*.parquet")] == ["part-00000-of-00001.parquet"]
    assert parquet_metadata(moved).num_rows == 3 and moved.stat().st_size == local.stat().st_size
    copy_file(moved, tmp_path / "back.parquet")  # remote -> local
    assert pq.read_table(tmp_path / "back.parquet").column("x").to_pylist() == [1, 2, 3]
    moved.unlink()
    moved.unlink(missing_ok=True)
    assert not d.exists()
    (d / "x.parquet").write_bytes(b"1")
    remove_tree(d.parent)
    assert not d.parent.exists() and str(d.parent).startswith("sltest://paths-")
