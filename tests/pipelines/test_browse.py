"""The HTML datasheet (`sightline report --html`): its data from the shards, its size cap, and the page in a
real headless Chromium (skipped, saying why, only where no Chromium can be found)."""
import json
import re
import subprocess
import sys

import pytest

from curation.errors import SightlineError
from curation.store.versions import Store
from pipelines.browse import build, page_data
from pipelines.browser import Browser, find_chromium

HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


@pytest.fixture
def store(tmp_path, hand_built_tables):
    t = hand_built_tables
    t["examples"][1]["question"] = HOSTILE  # dataset text is untrusted: it must reach the page as text
    t["rejects"].append({"id": "e1", "source": "hand", "source_id": "9", "stage": "dedup",
                         "reason": "exact_duplicate", "detail": "kept e1", "question": "How many? 1"})
    s = Store(tmp_path / "mini")
    counts = {"ingest": {"in": 7, "out": 7, "rejected": 0}, "validate": {"in": 7, "out": 5, "rejected": 2},
              "dedup": {"in": 5, "out": 4, "rejected": 0, "duplicates": 1}}
    books = {"rows_in": 7, "rows_written": 3, "rows_rejected": 3, "rows_duplicate": 1, "balanced": True}
    s.write_version(t, config={"name": "mini"}, teachers={"distill": {"backend": "program", "model": "program:x"}},
                    stage_counts=counts, accounting=books)
    rl = [dict(r, pass_rate=0.75, n_rollouts=8, n_correct=6) for r in t["rl"]]
    s.write_version({**t, "rl": rl}, parent=1, config={"stage": "difficulty", "round": 1},
                    stage_counts={"difficulty": {"in": 2, "out": 2, "rejected": 0}})
    return s


def embedded(html: str) -> dict:
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.DOTALL).group(1)
    return json.loads(blob)


def test_page_data_from_the_shards(store):
    d = page_data(store, 1, rows=10)
    assert [(r["stage"], r["reason"], r["rows"]) for r in d["rejects"]] == [
        ("validate", "not_an_image", 2), ("dedup", "exact_duplicate", 1), ("verify", "no_correct_trace", 1)]
    dup = next(r for r in d["rejects"] if r["stage"] == "dedup")["examples"][0]
    assert dup["kept"]["id"] == "e1" and dup["kept"]["image"] in d["images"]  # the row it duplicates, with its image
    assert {t: len(s["rows"]) for t, s in d["samples"].items()} == {"sft": 1, "traces": 4, "rl": 2, "val": 0, "test": 1}
    sft = d["samples"]["sft"]["rows"][0]
    assert (sft["question"], sft["caption"], sft["verdict"]) == ("How many? 0", "c", "correct")
    assert sft["trace"] == "<think>x</think><answer>1</answer>"
    verdicts = sorted(r["verdict"] for r in d["samples"]["traces"]["rows"])
    assert verdicts == ["correct", "wrong", "wrong", "wrong"]
    assert d["difficulty"]["scored"] == 1 and d["difficulty"]["hardest"][0]["pass_rate"] == 0.25
    assert {r["verdict"]: r["traces"] for r in d["difficulty"]["lengths"]} == {"correct": 1, "wrong": 3}
    assert [(v["version"], v["relation"], v["stage"]) for v in d["lineage"]] == [
        (1, "this version", "curate"), (2, "child", "difficulty (round 1)")]
    assert d["lineage"][1]["stage_counts"] == {"in": 2, "out": 2, "rejected": 0}
    assert d["teachers"]["distill"]["model"] == "program:x"
    # three distinct images, each stored once however many rows show it
    assert len(d["images"]) == 3 and all(u.startswith("data:image/") for u in d["images"].values())


def test_child_version_lineage_and_scores(store):
    d = page_data(store, 2, rows=10)
    assert [(v["version"], v["relation"]) for v in d["lineage"]] == [(1, "ancestor"), (2, "this version")]
    assert {r["pass_rate"] for r in d["samples"]["rl"]["rows"]} == {0.75}
    assert d["meta"]["parent"] == 1


