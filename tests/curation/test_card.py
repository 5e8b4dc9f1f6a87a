"""The dataset card (README.md with the Hub's YAML header) inside every version, and `data export`."""
import json
import subprocess
import sys

import pytest
import yaml

from curation.errors import SightlineError
from curation.store.card import CARD, card_problems, render_card, yaml_features
from curation.store.export import export_version
from curation.store.versions import MANIFEST, Store
from schemas import SCHEMAS


@pytest.fixture
def store(tmp_path, hand_built_tables):
    s = Store(tmp_path / "mini")
    s.write_version(hand_built_tables, config={"name": "mini", "synthetic": {"n": 3, "level": 1, "seed": 0},
                                               "decontam": {"eval_sets": [{"name": "mathvista", "path": "x"}]}},
                    teachers={"distill": {"backend": "program", "model": "program:x", "prompt_version": "distill-v1",
                                          "sampling": {"n": 2}}},
                    stage_counts={"split": {"train": 2, "test": 1}})
    return s


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_yaml_features_are_what_datasets_writes():
    from datasets import Features

    for table, schema in SCHEMAS.items():
        assert yaml_features(table) == Features.from_arrow_schema(schema)._to_yaml_list(), table


def test_card_is_inside_the_version_and_listed_with_its_hash(store):
    import hashlib

    vdir = store.path(1)
    m = json.loads((vdir / MANIFEST).read_text())
    text = (vdir / CARD).read_text()
    assert m["card"] == {"path": CARD, "sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode())}
    head = front_matter(text)
    configs = {c["config_name"]: c["data_files"] for c in head["configs"]}
    assert set(configs) == set(SCHEMAS)
    assert configs["sft"] == [{"split": "train", "path": [e["path"] for e in m["files"]["sft"]]}]
    assert configs["val"][0]["split"] == "validation" and configs["test"][0]["split"] == "test"
    assert "visual-question-answering" in head["task_categories"]
    # the body is made from the manifest: teachers, benchmarks, splits, how to load
    for needle in ("program:x", "distill-v1", "mathvista", "train 2, test 1", 'load_dataset("path/to/this/folder", "sft"'):
        assert needle in text, needle
    assert card_problems(vdir, m) == []


def test_load_dataset_from_the_version_folder(store, tmp_path):
    from datasets import load_dataset
    from PIL import Image

    vdir = str(store.path(1))
    sft = load_dataset(vdir, "sft", split="train", cache_dir=str(tmp_path / "hf"))
    assert sft.num_rows == 1 and sft[0]["trace_id"] == "t0"
    assert isinstance(sft[0]["images"][0], Image.Image) and sft[0]["images"][0].size == (32, 32)
    rl = load_dataset(vdir, "rl", cache_dir=str(tmp_path / "hf"))
    assert list(rl) == ["train"] and sorted(rl["train"]["id"]) == ["e0", "e1"]
    assert isinstance(rl["train"][0]["images"][0], Image.Image)
    assert rl["train"].features["pass_rate"].dtype == "float64"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], check=False, capture_output=True, text=True)


def test_data_verify_checks_the_card(store):
    r = _cli("data", "verify", "--data", str(store.root))
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    card = store.path(1) / CARD
    card.write_text(card.read_text().replace("mini", "mimi"))
    r = _cli("data", "verify", "--data", str(store.root))
    assert r.returncode == 1 and "FAIL README.md: sha256" in r.stderr


