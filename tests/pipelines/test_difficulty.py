"""The difficulty pipeline on a real Beam run: a tiny policy, k rollouts, verification, a new version."""
from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from curation.store.versions import Store
from tests.training.conftest import synthetic_tables

K = 4
LEVELS = [1, 2, 1, 2, 1, 2, 1]  # the rl rows' levels (the filtered pass rolls out level 2 only)


def _parent_tables() -> dict[str, list[dict]]:
    """7 counting prompts in rl (golds 3, one 4; the last with a corrupt image), sft and traces of the
    program teacher, in the curate pipeline's layouts."""
    from curation.generation.assemble import trace_rows
    from curation.generation.distill import SelectConfig
    from curation.synthetic import solution_from_scene

    tables = synthetic_tables(7, 2, seed=5, families=["counting"])
    for i, r in enumerate(tables["rl"]):
        r.update(solution="4" if i == 2 else "3", level=LEVELS[i])  # counting: integer golds, no choices
    tables["rl"][-1]["images"] = [{"bytes": b"not an image", "path": None}]
    program = {"model": "program:solution(error_rate=0)", "prompt_version": "distill-v1", "sampling": {"n": 1}}
    tables["traces"] = [t for ex in tables["examples"][:2]
                        for t in trace_rows(ex, [solution_from_scene(ex["scene"])], program, SelectConfig())]
    tables["rejects"] = [{"id": "r0", "source": "synthetic", "source_id": "x", "stage": "validate",
                          "reason": "not_an_image", "detail": ""}]
    return tables


@pytest.fixture(scope="module")
def scored(tmp_path_factory, taught_policy_dir):
    """v1: 7 rl prompts in 3 shards (the last with a corrupt image) -> difficulty by a taught tiny policy -> v2."""
    from pipelines import difficulty
    from curation.difficulty.settings import DifficultyConfig

    root = tmp_path_factory.mktemp("difficulty")
    model = taught_policy_dir
    tables = _parent_tables()
    store = Store(root / "data" / "synth")
    with store.begin() as st:
        for name, rows in tables.items():
            st.write_table(name, rows, rows_per_shard=3 if name == "rl" else 2000)
        st.commit(parent=None, config={"source": "test"},
                  stage_counts={"validate": {"in": 10, "out": 9, "rejected": 1}})
    cfg = DifficultyConfig(model=str(model), k=K, max_new_tokens=24, batch_size=4, seed=0, device="cpu", round=1)
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
        if table == "rl":
            continue
        paths = {(e["path"], e["sha256"]) for e in new[table]}
        assert {(e["path"], e["sha256"]) for e in old[table]} <= paths  # the parent's shards, byte for byte
        assert len(paths) == len(old[table]) + (table in ("rejects", "traces", "sft"))  # + the pass's own
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
    assert m["teachers"]["policy"]["path"] == m["config"]["model"]
    assert (m["config"]["k"], m["config"]["max_new_tokens"], m["config"]["batch_size"]) == (K, 24, 4)  # the config, whole
    assert m["config"]["round"] == 1
    assert m["rejects_by_reason"] == {"difficulty/rollout_error": 1}


