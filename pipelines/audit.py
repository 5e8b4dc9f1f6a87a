"""`sightline audit`: DuckDB views over one version of a dataset, named queries or free SQL.

    sightline audit --data data/mini summary
    sightline audit --data data/mini --version 1 rejects
    sightline audit --data data/mini lineage 3f2a...
    sightline audit --data data/mini "SELECT task, count(*) FROM rl GROUP BY task"
    sightline audit --list
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from curation.accounting import ROW_STAGES
from curation.errors import SightlineError
from curation.store.versions import Store
from schemas import SCHEMAS

# name -> (one-line help, SQL). `{id}` is filled for lineage (bound as a parameter, not pasted).
QUERIES: dict[str, tuple[str, str]] = {
    "summary": (
        "rows per table, examples per split, traces correct / selected",
        """
        SELECT 'examples' AS item, count(*) AS rows FROM examples
        UNION ALL SELECT 'examples (train)', count(*) FROM examples WHERE split = 'train'
        UNION ALL SELECT 'examples (test)', count(*) FROM examples WHERE split = 'test'
        UNION ALL SELECT 'traces', count(*) FROM traces
        UNION ALL SELECT 'traces correct', count(*) FROM traces WHERE correct
        UNION ALL SELECT 'traces selected', count(*) FROM traces WHERE selected
        UNION ALL SELECT 'sft', count(*) FROM sft
        UNION ALL SELECT 'rl', count(*) FROM rl
        UNION ALL SELECT 'rl with difficulty', count(*) FROM rl WHERE pass_rate IS NOT NULL
        UNION ALL SELECT 'test', count(*) FROM test
        UNION ALL SELECT 'rejects', count(*) FROM rejects
        """,
    ),
    "rejects": (
        "rejected rows by stage and reason, most frequent first",
        "SELECT stage, reason, count(*) AS rows FROM rejects GROUP BY stage, reason ORDER BY rows DESC, stage, reason",
    ),
    "difficulty": (
        "histogram of rl pass rates in tenths (NULL = not scored yet) and mean p(1-p)",
        """
        SELECT CASE WHEN pass_rate IS NULL THEN 'not scored'
                    ELSE printf('%.1f-%.1f', least(floor(pass_rate * 10), 9) / 10,
                                least(floor(pass_rate * 10), 9) / 10 + 0.1) END AS pass_rate,
               count(*) AS prompts,
               round(avg(pass_rate * (1 - pass_rate)), 4) AS mean_variance
        FROM rl GROUP BY 1 ORDER BY 1
        """,
    ),
    "lengths": (
        "trace length in characters by verdict: count, mean, median, p90, max",
        """
        SELECT CASE WHEN correct THEN 'correct' ELSE 'wrong' END AS verdict, count(*) AS traces,
               round(avg(length_chars), 1) AS mean, quantile_cont(length_chars, 0.5) AS median,
               quantile_cont(length_chars, 0.9) AS p90, max(length_chars) AS max
        FROM traces GROUP BY 1 ORDER BY 1
        """,
    ),
    "sources": (
        "per source and task: examples, rl prompts, sft rows, rejects",
        """
        WITH e AS (SELECT source, task, count(*) n FROM examples GROUP BY ALL),
             r AS (SELECT source, task, count(*) n FROM rl GROUP BY ALL),
             s AS (SELECT source, task, count(*) n FROM sft GROUP BY ALL),
             j AS (SELECT source, count(*) n FROM rejects GROUP BY ALL)
        SELECT e.source, e.task, e.n AS examples, coalesce(r.n, 0) AS rl, coalesce(s.n, 0) AS sft,
               coalesce(j.n, 0) AS source_rejects
        FROM e LEFT JOIN r USING (source, task) LEFT JOIN s USING (source, task) LEFT JOIN j USING (source)
        ORDER BY e.source, e.task
        """,
    ),
    "lineage": (
        "lineage <id>: every row of every table with this id (or trace id), with its source",
        """
        SELECT 'examples' AS tbl, id, NULL AS trace_id, source, source_id, split AS detail FROM examples WHERE id = $id
        UNION ALL SELECT 'traces', id, trace_id, source, source_id,
               printf('%s #%d %s (%s)', teacher, sample_index, CASE WHEN correct THEN 'correct' ELSE 'wrong' END, status)
               FROM traces WHERE id = $id OR trace_id = $id
        UNION ALL SELECT 'sft', id, trace_id, source, source_id, teacher FROM sft WHERE id = $id OR trace_id = $id
        UNION ALL SELECT 'rl', id, NULL, source, source_id, 'pass_rate=' || coalesce(CAST(pass_rate AS VARCHAR), 'not scored') FROM rl WHERE id = $id
        UNION ALL SELECT 'test', id, NULL, source, source_id, NULL FROM test WHERE id = $id
        UNION ALL SELECT 'rejects', id, NULL, source, source_id, stage || ': ' || reason FROM rejects WHERE id = $id
        """,
    ),
}


# Statements an audit may run: queries only. COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CREATE, EXPORT, CALL ...
# are refused before DuckDB sees them (a COPY into the version's own folder would pass the path check below).
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


def connect(store: Store, version: int | str | None = "latest"):
    """In-memory DuckDB with one view per table of the version, sandboxed to the version's folder.

    The connection reads only files under the version's (local) folder: ``allowed_directories`` names it,
    ``enable_external_access=false`` refuses every other path, URL, ATTACH and extension install, and
    ``lock_configuration`` stops a query from turning that back on. Writes into the folder itself are
    refused by :func:`check_read_only`. On object storage ``Store.local_copy`` first fills a verified cache
    and the sandbox is that cache folder.
    """
    import duckdb

    v = store.resolve(version)
    base, entries = store.local_copy(v).resolve(), store.manifest(v)["files"]
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "allow_community_extensions": False})
    # order matters: the allowed folder is fixed before external access is closed, then the settings lock.
    # No spill folder: DuckDB silently allows reads under its temp_directory (default `.tmp` in the working
    # directory), which would open whatever sits there; queries over a version fit in memory or fail clearly.
    con.execute("SET temp_directory = ''")
    con.execute("SET allowed_directories = $dirs", {"dirs": [str(base) + "/"]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    for table in SCHEMAS:
        files = [str(base / e["path"]) for e in entries[table]]
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        # union_by_name: a derived version may hold shards of an older schema beside new ones (e.g. traces
        # before schema 4 have no `judge` column); columns match by name, missing ones read as NULL
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{quoted}], union_by_name = true)")
    return con


def check_read_only(con, sql: str) -> None:
    """Refuse anything but queries, with one line naming the statement; a parse error is DuckDB's message."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise SightlineError(f"query failed: {str(e).strip().splitlines()[0]}") from None
    for st in statements:
        kind = st.type.name
        if kind not in READ_ONLY_STATEMENTS:
            words = " ".join(st.query.split()[:2])
            raise SightlineError(f"audit runs read-only queries: {kind} is refused ({words!r}...); "
                                 f"use SELECT / WITH / FROM / DESCRIBE / SUMMARIZE / EXPLAIN over the views")