def test_export_is_a_hub_folder(store, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "export" / "mini-v1"
    r = export_version(store, "latest", out)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    m = store.manifest(1)
    listed = sorted([e["path"] for es in m["files"].values() for e in es] + [CARD, MANIFEST])
    assert names == listed and r["files"] == len(listed) and not r["card_made"]
    assert (out / CARD).read_bytes() == (store.path(1) / CARD).read_bytes()
    test = load_dataset(str(out), "test", split="test", cache_dir=str(tmp_path / "hf"))
    assert test["id"] == ["e2"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    with pytest.raises(SightlineError, match="not an empty folder"):
        export_version(store, 1, out)


def test_export_refuses_a_damaged_shard_and_leaves_nothing(store, tmp_path):
    shard = store.path(1) / store.manifest(1)["files"]["rl"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    out = tmp_path / "export"
    with pytest.raises(SightlineError, match="sha256 does not match"):
        export_version(store, 1, out)
    assert not out.exists() and not list(tmp_path.glob(".export*"))


def test_export_of_a_version_without_a_card_makes_one(store, tmp_path):
    from datasets import load_dataset

    vdir = store.path(1)  # as a version written before cards existed: no card, no manifest field
    m = json.loads((vdir / MANIFEST).read_text())
    m.pop("card")
    (vdir / MANIFEST).write_text(json.dumps(m))
    (vdir / CARD).unlink()
    out = tmp_path / "old"
    assert export_version(store, 1, out)["card_made"]
    assert front_matter((out / CARD).read_text())["configs"][0]["config_name"] == "sft"
    sft = load_dataset(str(out), "sft", split="train", cache_dir=str(tmp_path / "hf"))
    assert sft.num_rows == 1


def test_cli_export(store, tmp_path):
    out = tmp_path / "hub"
    r = _cli("data", "export", "--data", str(store.root), "--to", str(out))
    assert r.returncode == 0, r.stderr
    assert f"exported {store.root} v0001 to {out}" in r.stdout and (out / CARD).is_file()
    r = _cli("data", "export", "--data", str(store.root), "--to", str(out))
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(err) == 1 and "not an empty folder" in err[0]


def test_render_card_without_stage_counts_or_sources():
    text = render_card({"name": "x", "files": {"sft": [{"path": "sft/a.parquet"}]}, "tables": {"sft": 0}})
    head = front_matter(text)
    assert head["configs"] == [{"config_name": "sft", "data_files": [{"split": "train", "path": ["sft/a.parquet"]}],
                                "default": True}]
    assert "No source recorded" in text


@pytest.mark.parametrize("spool", [False, True])
def test_card_on_object_storage_written_checked_and_exported(tmp_path, monkeypatch, hand_built_tables, spool):
    import uuid

    import fsspec

    from curation.store.versions import version_dirname

    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/data/mini"
    s = Store(url)
    try:
        with s.begin(spool=spool) as st:
            for name, rows in hand_built_tables.items():
                st.write_table(name, rows)
            st.commit(parent=None, config={})
        vdir = s.root / version_dirname(1)
        assert card_problems(vdir, s.manifest(1)) == [] and (vdir / CARD).is_file()
        out = export_version(s, 1, tmp_path / "hub")
        assert (tmp_path / "hub" / CARD).read_text() == (vdir / CARD).read_text() and not out["card_made"]
        (vdir / CARD).write_text("tampered")
        assert card_problems(vdir, s.manifest(1))[0].startswith("README.md: sha256")
    finally:
        fs, path = fsspec.core.url_to_fs(url)
        fs.rm(path.split("/data")[0], recursive=True)


def test_card_lists_each_source_with_its_licence(tmp_path):
    from curation.sources import validate_spec

    (tmp_path / "a.jsonl").write_text('{"question": "q", "answer": "1", "image": "i.png"}\n')
    specs = [validate_spec({"name": "chartqa", "path": str(tmp_path / "a.jsonl"), "license": "gpl-3.0"}),
             validate_spec({"name": "mine", "path": str(tmp_path / "a.jsonl")})]
    text = render_card({"name": "x", "config": {"sources": specs}, "files": {}, "tables": {}})
    rows = [line for line in text.splitlines() if line.startswith(("| chartqa", "| mine"))]
    assert "gpl-3.0" in rows[0] and "not recorded in the recipe" in rows[1]
    with pytest.raises(SightlineError, match="license must be a non-empty string"):
        validate_spec({"name": "bad", "path": str(tmp_path / "a.jsonl"), "license": 3})