def test_limit_on_object_storage_scores_the_first_rows_and_carries_the_rest(scored, tmp_path, monkeypatch):
    """The same pass over a copy of v1 on fsspec's memory:// store: rl read through the verified cache."""
    import uuid

    import fsspec

    from curation.store.fs import copy_file, location
    from pipelines import difficulty
    from curation.difficulty.settings import DifficultyConfig

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
    (["--max-pass-rate", "2"], "difficulty: max_pass_rate must be in [0, 1]"),
    (["--levels", "[]"], "difficulty: levels must name at least one level"),
    (["--levels", "[two]"], "difficulty.levels[0]: expected an integer"),
    (["--keep-traces", "maybe"], "difficulty.keep_traces: expected true or false"),
    (["--max-per-example", "0"], "difficulty: max_per_example must be >= 1"),
])
def test_cli_flags_are_checked_by_the_config_before_the_model(tmp_path, capsys, flags, message):
    from pipelines.cli import main

    assert main(["difficulty", "--data", str(tmp_path), "--model", str(tmp_path / "nope"), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[0] and message in err and not (tmp_path / "nope").exists()


# ---------------------------------------------------------------- rejection sampling: rollouts as traces and sft


def _added(store, version, table):
    """The rows a pass added to ``table``: those of shards its parent does not have."""
    parent = {e["path"] for e in store.manifest(store.manifest(version)["parent"])["files"][table]}
    return [r for e in store.manifest(version)["files"][table] if e["path"] not in parent
            for r in pq.read_table(store.path(version) / e["path"]).to_pylist()]


def test_every_rollout_is_a_trace_with_its_verdict_and_the_policy_hash(scored):
    from curation.answers.verify import format_ok, verify

    store, version, tables, model = scored
    weights = hashlib.sha256()
    for f in sorted(model.glob("*.safetensors")):  # names, sizes and bytes, as curation.difficulty.policy hashes them
        weights.update(f"{f.name}\x00{f.stat().st_size}\x00".encode() + f.read_bytes())
    teacher = f"policy:{model.name}@{weights.hexdigest()[:12]}"
    gold = {r["id"]: r for r in tables["rl"]}
    traces = _added(store, version, "traces")
    rl = {r["id"]: r for r in store.read_table("rl", version).to_pylist()}
    assert sorted((t["id"], t["sample_index"]) for t in traces) == sorted((i, s) for i in rl for s in range(K))
    for t in traces:
        row = gold[t["id"]]
        assert t["teacher"] == teacher and t["prompt_version"] == "v1" and t["level"] == row["level"]
        assert json.loads(t["sampling"]) == {"n": K, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 24, "seed": 0}
        assert t["raw_trace"] == t["trace"] and t["rewrite_edits"] == 0  # the policy read the image: no rewrite
        assert t["correct"] == verify(t["trace"], row["solution"], answer_type="integer").correct
        assert t["format_ok"] == format_ok(t["trace"])
        assert t["question"] == row["prompt"][0]["content"][1]["text"].split("\n")[0]
    correct = sum(t["correct"] for t in traces)
    assert 0 < correct < len(traces)  # the taught policy is right sometimes: both kinds are there
    assert correct == sum(r["n_correct"] for r in rl.values())  # the pass rates count the same verdicts
    assert store.read_table("traces", version).num_rows == len(tables["traces"]) + len(traces)


def test_sft_rows_added_are_exactly_the_selected_correct_rollouts(scored):
    store, version, tables, _ = scored
    traces = _added(store, version, "traces")
    want = {}
    for t in sorted(traces, key=lambda t: (t["length_chars"], t["trace_id"])):  # shortest correct, well-formed first
        if t["correct"] and t["format_ok"] and t["length_chars"] >= 20 and t["id"] not in want:
            want[t["id"]] = t
    assert want and {t["trace_id"] for t in traces if t["selected"]} == {t["trace_id"] for t in want.values()}
    assert {t["status"] for t in traces} <= {"selected", "not_shortest", "incorrect", "bad_format", "too_short"}
    sft = _added(store, version, "sft")
    rl = {r["id"]: r for r in tables["rl"]}
    assert sorted(s["trace_id"] for s in sft) == sorted(t["trace_id"] for t in want.values())
    for s in sft:
        t = want[s["id"]]
        assert s["teacher"] == t["teacher"] and s["level"] == rl[s["id"]]["level"]
        assert s["messages"] == [*rl[s["id"]]["prompt"], {"role": "assistant", "content": [
            {"type": "text", "text": t["trace"]}]}]  # the rl prompt the policy answered, then its trace
        assert s["images"] == rl[s["id"]]["images"]
    parent_sft = store.read_table("sft", 1).to_pylist()
    assert store.read_table("sft", version).num_rows == len(parent_sft) + len(sft)
    c = store.manifest(version)["stage_counts"]["difficulty"]
    assert (c["prompts"], c["traces_added"], c["sft_added"]) == (7, len(traces), len(sft))
    assert c["rollouts"] == len(traces) == 6 * K and c["correct"] == sum(t["correct"] for t in traces)


def test_lineage_names_the_policy_of_an_sft_row(scored):
    from pipelines.audit import run_query

    store, version, _, _ = scored
    s = _added(store, version, "sft")[0]
    _, rows = run_query(store, "lineage", version=version, args=[s["trace_id"]])
    assert ("sft", s["id"], s["trace_id"], s["source"], s["source_id"], s["teacher"]) in rows
    assert any(r[0] == "traces" and "correct (selected)" in r[5] and r[5].startswith(s["teacher"]) for r in rows)
    m = store.manifest(version)["teachers"]["policy"]
    assert (m["teacher"], m["model"], m["backend"], m["content_hash"][:12], m["round"], m["parent"]) == (
        s["teacher"], s["teacher"], "transformers", s["teacher"][-12:], 1, 1)
    assert store.manifest(version)["teachers"][s["teacher"]] == m  # kept under its own name for later versions


def test_filters_roll_out_only_the_chosen_prompts_and_carry_the_rest(scored):
    """Round 2 on v2: only level-2 prompts the policy still fails (pass rate <= 0.5) are rolled out."""
    from pipelines import difficulty
    from curation.difficulty.settings import DifficultyConfig

    store, version, _, model = scored
    before = store.read_table("rl", version).to_pylist()
    cfg = DifficultyConfig(model=str(model), k=2, max_new_tokens=24, batch_size=4, device="cpu", levels=[2],
                           max_pass_rate=0.5, keep_traces=True, round=2)
    v3 = difficulty.run(store.root, version, cfg)
    chosen = {r["id"] for r in before if r["level"] == 2 and r["pass_rate"] <= 0.5}
    after = store.read_table("rl", v3).to_pylist()
    for old, new in zip(before, after, strict=True):
        if old["id"] in chosen:
            assert new["n_rollouts"] == 2
        else:  # filtered out: carried with the scores it had
            assert (new["n_rollouts"], new["n_correct"], new["pass_rate"]) == (
                old["n_rollouts"], old["n_correct"], old["pass_rate"])
    assert len(chosen) < len(before)  # something was filtered
    c = store.manifest(v3)["stage_counts"]["difficulty"]
    assert (c["in"], c["prompts"], c["scored"], c["unscored"]) == (len(before), len(chosen), len(chosen),
                                                                   len(before) - len(chosen))
    assert {t["id"] for t in _added(store, v3, "traces")} == chosen
    assert store.verify(v3) == []  # a second pass's shards beside the first's: no name taken twice
    teachers = store.manifest(v3)["teachers"]
    assert teachers["policy"]["round"] == 2 and teachers["policy"]["parent"] == version
    assert store.read_table("traces", v3).num_rows == store.read_table("traces", version).num_rows + 2 * len(chosen)
