"""`sightline report --html`: one self-contained HTML datasheet per version, to look at the data.

    sightline report --html --data data/mini [--version N] [--out FILE] [--rows 100] [--max-mb 20]

Everything on the page comes from DuckDB queries over the version's shards through the same sandboxed
connection as ``sightline audit`` (``pipelines.audit.connect``) plus the manifests of the version and its
ancestors. The page embeds the data as JSON and renders it with plain JavaScript (``browse_page.py``):
no framework, no network (a Content-Security-Policy forbids any fetch), images inlined as small
thumbnails. Rows are sampled (``--rows`` per table, deterministic: ordered by a hash of the id), and the
file is kept under ``--max-mb``: when it would be larger the samples are halved until it fits.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

from curation.accounting import ROW_STAGES
from curation.errors import SightlineError
from curation.store.versions import Store
from pipelines.audit import QUERIES, connect, funnel
from curation.images.decode import check_image
from pipelines.browse_page import PAGE

SAMPLED_TABLES = ("sft", "traces", "rl", "val", "test")
THUMB_PX = 128
EXAMPLES_PER_REASON = 3
EXTREMES = 6  # hardest and easiest prompts shown


class Thumbnails:
    """Image bytes -> small data URIs, each image stored once in the page (``key`` -> URI)."""

    def __init__(self, px: int = THUMB_PX):
        self.px, self.uris, self.failed = px, {}, 0

    def add(self, images: Any) -> str | None:
        """The key of the first image of an HF ``Image`` list (or struct), None when there is none."""
        if isinstance(images, list):
            images = images[0] if images else None
        data = images.get("bytes") if isinstance(images, dict) else None
        if not data:
            return None
        key = hashlib.sha1(data).hexdigest()[:16]
        if key not in self.uris:
            self.uris[key] = self._encode(data)
        return key

    def _encode(self, data: bytes) -> str | None:
        from PIL import Image

        chk = check_image(data)
        if not chk.ok:
            self.failed += 1
            return None
        img = chk.image
        img.thumbnail((self.px, self.px), Image.Resampling.LANCZOS)  # never upscales
        best = None
        for fmt, kw in (("PNG", {"optimize": True}), ("JPEG", {"quality": 80})):
            buf = io.BytesIO()
            img.save(buf, format=fmt, **kw)
            if best is None or buf.tell() < len(best[1]):
                best = (fmt.lower(), buf.getvalue())
        return f"data:image/{best[0]};base64," + base64.b64encode(best[1]).decode()


def _rows(con, sql: str, params: dict | None = None) -> list[dict]:
    cur = con.execute(sql, params) if params else con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _text_of(messages: Any, role: str) -> str:
    """The text parts of the first message with ``role`` (chat ``messages`` / rl ``prompt`` columns)."""
    for m in messages or []:
        if m.get("role") == role:
            return "\n".join(p.get("text") or "" for p in m.get("content") or [] if p.get("type") == "text")
    return ""


# ---------------------------------------------------------------------------- sections


def funnel_section(con, manifest: dict) -> dict:
    counts = manifest.get("stage_counts") or {}
    stages = [{"stage": s, **{k: counts[s].get(k) for k in ("in", "out", "rejected", "duplicates")}}
              for s in ROW_STAGES if isinstance(counts.get(s), dict)]
    extra = {k: v for k, v in counts.items() if k not in ROW_STAGES and isinstance(v, dict)}
    return {"stages": stages, "other": extra, "accounting": manifest.get("accounting") or {},
            "tables": manifest.get("tables") or {}, "left_after": funnel(con)}


def rejects_section(con, thumbs: Thumbnails) -> list[dict]:
    reasons = _rows(con, QUERIES["rejects"][1])
    examples = _rows(con, f"""
        SELECT r.stage, r.reason, r.id, r.source, r.source_id, r.detail, r.question,
               e.images AS own_images,
               k.id AS kept_id, k.question AS kept_question, k.answer AS kept_answer, k.images AS kept_images
        FROM (SELECT *, row_number() OVER (PARTITION BY stage, reason ORDER BY md5(id || source_id)) AS rn
              FROM rejects) r
        LEFT JOIN examples e ON e.id = r.id AND r.stage <> 'dedup'
        LEFT JOIN examples k ON r.stage = 'dedup' AND k.id = regexp_extract(r.detail, '^kept (\\S+)', 1)
        WHERE r.rn <= {EXAMPLES_PER_REASON} ORDER BY r.stage, r.reason, r.rn""")
    by_key: dict[tuple, list] = {}
    for x in examples:
        kept = None
        if x["kept_id"]:
            kept = {"id": x["kept_id"], "question": x["kept_question"], "answer": x["kept_answer"],
                    "image": thumbs.add(x["kept_images"])}
        by_key.setdefault((x["stage"], x["reason"]), []).append(
            {"id": x["id"], "source": x["source"], "source_id": x["source_id"], "detail": x["detail"],
             "question": x["question"], "image": thumbs.add(x["own_images"]), "kept": kept})
    return [{**r, "examples": by_key.get((r["stage"], r["reason"]), [])} for r in reasons]


def _sample(table: str, n: int, key: str = "id") -> str:
    return f"(SELECT * FROM {table} ORDER BY md5({key}) LIMIT {int(n)})"


def samples_section(con, n: int, thumbs: Thumbnails) -> dict:
    out: dict[str, dict] = {}
    totals = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SAMPLED_TABLES}
    sft = _rows(con, f"""
        SELECT s.id, s.source, s.task, s.teacher, s.messages, s.images, e.level, e.answer AS gold,
               t.caption, t.correct, t.verdict_reason, t.extracted
        FROM {_sample('sft', n, 'trace_id')} s
        LEFT JOIN traces t ON t.trace_id = s.trace_id LEFT JOIN examples e ON e.id = s.id ORDER BY md5(s.trace_id)""")
    out["sft"] = {"total": totals["sft"], "rows": [
        {"id": r["id"], "task": r["task"], "level": r["level"], "source": r["source"],
         "verdict": None if r["correct"] is None else ("correct" if r["correct"] else "wrong"),
         "image": thumbs.add(r["images"]), "question": _text_of(r["messages"], "user"),
         "caption": r["caption"], "trace": _text_of(r["messages"], "assistant"), "gold": r["gold"],
         "extracted": r["extracted"], "teacher": r["teacher"], "why": r["verdict_reason"]} for r in sft]}
    traces = _rows(con, f"""
        SELECT t.id, t.source, t.task, t.teacher, t.question, t.caption, t.trace, t.answer AS gold, t.extracted,
               t.correct, t.verdict_reason, t.status, t.length_chars, e.level, e.images
        FROM {_sample('traces', n, 'trace_id')} t LEFT JOIN examples e ON e.id = t.id ORDER BY md5(t.trace_id)""")
    out["traces"] = {"total": totals["traces"], "rows": [
        {"id": r["id"], "task": r["task"], "level": r["level"], "source": r["source"],
         "verdict": "correct" if r["correct"] else "wrong", "status": r["status"], "image": thumbs.add(r["images"]),
         "question": r["question"], "caption": r["caption"], "trace": r["trace"], "gold": r["gold"],
         "extracted": r["extracted"], "teacher": r["teacher"], "why": r["verdict_reason"],
         "length": r["length_chars"]} for r in traces]}
    for table in ("rl", "val", "test"):
        rows = _rows(con, f"SELECT * FROM {_sample(table, n)} ORDER BY md5(id)")
        out[table] = {"total": totals[table], "rows": [
            {"id": r["id"], "task": r["task"], "level": r["level"], "source": r["source"],
             "answer_type": r["answer_type"], "image": thumbs.add(r["images"]),
             "question": _text_of(r["prompt"], "user"), "gold": r["solution"], "choices": r["choices"],
             "pass_rate": r["pass_rate"], "n_rollouts": r["n_rollouts"]} for r in rows]}
    return out


def difficulty_section(con, thumbs: Thumbnails) -> dict:
    hist = _rows(con, QUERIES["difficulty"][1])
    scored = con.execute("SELECT count(*) FROM rl WHERE pass_rate IS NOT NULL").fetchone()[0]

    def extreme(order: str) -> list[dict]:
        rows = _rows(con, f"""SELECT id, task, prompt, solution, pass_rate, n_rollouts, n_correct, images FROM rl
                              WHERE pass_rate IS NOT NULL ORDER BY pass_rate {order}, md5(id) LIMIT {EXTREMES}""")
        return [{"id": r["id"], "task": r["task"], "question": _text_of(r["prompt"], "user"), "gold": r["solution"],
                 "pass_rate": r["pass_rate"], "n_correct": r["n_correct"], "n_rollouts": r["n_rollouts"],
                 "image": thumbs.add(r["images"])} for r in rows]

    lengths = _rows(con, QUERIES["lengths"][1])
    width = max(1, (con.execute("SELECT max(length_chars) FROM traces").fetchone()[0] or 0) // 20 + 1)
    bins = _rows(con, f"""SELECT CASE WHEN correct THEN 'correct' ELSE 'wrong' END AS verdict,
                                 (length_chars // {width}) * {width} AS lo, count(*) AS n
                          FROM traces WHERE length_chars IS NOT NULL GROUP BY ALL ORDER BY ALL""")
    return {"scored": scored, "histogram": hist, "hardest": extreme("ASC") if scored else [],
            "easiest": extreme("DESC") if scored else [], "lengths": lengths, "length_bins": bins,
            "bin_width": width}


def lineage_section(store: Store, version: int) -> list[dict]:
    """The version and its ancestors, oldest first, each with the stage that made it; children too."""
    def entry(v: int, m: dict, relation: str) -> dict:
        cfg = m.get("config") or {}
        stage = cfg.get("stage") or "curate"
        label = stage if cfg.get("round") is None else f"{stage} (round {cfg['round']})"  # the loop's policy rounds
        parent_tables = {}
        if m.get("parent") is not None and m["parent"] in store.versions():
            parent_tables = store.manifest(m["parent"]).get("tables") or {}
        changed = {t: [parent_tables.get(t), n] for t, n in (m.get("tables") or {}).items()
                   if parent_tables and parent_tables.get(t) != n}
        teachers = {role: (t.get("model") if isinstance(t, dict) else t) for role, t in (m.get("teachers") or {}).items()}
        return {"version": v, "relation": relation, "parent": m.get("parent"), "created_at": m.get("created_at"),
                "git_commit": m.get("git_commit"), "stage": label, "teachers": teachers,
                "stage_counts": (m.get("stage_counts") or {}).get(stage) if stage != "curate" else None,
                "tables": m.get("tables"), "changed": changed}

    chain, seen, v = [], set(), version
    while v is not None and v not in seen and v in store.versions():
        seen.add(v)
        m = store.manifest(v)
        chain.append(entry(v, m, "this version" if v == version else "ancestor"))
        v = m.get("parent")
    chain.reverse()
    children = [entry(c, store.manifest(c), "child") for c in store.versions()
                if c != version and store.manifest(c).get("parent") == version]
    return chain + children


# ---------------------------------------------------------------------------- the page


def page_data(store: Store, version: int, rows: int) -> dict:
    manifest = store.manifest(version)
    thumbs = Thumbnails()
    con = connect(store, version)
    try:
        data = {
            "meta": {"name": store.name, "root": str(store.root), "version": version,
                     "created_at": manifest.get("created_at"), "git_commit": manifest.get("git_commit"),
                     "schema_version": manifest.get("schema_version"), "parent": manifest.get("parent"),
                     "rows_per_table": rows, "built_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
            "funnel": funnel_section(con, manifest),
            "rejects": rejects_section(con, thumbs),
            "samples": samples_section(con, rows, thumbs),
            "difficulty": difficulty_section(con, thumbs),
            "lineage": lineage_section(store, version),
            "teachers": manifest.get("teachers") or {},
            "config": manifest.get("config") or {},
        }
    finally:
        con.close()
    data["images"] = {k: v for k, v in thumbs.uris.items() if v}
    data["meta"]["undecodable_images"] = thumbs.failed
    return data


def render(data: dict) -> str:
    # `</` inside a script element would end it early: JSON escapes it, so dataset text cannot break out
    blob = json.dumps(data, default=str, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")
    title = f"{data['meta']['name']} v{data['meta']['version']:04d}"
    return PAGE.replace("__TITLE__", title).replace("__DATA__", blob)


def build(store: Store, version: int | str, out: Path, *, rows: int = 100, max_mb: float = 20.0) -> dict:
    """Write the page, halving the sampled rows until it fits in ``max_mb``; returns what it did."""
    if rows < 1:
        raise SightlineError("--rows must be at least 1")
    if max_mb <= 0:
        raise SightlineError("--max-mb must be positive")
    t0, cpu0 = time.perf_counter(), time.process_time()
    v = store.resolve(version)
    while True:
        data = page_data(store, v, rows)
        html = render(data).encode()
        if len(html) <= max_mb * 1e6:
            break
        if rows == 1:
            raise SightlineError(f"the page is {len(html) / 1e6:.1f} MB with one row per table, over --max-mb {max_mb}")
        rows = max(1, rows // 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(html)
    tmp.replace(out)
    return {"path": out, "bytes": len(html), "rows_per_table": rows, "images": len(data["images"]),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0, "version": v}
