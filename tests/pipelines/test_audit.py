import subprocess
import sys

import pytest

from curation.errors import SightlineError
from curation.store.versions import Store
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


# ---- the sandbox: an audit reads only the version's files, writes nothing, installs nothing
@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("a,b\n1,2\n")
    return secret


ESCAPES = [
    ("COPY (SELECT 1 AS x) TO '{out}/written.csv'", "COPY is refused"),
    ("COPY (SELECT 1 AS x) TO '{version}/written.csv'", "COPY is refused"),  # inside the folder: still no writes
    ("SELECT 1; COPY rl TO '{out}/written.parquet'", "COPY is refused"),
    ("SELECT * FROM read_text('{secret}')", "reads only this version's files"),
    ("SELECT * FROM read_csv('{secret}')", "reads only this version's files"),
    ("SELECT * FROM read_parquet('{version}/../../outside/secret.csv')", "reads only this version's files"),
    ("SELECT * FROM glob('{out}/*')", "reads only this version's files"),
    ("ATTACH '{out}/other.duckdb' AS other", "ATTACH is refused"),
    ("INSTALL httpfs", "LOAD is refused"),
    ("LOAD httpfs", "LOAD is refused"),
    ("SET enable_external_access = true", "SET is refused"),
    ("SELECT * FROM query('COPY (SELECT 1) TO ''{out}/written.csv''')", "query failed"),
]


@pytest.mark.parametrize("sql,needle", ESCAPES)
def test_escapes_refused_in_process(store, outside, sql, needle):
    version_dir = store.path(1)
    sql = sql.format(out=outside.parent, version=version_dir, secret=outside)
    with pytest.raises(SightlineError, match=needle) as e:
        run_query(store, sql)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["secret.csv"]  # nothing written beside it
    assert not list(version_dir.glob("written*"))


@pytest.mark.parametrize("sql,needle", [ESCAPES[0], ESCAPES[3], ESCAPES[7], ESCAPES[8]])
def test_escapes_are_one_line_and_exit_1(store, outside, sql, needle):
    sql = sql.format(out=outside.parent, version=store.path(1), secret=outside)
    r = _cli("audit", "--data", str(store.root), sql)
    err_lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(err_lines) == 1 and needle in err_lines[0], r.stderr
    assert r.stdout == "" and not (outside.parent / "written.csv").exists()


@pytest.mark.parametrize("version", ["../../etc", "v0001/../../x", "1/..", "/etc/passwd"])
def test_path_traversal_in_version_is_one_line(store, version):
    r = _cli("audit", "--data", str(store.root), "--version", version, "summary")
    err_lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(err_lines) == 1 and "bad version" in err_lines[0], r.stderr


def test_free_select_and_named_queries_still_work_in_the_sandbox(store):
    version_dir = store.path(1)
    # the version's own files are readable by path too (relative to nothing: absolute)
    cols, rows = run_query(store, f"SELECT count(*) FROM read_parquet('{version_dir}/rl/*.parquet')")
    assert rows == [(2,)]
    cols, rows = run_query(store, "WITH t AS (SELECT task FROM examples) FROM t SELECT task, count(*) GROUP BY 1 ORDER BY 1")
    assert rows == [("chart", 1), ("counting", 2)]
    cols, rows = run_query(store, "DESCRIBE rl")
    assert "pass_rate" in [r[0] for r in rows]
    assert dict(run_query(store, "summary")[1])["rl"] == 2


def test_duckdb_temp_directory_is_not_a_way_out(store, tmp_path, monkeypatch):
    # DuckDB allows reads under its temp_directory (default: `.tmp` in the working directory) even with
    # external access off; the sandbox turns spilling off so that folder stays closed.
    (tmp_path / "cwd" / ".tmp").mkdir(parents=True)
    (tmp_path / "cwd" / ".tmp" / "secret.txt").write_text("token")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(SightlineError, match="reads only this version's files"):
        run_query(store, "SELECT content FROM read_text('.tmp/secret.txt')")
