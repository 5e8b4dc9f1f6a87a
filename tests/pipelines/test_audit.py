import subprocess
import sys

import pytest

from curation.errors import SightlineError
from curation.store import Store
from pipelines.audit import QUERIES, format_rows, run_query


@pytest.fixture
def store(tmp_path, hand_built_tables):
    s = Store(tmp_path / "mini")
    s.write_version(hand_built_tables, config={})
    return s


def test_summary_counts(store):
    cols, rows = run_query(store, "summary")
    got = dict(rows)
    assert got == {"examples": 3, "examples (train)": 2, "examples (test)": 1, "traces": 4, "traces correct": 1,
                   "traces selected": 1, "sft": 1, "rl": 2, "rl with difficulty": 1, "test": 1, "rejects": 3}


def test_rejects_by_stage_and_reason(store):
    cols, rows = run_query(store, "rejects")
    assert cols == ["stage", "reason", "rows"]
    assert rows == [("validate", "not_an_image", 2), ("verify", "no_correct_trace", 1)]


def test_difficulty_histogram(store):
    cols, rows = run_query(store, "difficulty")
    got = {r[0]: (r[1], r[2]) for r in rows}
    assert got["0.2-0.3"] == (1, 0.1875)  # pass rate 0.25 -> p(1-p) = 0.1875
    assert got["not scored"][0] == 1


def test_lengths_by_verdict(store):
    cols, rows = run_query(store, "lengths")
    got = {r[0]: dict(zip(cols, r)) for r in rows}
    assert got["correct"]["traces"] == 1 and got["correct"]["mean"] == 40
    assert got["wrong"]["traces"] == 3 and got["wrong"]["mean"] == 60 and got["wrong"]["median"] == 60
    assert got["wrong"]["max"] == 100


def test_sources(store):
    cols, rows = run_query(store, "sources")
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert got == {("hand", "chart"): (1, 0, 0, 3), ("hand", "counting"): (2, 2, 1, 3)}


def test_lineage_follows_one_id_through_every_table(store):
    cols, rows = run_query(store, "lineage", args=["e0"])
    tables = sorted(r[0] for r in rows)
    assert tables == ["examples", "rl", "sft", "traces", "traces"]
    assert {r[2] for r in rows if r[0] == "traces"} == {"t0", "t1"}
    cols, rows = run_query(store, "lineage", args=["t1"])
    assert [r[0] for r in rows] == ["traces"]


def test_free_sql_and_formats(store):
    cols, rows = run_query(store, "SELECT task, count(*) AS n FROM examples GROUP BY task ORDER BY task")
    assert rows == [("chart", 1), ("counting", 2)]
    assert format_rows(cols, rows, "csv").splitlines() == ["task,n", "chart,1", "counting,2"]
    table = format_rows(cols, rows).splitlines()
    assert table[0].split() == ["task", "n"] and table[-1] == "(2 rows)"


def test_bad_sql_is_one_line_error(store):
    with pytest.raises(SightlineError, match="query failed"):
        run_query(store, "SELEC nonsense FROM nowhere")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,needle", [
    (["audit", "--data", "{root}/missing", "summary"], "no data folder"),
    (["audit", "--data", "{root}/mini", "--version", "9", "summary"], "no version 9"),
    (["audit", "--data", "{root}/mini", "SELECT * FROM nope"], "query failed"),
    (["data", "verify", "--data", "{root}/missing"], "no data folder"),
])
def test_cli_errors_are_one_line_and_nonzero(store, args, needle):
    root = str(store.root.parent)
    r = _cli(*[a.format(root=root) for a in args])
    assert r.returncode == 1
    err_lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1 and needle in err_lines[0] and "Traceback" not in r.stderr


def test_cli_list_and_table_output(store):
    r = _cli("audit", "--list")
    assert r.returncode == 0 and all(q in r.stdout for q in QUERIES)
    r = _cli("audit", "--data", str(store.root), "--format", "json", "rejects")
    assert r.returncode == 0 and '"reason": "not_an_image"' in r.stdout
