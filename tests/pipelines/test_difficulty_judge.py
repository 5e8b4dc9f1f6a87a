"""The difficulty pass with a judge: open rows' rollouts count as correct when judged correct (real Beam runs,
the tiny policy taught to answer "3" about two thirds of the time, the program judge); without a judge they
never do, and the rule-verified rows score the same either way."""
from __future__ import annotations

import pytest

from curation.difficulty.settings import DifficultyConfig
from curation.generation.judge import JudgeSpec
from curation.store.versions import Store
from tests.training.conftest import synthetic_tables

GOLD = "Looking at the picture, there are {} shapes in all."


@pytest.fixture(scope="module")
def passes(tmp_path_factory, taught_policy_dir):
    from pipelines import difficulty

    tables = synthetic_tables(6, 2, seed=5, families=["counting"])
    for i, r in enumerate(tables["rl"]):
        if i % 2 == 0:
            r.update(solution=GOLD.format(3), answer_type="open")
        else:
            r.update(solution="3")
    out = {}
    for name, judge in (("judged", JudgeSpec(backend="program")), ("plain", JudgeSpec())):
        store = Store(tmp_path_factory.mktemp(name) / "synth")
        store.write_version(tables, config={"source": "tests/pipelines/test_difficulty_judge.py"})
        cfg = DifficultyConfig(model=str(taught_policy_dir), k=4, max_new_tokens=24, batch_size=3, seed=0,
                               device="cpu", judge=judge)
        out[name] = (store, difficulty.run(store.root, 1, cfg))
    return out


def test_open_rows_pass_rates_come_from_the_judge(passes):
    (judged, v), (plain, w) = passes["judged"], passes["plain"]
    a = {r["id"]: r for r in judged.read_table("rl", v).to_pylist()}
    b = {r["id"]: r for r in plain.read_table("rl", w).to_pylist()}
    assert a.keys() == b.keys() and all(r["n_rollouts"] == 4 for r in a.values())
    opened = [i for i, r in a.items() if r["answer_type"] == "open"]
    for i, r in a.items():
        if r["answer_type"] != "open":
            assert r["n_correct"] == b[i]["n_correct"]  # the same seeded rollouts, the same rule
    assert all(b[i]["n_correct"] == 0 for i in opened)  # no rule scores a sentence gold
    assert sum(a[i]["n_correct"] for i in opened) > 0  # the taught policy's "3" judged correct
    traces = [t for t in judged.read_table("traces", v).to_pylist() if t["id"] in opened]
    judged_traces = [t for t in traces if t["judge"] == "program@judge-v1"]
    assert judged_traces and all(t["verdict_reason"] in ("judged_correct", "judged_wrong") for t in judged_traces)
    assert all(not t["correct"] for t in traces if t["judge"] is None)  # e.g. no answer at all: the rule says wrong
    for i in opened:  # the pass rate and the traces' verdicts agree
        assert a[i]["n_correct"] == sum(t["correct"] for t in traces if t["id"] == i)
    assert judged.manifest(v)["teachers"]["policy"]["judge"] == "program@judge-v1"
    assert plain.manifest(w)["teachers"]["policy"]["judge"] is None


def test_a_missing_judge_model_stops_the_pass_before_any_rollout(taught_policy_dir, tmp_path):
    from curation.errors import SightlineError
    from pipelines import difficulty

    store = Store(tmp_path / "synth")
    store.write_version(synthetic_tables(3, 1, seed=5, families=["counting"]), config={})
    cfg = DifficultyConfig(model=str(taught_policy_dir), k=2, device="cpu",
                           judge=JudgeSpec(backend="transformers", model=str(tmp_path / "no-judge")))
    with pytest.raises(SightlineError, match="judge: model path .*no-judge does not exist"):
        difficulty.run(store.root, 1, cfg)
    assert store.versions() == [1]
