"""A child version on a local folder and on object storage (fsspec memory://): copies, rewrites, books."""
from __future__ import annotations

import uuid

import fsspec
import pyarrow as pa
import pytest

from curation.difficulty.derive import derive_version
from curation.errors import SightlineError
from curation.store.versions import Store
from schemas import SchemaError
from tests.training.conftest import synthetic_tables


def _parent(root) -> tuple[Store, dict]:
    tables = synthetic_tables(5, 2, seed=1)
    tables["rejects"] = [{"id": "r0", "source": "synthetic", "source_id": "x", "stage": "validate",
                          "reason": "not_an_image", "detail": ""}]
    store = Store(root)
    with store.begin() as st:
        for name, rows in tables.items():
            st.write_table(name, rows, rows_per_shard=2 if name == "rl" else 2000)
        st.commit(parent=None, config={"source": "test"}, teachers={"caption": {"model": "program:caption"}},
                  stage_counts={"validate": {"in": 8, "out": 7, "rejected": 1}}, accounting={"balanced": True},
                  extra={"rejects_by_reason": {"validate/not_an_image": 1}})
    return store, tables


def _mark_first_row(shard: int, table: pa.Table) -> pa.Table:
    """Drop each shard's first row and give the others pass rate = shard index (so the shard shows)."""
    table = table.slice(1)
    rate = pa.array([float(shard)] * table.num_rows, pa.float64())
    return table.set_column(table.schema.get_field_index("pass_rate"), "pass_rate", rate)


def _derive(store: Store, **kw):
    new_reject = {"id": "x1", "source": "synthetic", "source_id": "1", "stage": "scoring", "reason": "too_hard",
                  "detail": "d"}
    args = {"stage": "scoring", "config": {"stage": "scoring"}, "stage_counts": {"in": 5, "out": 2, "rejected": 3},
            "rewrite": {"rl": _mark_first_row}, "add": {"rejects": [new_reject]},
            "teachers": {"policy": {"model": "transformers:m"}}, "expect_rows": {"rl": 2}}
    return derive_version(store, 1, **(args | kw))


def _check_child(store: Store, tables: dict) -> None:
    parent, child = store.manifest(1), store.manifest(2)
    assert child["parent"] == 1 and store.verify(2) == [] and store.verify(1) == []
    for table, entries in parent["files"].items():  # untouched tables: the same bytes under the same names
        if table not in ("rl", "rejects"):
            assert [(e["path"], e["sha256"]) for e in child["files"][table]] == \
                   [(e["path"], e["sha256"]) for e in entries]
    assert [e["path"] for e in child["files"]["rl"]] == [e["path"] for e in parent["files"]["rl"]]  # 3 shards
    rl = store.read_table("rl", 2).to_pylist()
    assert [(r["id"], r["pass_rate"]) for r in rl] == [(tables["rl"][1]["id"], 0.0), (tables["rl"][3]["id"], 1.0)]
    assert [r["reason"] for r in store.read_table("rejects", 2).to_pylist()] == ["not_an_image", "too_hard"]
    assert store.read_table("rl", 1).num_rows == 5  # the parent is immutable
    assert child["stage_counts"] == {"validate": {"in": 8, "out": 7, "rejected": 1},
                                     "scoring": {"in": 5, "out": 2, "rejected": 3}}
    assert child["teachers"] == {"caption": {"model": "program:caption"}, "policy": {"model": "transformers:m"}}
    assert child["rejects_by_reason"] == {"validate/not_an_image": 1, "scoring/too_hard": 1}
    assert child["accounting"] == {"balanced": True} and child["tables"]["rl"] == 2


def test_child_version_on_a_local_folder(tmp_path):
    store, tables = _parent(tmp_path / "synth")
    info = _derive(store)
    assert info.version == 2 and info.path == tmp_path / "synth" / "v0002"
    _check_child(store, tables)


def test_child_version_on_object_storage(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/data/synth"
    try:
        store, tables = _parent(url)
        assert store.is_remote
        assert _derive(store).version == 2
        _check_child(Store(url), tables)
    finally:
        fs, path = fsspec.core.url_to_fs(url)
        fs.rm(path.split("/data")[0], recursive=True)


def test_books_that_do_not_balance_publish_nothing(tmp_path):
    store, _ = _parent(tmp_path / "synth")
    with pytest.raises(SightlineError, match="refusing to publish the scoring version: rl has 2 rows, .* say 3"):
        _derive(store, expect_rows={"rl": 3})
    assert store.versions() == [1] and not list((tmp_path / "synth").glob(".staging-*"))


def test_a_rewrite_that_breaks_the_schema_publishes_nothing(tmp_path):
    store, _ = _parent(tmp_path / "synth")
    with pytest.raises(SchemaError, match="missing required column 'solution'"):
        _derive(store, rewrite={"rl": lambda shard, t: t.drop_columns(["solution"])})
    assert store.versions() == [1] and not list((tmp_path / "synth").glob(".staging-*"))
