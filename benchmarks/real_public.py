"""Public image-QA sets through the curate pipeline, teachers off: what comes out, and is every
rl / val / test row learnable?

    nice -n 10 .venv/bin/python benchmarks/real_public.py --root /path/to/realdata [--out DIR]

``--root`` holds checkouts of three public sets this project had not used before (fetched by hand,
never committed):

- ``solidgeo/data``: SolidGeo (github.com/HarryYancy/SolidGeo): a JSON object keyed by id, image
  lists with Windows paths (``images\\1.jpg``), letter and number golds, its own ``answer_type``
  column (``single-step`` / ``multi-step`` / ``choice``: unknown values, inferred from the gold);
  791 of its rows are multi-image.
- ``owleval/mPLUG-Owl/OwlEval``: OwlEval (github.com/X-PLUG/mPLUG-Owl): JSON lines of chat-style
  questions; the answers used are mPLUG-Owl's own (``answer/mPLUG_Owl_7b_answer.jsonl``), sentences.
- ``mmbench/samples``: the MMBench / CCBench sample images and items of github.com/open-compass/MMBench,
  written here into VLMEvalKit's TSV layout (``index, question, hint, A..D, answer, category, image``
  as base64) and read with ``type: auto`` and no ``columns``.

Per set it prints: rows read, rejected at ingest / validate (top reasons), duplicates, examples,
rl + val + test, the exclusions of the learnable-row rule by reason, the share of rl/val/test rows
obeying the rule (checked again here, row by row) and the share of distinct (image bytes, question)
pairs with a row in ``examples``.
"""
from __future__ import annotations

import argparse
import base64
import collections
import csv
import hashlib
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def mmbench_tsv(samples: Path, out: Path) -> Path:
    """The README's sample items (image, question, options, answer) as a VLMEvalKit TSV."""
    text = (samples / "README.md").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', text)
    items = re.findall(r"<p>QUESTION\.(.*?)</p>", text, flags=re.S)
    rows = []
    for index, (image, item) in enumerate(zip(images, items)):
        parts = [p.strip() for p in item.split("<br>")]
        question = parts[0]
        options = {m.group(1): m.group(2).strip() for p in parts if (m := re.match(r"([A-E])\.\s*(.*)", p))}
        answer = next((p.split("ANSWER.", 1)[1].strip() for p in parts if p.startswith("ANSWER.")), "")
        data = (samples / image).read_bytes()
        rows.append([index, question, "", *(options.get(x, "") for x in "ABCD"), answer,
                     image.split("/")[0], base64.b64encode(data).decode()])
    path = out / "MMBench_samples.tsv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"])
        w.writerows(rows)
    return path


def owleval_jsonl(folder: Path, out: Path) -> Path:
    """OwlEval's questions with mPLUG-Owl's answers (its answer file holds both)."""
    src = folder / "answer" / "mPLUG_Owl_7b_answer.jsonl"
    path = out / "owleval.jsonl"
    path.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def sources(root: Path, work: Path) -> dict[str, dict]:
    return {
        "solidgeo": {"name": "solidgeo", "path": str(root / "solidgeo" / "data" / "SolidGeo.json")},
        "owleval": {"name": "owleval", "path": str(owleval_jsonl(root / "owleval" / "mPLUG-Owl" / "OwlEval", work)),
                    "image_root": str(root / "owleval" / "mPLUG-Owl" / "OwlEval" / "cases")},
        "mmbench_tsv": {"name": "mmbench_tsv", "path": str(mmbench_tsv(root / "mmbench" / "samples", work))},
    }


def measure(name: str, spec: dict, out: Path) -> dict:
    from curation.answers.learnable import exclusion
    from curation.recipe import load_data_recipe
    from curation.sources import read_source
    from curation.store.versions import Store
    from pipelines.curate import run
    from schemas import normalize_question

    pairs = set()
    for kind, row in read_source(spec):
        if kind == "example":
            pairs.add((tuple(hashlib.sha256(im["bytes"]).hexdigest() for im in row["images"]),
                       normalize_question(row["question"])))
    overrides = [f"name={name}", f"output_root={out}", "synthetic.n=0", "caption.backend=none",
                 "distill.backend=none", "val_fraction=0.1", f"sources={json.dumps([spec])}"]
    t = time.perf_counter()
    info = run(load_data_recipe(None, overrides))
    seconds = time.perf_counter() - t
    store, m = Store(info.path.parent), info.manifest
    examples = store.read_table("examples", columns=["images", "question"]).to_pylist()
    kept = {(tuple(hashlib.sha256(im["bytes"]).hexdigest() for im in e["images"]),
             normalize_question(e["question"])) for e in examples}
    held, bad = 0, collections.Counter()
    for table in ("rl", "val", "test"):
        for r in store.read_table(table, columns=["solution", "answer_type", "choices"]).to_pylist():
            held += 1
            found = exclusion({"answer": r["solution"], "answer_type": r["answer_type"], "choices": r["choices"]})
            if found:
                bad[found[0]] += 1
    types = collections.Counter(r["answer_type"] for t in ("rl", "val", "test")
                                for r in store.read_table(t, columns=["answer_type"]).to_pylist())
    by_reason = m.get("rejects_by_reason", {})
    return {"set": name, "rows": m["stage_counts"]["ingest"]["in"],
            "rejected": {k: v for k, v in by_reason.items() if not k.startswith("dedup/")},
            "duplicates": m["stage_counts"]["dedup"]["duplicates"], "examples": len(examples),
            "rl+val+test": held, "answer_types": dict(types),
            "kept_out": m["stage_counts"]["split"].get("kept_out_by_reason", {}),
            "learnable": f"{held - sum(bad.values())}/{held}",
            "pairs_kept": f"{len(kept & pairs)}/{len(pairs)} ({100 * len(kept & pairs) / max(1, len(pairs)):.1f}%)",
            "seconds": round(seconds, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="folder holding solidgeo/, owleval/, mmbench/")
    p.add_argument("--out", default=None, help="where versions are written (default: a temp folder)")
    p.add_argument("--only", default=None, help="one set: solidgeo | owleval | mmbench_tsv")
    a = p.parse_args()
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    out = Path(a.out or tempfile.mkdtemp(prefix="real_public_"))
    work = out / "_inputs"
    work.mkdir(parents=True, exist_ok=True)
    for name, spec in sources(Path(a.root), work).items():
        if a.only and name != a.only:
            continue
        print(json.dumps(measure(name, spec, out)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
