"""The verify stage's judge on real Beam runs: synthetic rows with sentence golds (``synthetic.open_share``),
the program teachers (with deliberate mistakes), and the program judge; the same recipe without a judge."""
import io
import json
import sys

import pytest

from curation.recipe import load_data_recipe
from curation.store.versions import Store
from pipelines.audit import connect
from pipelines.curate import run

SETS = ["synthetic.n=40", "synthetic.open_share=0.5", "synthetic.level=1", "distill.error_rate=0.25",
        "distill.n=2", "test_fraction=0.2", "val_fraction=0.0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate_judge")
    capture = pytest.MonkeyPatch()
    printed = io.StringIO()
    capture.setattr(sys, "stdout", printed)
    try:
        judged = run(load_data_recipe("configs/data/mini.yaml", [f"output_root={root / 'a'}", *SETS,
                                                                 "judge.backend=program"]))
    finally:
        capture.undo()
    plain = run(load_data_recipe("configs/data/mini.yaml", [f"output_root={root / 'b'}", *SETS]))
    return Store(root / "a" / "mini"), judged, Store(root / "b" / "mini"), plain, printed.getvalue()


def test_needs_judge_traces_get_the_judges_verdict(runs):
    store, info, _, _, printed = runs
    ex = {e["id"]: e for e in store.read_table("examples").to_pylist()}
    traces = store.read_table("traces").to_pylist()
    open_traces = [t for t in traces if t["answer_type"] == "open"]
    assert len(open_traces) >= 10 and len(open_traces) < len(traces)
    for t in traces:
        short = json.loads(ex[t["id"]]["scene"])["answer"]  # what the sentence gold states
        if t["answer_type"] != "open":
            assert t["judge"] is None and t["verdict_reason"] not in ("judged_correct", "judged_wrong")
            continue
        assert t["judge"] == "program@judge-v1"
        assert t["verdict_reason"] in ("judged_correct", "judged_wrong")  # no judge_error on these templates
        assert t["correct"] == (t["verdict_reason"] == "judged_correct") == (t["extracted"] == short)
    assert {t["verdict_reason"] for t in open_traces} == {"judged_correct", "judged_wrong"}  # error_rate 0.25
    sft = {r["id"] for r in store.read_table("sft", columns=["id"]).to_pylist()}
    assert any(t["selected"] and t["id"] in sft for t in open_traces)  # open rows get sft traces too
    rl = store.read_table("rl").to_pylist() + store.read_table("test").to_pylist()
    assert any(r["answer_type"] == "open" for r in rl)  # learnable with a judge
    m = info.manifest
    assert m["teachers"]["judge"]["judge"] == "program@judge-v1" and m["teachers"]["judge"]["prompt_version"] == "judge-v1"
    judged = m["stage_counts"]["verify"]["judged"]
    assert judged == {v: sum(t["verdict_reason"] == v for t in open_traces) for v in ("judged_correct", "judged_wrong")}
    assert m["schema_version"] == 4
    assert (f"judged:  judged_correct={judged['judged_correct']}, judged_wrong={judged['judged_wrong']} by "
            "program@judge-v1") in printed
    con = connect(store, "latest")
    assert con.execute("SELECT judge, count(*) FROM traces WHERE judge IS NOT NULL GROUP BY judge").fetchall() == [
        ("program@judge-v1", len(open_traces))]


def test_without_a_judge_open_rows_stay_unjudged_and_out_of_rl(runs):
    _, _, store, info, _ = runs
    traces = store.read_table("traces").to_pylist()
    open_traces = [t for t in traces if t["answer_type"] == "open"]
    assert open_traces and all(t["verdict_reason"] == "needs_judge" and t["judge"] is None and not t["correct"]
                               and not t["selected"] for t in open_traces)
    for table in ("rl", "test"):
        assert all(r["answer_type"] != "open" for r in store.read_table(table).to_pylist())
    m = info.manifest
    assert "judge" not in m["teachers"] and m["stage_counts"]["verify"]["judged"] == {}
    assert m["stage_counts"]["split"]["kept_out_by_reason"]["open_answer"] == \
        sum(e["answer_type"] == "open" for e in store.read_table("examples").to_pylist())