FUNNEL_STAGES = tuple(str(s) for s in ROW_STAGES)


def funnel(con) -> list[tuple[str, int]]:
    """Rows left after each stage: everything that came in, minus that stage's rejects, cumulatively."""
    total = con.execute("SELECT (SELECT count(*) FROM examples) + (SELECT count(*) FROM rejects)").fetchone()[0]
    by_stage = dict(con.execute("SELECT stage, count(*) FROM rejects GROUP BY stage").fetchall())
    out, left = [("input", total)], total
    for stage in FUNNEL_STAGES:
        left -= by_stage.get(stage, 0)
        out.append((stage, left))
    for table in ("rl", "test", "sft"):
        out.append((f"{table} rows", con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
    return out


def run_query(store: Store, query: str, *, version: int | str | None = "latest",
              args: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    """Run a named query or free SQL; returns (column names, rows)."""
    import duckdb

    args = args or []
    con = connect(store, version)
    params: dict[str, Any] | None = None
    if query in QUERIES:
        sql = QUERIES[query][1]
        if query == "lineage":
            if len(args) != 1:
                raise SightlineError("usage: sightline audit --data DIR lineage <id>")
            params = {"id": args[0]}
        elif args:
            raise SightlineError(f"query {query!r} takes no arguments")
    else:
        sql = " ".join([query, *args])
    try:
        if query not in QUERIES:
            check_read_only(con, sql)
        cur = con.execute(sql, params) if params else con.execute(sql)
        if cur.description is None:
            return [], []
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()
    except duckdb.PermissionException as e:
        first = str(e).strip().splitlines()[0].removeprefix("Permission Error: ")
        first = first.replace(" - file system operations are disabled by configuration", "")
        raise SightlineError(f"audit reads only this version's files ({store.root}, "
                             f"v{store.resolve(version):04d}): {first}") from None
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0]
        hint = "" if query in QUERIES else " (not a named query either; see `sightline audit --list`)"
        raise SightlineError(f"query failed: {first}{hint}") from None
    finally:
        con.close()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, dict) and "bytes" in v:
        b = v.get("bytes")
        return f"<image {len(b) if b else 0} bytes>"
    s = str(v)
    return s if len(s) <= 80 else s[:77] + "..."


def format_rows(cols: list[str], rows: list[tuple], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([dict(zip(cols, [_cell(v) if isinstance(v, (bytes, dict)) else v for v in r]))
                           for r in rows], indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows([[_cell(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) and rows for i in range(len(cols))]

    def line(vals):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(cols), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def list_queries() -> str:
    w = max(map(len, QUERIES))
    lines = [f"  {name.ljust(w)}  {help_}" for name, (help_, _) in QUERIES.items()]
    tables = ", ".join(SCHEMAS)
    return "named queries:\n" + "\n".join(lines) + f"\nviews for free SQL: {tables}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sightline audit",
        description="Query one version of a dataset with DuckDB (in memory, one view per table).",
        epilog=list_queries(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset folder, e.g. data/mini")
    p.add_argument("--version", default="latest", help="version number, vNNNN or latest (default)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    p.add_argument("--list", action="store_true", help="list the named queries and exit")
    p.add_argument("query", nargs="*", help="a named query (default: summary) with its arguments, or SQL")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(list_queries())
        return 0
    if not args.data:
        raise SightlineError("--data is required (e.g. --data data/mini)")
    store = Store(args.data)
    name, *rest = args.query or ["summary"]
    version = store.resolve(args.version)
    cols, rows = run_query(store, name, version=version, args=rest)
    if args.format == "table":
        print(f"# {store.root} v{version:04d}: {name if name in QUERIES else 'sql'}", file=sys.stderr)
    print(format_rows(cols, rows, args.format))
    return 0