def test_size_cap_halves_samples_then_refuses(store, tmp_path):
    out = tmp_path / "page.html"
    r = build(store, "latest", out, rows=8, max_mb=20)
    assert r["rows_per_table"] == 8 and out.stat().st_size == r["bytes"] < 20e6
    full = r["bytes"]
    r = build(store, "latest", out, rows=8, max_mb=(full - 1) / 1e6)  # 1 byte too small: fewer rows
    assert r["rows_per_table"] < 8 and r["bytes"] < full
    with pytest.raises(SightlineError, match="with one row per table, over --max-mb"):
        build(store, "latest", out, rows=8, max_mb=0.001)


def test_hostile_text_cannot_end_the_script(store, tmp_path):
    out = tmp_path / "page.html"
    build(store, 1, out, rows=10)
    html = out.read_text()
    assert html.count("</script>") == 2  # the JSON block's and the program's, nothing from the data
    dedup = next(r for r in embedded(html)["rejects"] if r["stage"] == "dedup")
    assert dedup["examples"][0]["kept"]["question"] == HOSTILE  # the kept row e1 carries it
    assert HOSTILE not in html and "<\\/script>" in html


def test_cli_prints_path_size_and_time(store, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", "--html", "--data", str(store.root),
                        "--version", "1"], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.match(r"wrote .*/reports/v0001/datasheet\.html: \d+\.\d\d MB \(cap 20 MB\), 100 sampled rows per table, "
                    r"3 thumbnails, \d+\.\d s \(\d+\.\d s CPU\)$", r.stdout.strip()), r.stdout
    assert (store.root / "reports" / "v0001" / "datasheet.html").is_file()


# ---- in a real browser
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; .ci/run installs it)")

SECTIONS = ["funnel", "rejects", "samples", "difficulty", "lineage", "teachers"]


@needs_chromium
def test_page_in_headless_chromium(store, tmp_path):
    out = tmp_path / "page.html"
    build(store, 1, out, rows=10)
    with Browser(CHROMIUM) as b:
        b.open(out)
        assert b.evaluate("document.body.dataset.rendered") == "1"
        assert b.console_errors() == []
        # every section is there and filled (more than its heading)
        filled = b.evaluate("Object.fromEntries([...document.querySelectorAll('section')]"
                            ".map(s => [s.id, s.children.length]))")
        assert list(filled) == SECTIONS and all(n > 1 for n in filled.values()), filled
        assert "balanced" in b.evaluate("document.getElementById('accounting').textContent")
        # an image decodes
        sizes = b.evaluate("[...document.querySelectorAll('img.thumb')].map(i => [i.complete, i.naturalWidth])")
        assert sizes and all(ok and w == 32 for ok, w in sizes), sizes
        # the hostile question is shown as text: no script ran, no element was made from it
        assert b.evaluate("window.pwned === undefined") is True
        assert b.evaluate(f"[...document.querySelectorAll('.text')].some(e => e.textContent === {json.dumps(HOSTILE)})")
        # a filter changes the visible rows: traces, verdict = wrong -> 3 of 4
        b.evaluate("document.querySelector('button[data-table=traces]').click()")
        visible = ("[...document.querySelectorAll('#samples-traces tbody tr')].filter(r => !r.hidden"
                   " && r.offsetParent !== null).length")
        assert b.evaluate(visible) == 4
        b.evaluate("(() => { const s = document.querySelector('#samples-traces select[data-filter=verdict]');"
                   " s.value = 'wrong'; s.dispatchEvent(new Event('change')); })()")
        assert b.evaluate(visible) == 3
        assert b.evaluate("document.querySelector('#samples-traces .count').textContent").startswith("showing 3 of 4")
        shot = b.screenshot(tmp_path / "shot.png", "#samples", 600)
        assert shot.stat().st_size > 1000
        assert b.console_errors() == []
