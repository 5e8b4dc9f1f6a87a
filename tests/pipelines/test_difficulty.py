"""The difficulty pipeline on a real Beam run: a tiny policy, k rollouts, verification, a new version."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from curation.store.versions import Store
from tests.training.conftest import TINY, synthetic_tables

K = 2


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """v1: 7 rl prompts in 3 shards (the last with a corrupt image) -> difficulty -> v2."""
    import curation.answers.verify
    from curation.synthetic import corpus
    from pipelines import difficulty
    from training.difficulty import DifficultyConfig
    from training.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("difficulty")
    model = build_tiny_model(root / "tiny", texts=list(corpus(200, seed=0)), **TINY)
    tables = synthetic_tables(7, 2, seed=5)
    tables["rl"][-1]["images"] = [{"bytes": b"not an image", "path": None}]
    tables["rejects"] = [{"id": "r0", "source": "synthetic", "source_id": "x", "stage": "validate",
                          "reason": "not_an_image", "detail": ""}]
    store = Store(root / "data" / "synth")
    with store.begin() as st:
        for name, rows in tables.items():
            st.write_table(name, rows, rows_per_shard=3 if name == "rl" else 2000)
        st.commit(parent=None, config={"source": "test"},
                  stage_counts={"validate": {"in": 10, "out": 9, "rejected": 1}})

    real = curation.answers.verify.verify

    class Verdict:
        def __init__(self, correct):
            self.correct = correct

    def verify(text, gold, **kw):  # the real verifier, plus odd-length texts, so counts are not all 0
        return Verdict(real(text, gold, **kw).correct or len(text) % 2 == 1)

    with pytest.MonkeyPatch.context() as mp:  # the in-process runner calls it in this process
        mp.setattr(curation.answers.verify, "verify", verify)
        cfg = DifficultyConfig(model=str(model), k=K, max_new_tokens=8, batch_size=4, seed=0, device="cpu")
        version = difficulty.run(store.root, 1, cfg)
    return store, version, tables, model


def test_new_version_has_parent_and_pass_rates(scored):
    store, version, tables, _ = scored
    assert version == 2
    m = store.manifest(version)
    assert m["parent"] == 1 and store.verify(version) == []
    rl = store.read_table("rl", version).to_pylist()
    bad = tables["rl"][-1]["id"]
    assert [r["id"] for r in rl] == [r["id"] for r in tables["rl"] if r["id"] != bad]  # order kept
    for r in rl:
        assert r["n_rollouts"] == K
        assert 0 <= r["n_correct"] <= K
        assert r["pass_rate"] == pytest.approx(r["n_correct"] / r["n_rollouts"])
    assert len({r["n_correct"] for r in rl}) > 1  # the counts came from the rollouts, not a constant
    before = {r["id"]: r for r in store.read_table("rl", 1).to_pylist()}
    for r in rl:  # only the three difficulty columns changed
        old = before[r["id"]]
        assert {k: v for k, v in r.items() if k not in ("n_rollouts", "n_correct", "pass_rate")} == \
               {k: v for k, v in old.items() if k not in ("n_rollouts", "n_correct", "pass_rate")}
    assert [e["path"] for e in m["files"]["rl"]] == [e["path"] for e in store.manifest(1)["files"]["rl"]]


def test_other_tables_are_the_same_bytes_and_failures_are_rejects(scored):
    store, version, tables, _ = scored
    old, new = store.manifest(1)["files"], store.manifest(version)["files"]
    for table in old:
        if table in ("rl", "rejects"):
            continue
        assert [(e["path"], e["sha256"]) for e in new[table]] == [(e["path"], e["sha256"]) for e in old[table]]
    kept = [e for e in new["rejects"] if e["path"] in {o["path"] for o in old["rejects"]}]
    assert [(e["path"], e["sha256"]) for e in kept] == [(e["path"], e["sha256"]) for e in old["rejects"]]
    added = [e for e in new["rejects"] if e not in kept]
    assert len(added) == 1
    rows = pq.read_table(store.path(version) / added[0]["path"]).to_pylist()
    assert [(r["id"], r["stage"], r["reason"]) for r in rows] == [(tables["rl"][-1]["id"], "difficulty",
                                                                     "rollout_error")]
    assert rows[0]["detail"]  # the error says why


def test_manifest_accounts_for_every_prompt(scored):
    store, version, _, _ = scored
    m = store.manifest(version)
    c = m["stage_counts"]["difficulty"]
    assert (c["in"], c["out"], c["rejected"]) == (7, 6, 1)
    assert c["in"] == c["out"] + c["rejected"] and c["in"] == m["tables"]["rl"] + 1
    assert c["scored"] == 6 and c["rollouts"] == 6 * K
    assert c["correct"] == sum(r["n_correct"] for r in store.read_table("rl", version).to_pylist())
    assert m["stage_counts"]["validate"] == {"in": 10, "out": 9, "rejected": 1}  # the parent's, carried
    assert m["teachers"]["policy"]["sampling"]["n"] == K
    assert {k: m["teachers"]["policy"][k] for k in ("backend", "stage", "prompt_version")} == {
        "backend": "transformers", "stage": "difficulty", "prompt_version": "v1"}
    assert m["teachers"]["policy"]["model"] == f"transformers:{m['config']['model']}"
    assert (m["config"]["k"], m["config"]["max_new_tokens"], m["config"]["batch_size"]) == (K, 8, 4)  # the config, whole
    assert m["rejects_by_reason"] == {"difficulty/rollout_error": 1}


def test_limit_on_object_storage_scores_the_first_rows_and_carries_the_rest(scored, tmp_path, monkeypatch):
    """The same pass over a copy of v1 on fsspec's memory:// store: rl read through the verified cache."""
    import uuid

    import fsspec

    from curation.store.fs import copy_file, location
    from pipelines import difficulty
    from training.difficulty import DifficultyConfig

    store, _, _, model = scored
    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/data/synth"
    remote = Store(url)
    try:
        for f in [*store.path(1).rglob("*.parquet"), store.path(1) / "manifest.json"]:
            copy_file(f, location(f"{url}/v0001/{f.relative_to(store.path(1)).as_posix()}"))
        cfg = DifficultyConfig(model=str(model), k=1, max_new_tokens=4, batch_size=2, limit=4, device="cpu")
        assert difficulty.run(url, "latest", cfg) == 2
        rl = remote.read_table("rl", 2).to_pylist()
        assert [r["n_rollouts"] for r in rl] == [1, 1, 1, 1, None, None, None]  # the corrupt last row: unscored
        c = remote.manifest(2)["stage_counts"]["difficulty"]
        assert (c["in"], c["out"], c["scored"], c["unscored"], c["rejected"]) == (7, 7, 4, 3, 0)
        assert remote.verify(2) == []
    finally:
        fs, path = fsspec.core.url_to_fs(url)
        fs.rm(path.split("/data")[0], recursive=True)


def test_cli_refuses_a_missing_model(tmp_path, capsys):
    from pipelines.cli import main

    assert main(["difficulty", "--data", str(tmp_path), "--model", str(tmp_path / "nope")]) == 1
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--k", "0"], "difficulty: k, batch_size, max_new_tokens and workers must be >= 1"),
    (["--top-p", "1.5"], "difficulty: temperature must be >= 0 and top_p in"),
    (["--k", "many"], "difficulty.k: expected an integer"),
    (["--backend", "tpu"], "difficulty.backend: expected one of transformers, vllm, got 'tpu'"),
    (["--engine-args", "[1, 2]"], "difficulty.engine_args: expected a mapping"),
])
def test_cli_flags_are_checked_by_the_config_before_the_model(tmp_path, capsys, flags, message):
    from pipelines.cli import main

    assert main(["difficulty", "--data", str(tmp_path), "--model", str(tmp_path / "nope"), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[0] and message in err and not (tmp_path / "nope").exists()
