"""After the Beam passes: name the shards, count what happened, and say it to the user."""
from __future__ import annotations

from pathlib import Path

def finalize_shards(staging: Path) -> None:
    """Drop empty shards where a table has others, then name them part-00000-of-000NN.parquet."""
    import pyarrow.parquet as pq

    from curation.store import shard_name
    from schemas import SCHEMAS

    for table in SCHEMAS:
        d = staging / table
        files = sorted(d.glob("*.parquet")) if d.is_dir() else []
        rows = {f: pq.read_metadata(f).num_rows for f in files}
        keep = [f for f in files if rows[f]] or files[:1]
        for f in files:
            if f not in keep:
                f.unlink()
        tmp = [f.rename(f.with_name(f"tmp-{i}.parquet")) for i, f in enumerate(keep)]
        for i, f in enumerate(tmp):
            f.rename(d / shard_name(i, len(tmp)))


def stage_counts(c: dict[str, int], rejects_by_stage: dict[str, int], seconds: dict[str, float]) -> dict:
    g = lambda k: c.get(k, 0)  # noqa: E731
    test = g("split.test")
    train = g("decontam.out") - test
    counts = {
        "ingest": {"in": g("ingest.in"), "out": g("ingest.out"), "rejected": rejects_by_stage.get("ingest", 0)},
        "validate": {"in": g("validate.in"), "out": g("validate.out"),
                     "rejected": rejects_by_stage.get("validate", 0)},
        "dedup": {"in": g("dedup.in"), "out": g("dedup.out"), "rejected": 0,
                  "duplicates": rejects_by_stage.get("dedup", 0)},
        "decontam": {"in": g("decontam.in"), "out": g("decontam.out"),
                     "rejected": rejects_by_stage.get("decontam", 0)},
        "split": {"train": train, "test": test},
        "caption": {"in": train, "out": g("caption.out"), "rejected": rejects_by_stage.get("caption", 0)},
        "distill": {"in": g("caption.out"), "out": g("distill.out"), "rejected": rejects_by_stage.get("distill", 0)},
        "verify": {"traces": g("verify.traces"), "correct": g("verify.correct")},
        "select": {k[len("verify.status_"):]: v for k, v in sorted(c.items()) if k.startswith("verify.status_")},
    }
    # seconds spent inside each stage's functions (summed over workers), teachers included
    for stage, keys in (("ingest", ["ingest.usecs"]), ("validate", ["validate.usecs"]),
                        ("caption", ["caption.teacher_usecs"]), ("distill", ["reason.teacher_usecs", "distill.usecs"])):
        counts[stage]["cpu_seconds"] = round(sum(g(k) for k in keys) / 1e6, 2)
    counts["passes"] = {k: round(v, 2) for k, v in seconds.items()}
    return counts


def table_rows(staging: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {d.name: sum(pq.read_metadata(f).num_rows for f in d.glob("*.parquet"))
            for d in sorted(staging.iterdir()) if d.is_dir() and not d.name.startswith("_")}


def rejects_summary(staging: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    import pyarrow.parquet as pq

    by_stage: dict[str, int] = {}
    by_reason: dict[tuple[str, str], int] = {}
    for f in sorted((staging / "rejects").glob("*.parquet")):
        t = pq.read_table(f, columns=["stage", "reason"]).to_pydict()
        for stage, reason in zip(t["stage"], t["reason"]):
            by_stage[stage] = by_stage.get(stage, 0) + 1
            by_reason[(stage, reason)] = by_reason.get((stage, reason), 0) + 1
    return by_stage, by_reason


def print_summary(info, by_reason: dict[tuple[str, str], int], stages: tuple[str, ...]) -> None:
    from pipelines.audit import format_rows

    m = info.manifest
    sc = m["stage_counts"]
    rows = []
    for stage in stages:
        s = sc.get(stage, {})
        rows.append((stage, s.get("in", 0), s.get("out", 0), s.get("rejected", 0), s.get("duplicates", 0),
                     s.get("cpu_seconds")))
    print(format_rows(["stage", "in", "out", "rejected", "duplicates", "cpu_s"], rows).rsplit("\n", 1)[0])
    v = sc.get("verify", {})
    print(f"\ntraces: {v.get('traces', 0)} written, {v.get('correct', 0)} correct; "
          + ", ".join(f"{k}={n}" for k, n in sc.get("select", {}).items()))
    if by_reason:
        print("rejects: " + ", ".join(f"{s}/{r}={n}" for (s, r), n in sorted(by_reason.items(), key=lambda x: -x[1])))
    print("tables:  " + ", ".join(f"{k}={n}" for k, n in m["tables"].items()))
    a = m["accounting"]
    print(f"accounting: {a['rows_in']} in = {a['rows_written']} written + {a['rows_rejected']} rejected + "
          f"{a['rows_duplicate']} duplicates")
    print("time:    " + ", ".join(f"{k} {s:.1f} s" for k, s in sc["passes"].items()))
    print(f"\nwrote {info.path}  (teachers: {m['teachers']['caption']['model']}, {m['teachers']['reason']['model']})")
    print(f"look:   sightline audit --data {info.path.parent} summary")
