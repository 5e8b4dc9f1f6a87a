"""Real sources through the curate pipeline: how much of each shipped shape comes out trainable.

    nice -n 10 .venv/bin/python benchmarks/real_sources.py [--rows 300] [--seed 0] [--keep DIR]

Builds, with code, one source in each of the seven shapes of issue 9 (JSON lines with relative
image paths; a JSON array; a JSON object keyed by id with ``image_root``; a Parquet written by
``datasets`` with an ``Image`` feature; a verl / EasyR1 Parquet; a LLaVA-style JSON; an HF
``save_to_disk`` folder), each with multi-question images, byte-identical repeats and JPEG
re-encoded copies mixed in, reads each as shipped with ``pipelines.curate.run`` (teachers off:
``caption.backend: none``, ``distill.backend: none``) and prints one table row per shape:

- *rows*: rows written to the source; *rl+val+test*: rows of the source in those tables;
- *distinct pairs kept*: the share of the source's distinct (image bytes, question) pairs with a
  row in rl/val/test, where a planned JPEG copy counts as its original's pair (the pipeline may
  keep either one); computed from what was written, never from the pipeline's own counts;
- *duplicates dropped*: ``exact_duplicate`` / ``near_duplicate`` rejects of the source, against
  the repeats and copies planned (``exp``). The totals must match; the split may not: the kind is
  judged against the row kept (the smallest id), so when a JPEG copy is kept, a byte-identical
  repeat of its original is labelled ``near``;
- *seconds*: wall time of ``run`` (both Beam passes, in-process).

The writers here are also the fixtures of ``tests/pipelines/test_real_sources.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("jsonl", "json_array", "json_keyed", "parquet", "verl", "llava", "hf_disk")
PALETTE = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 90, 220), "purple": (140, 60, 190)}
COLOURS = tuple(PALETTE)
OPTIONS_TEXT = " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(COLOURS))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg_copy(data: bytes, quality: int = 70) -> bytes:
    """The same picture re-encoded as JPEG: other bytes, the same image to a reader."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def diagram(seed: int, size: int = 128) -> tuple[bytes, dict]:
    """A small diagram (PNG) and its scene: 2-6 circles / squares at random places, a number in a corner.
    Positions are continuous, so two seeds practically never draw the same picture."""
    rng = random.Random(seed)
    shapes = [{"kind": rng.choice(("circle", "square")), "colour": rng.choice(COLOURS),
               "x": rng.uniform(0.15, 0.85) * size, "y": rng.uniform(0.3, 0.85) * size} for _ in range(rng.randint(2, 6))]
    number = rng.randrange(100)
    img = Image.new("RGB", (size, size), (250, 250, 245))
    draw, r = ImageDraw.Draw(img), size / 10
    for s in shapes:
        box = (s["x"] - r, s["y"] - r, s["x"] + r, s["y"] + r)
        (draw.ellipse if s["kind"] == "circle" else draw.rectangle)(box, fill=PALETTE[s["colour"]], outline="black")
    draw.text((size * 0.05, size * 0.02), str(number), fill="black", font=ImageFont.load_default(size=size // 4))
    return png_bytes(img), {"shapes": shapes, "number": number}


def questions_of(scene: dict, inline_options: bool = True) -> list[tuple[str, str]]:
    """(question, gold) pairs the scene answers; the colour question is multiple choice."""
    shapes = scene["shapes"]
    colour_q = "What colour is the first shape drawn?" + (f" {OPTIONS_TEXT}" if inline_options else "")
    return [("How many circles are there?", str(sum(s["kind"] == "circle" for s in shapes))),
            ("What number is written in the top left corner?", str(scene["number"])),
            ("Is there a square in the picture?", "yes" if any(s["kind"] == "square" for s in shapes) else "no"),
            (colour_q, "ABCD"[COLOURS.index(shapes[0]["colour"])])]


@dataclass(frozen=True)
class Problem:
    """One row as written: its images (bytes), question and gold as the file holds them."""
    images: tuple[bytes, ...]
    question: str
    answer: str
    copy_of: tuple[bytes, ...] | None = None  # a planned near-copy: the images of the row it copies

    @property
    def pair(self) -> tuple[tuple[str, ...], str]:
        """The distinct problem this row is: (image digests, question); a near-copy is its original's."""
        return tuple(map(sha, self.copy_of or self.images)), self.question


@dataclass
class Source:
    shape: str
    spec: dict
    problems: dict[str, Problem] = field(default_factory=dict)  # by the source_id the reader gives

    @property
    def pairs(self) -> set:
        return {p.pair for p in self.problems.values()}

    def planned_drops(self) -> tuple[int, int]:
        """(exact repeats, near copies) written: rows beyond the first of each distinct pair."""
        seen, exact, near = set(), 0, 0
        for p in self.problems.values():
            key = (tuple(map(sha, p.images)), p.question)
            if p.copy_of is not None:
                near += 1
            elif key in seen:
                exact += 1
            seen.add(key)
        return exact, near


def plan(n: int, seed: int, *, multi: float = 0.3, repeat: float = 0.05, near: float = 0.0,
         inline_options: bool = True, second_image_every: int = 0, size: int = 128) -> list[Problem]:
    """``n`` rows: diagrams with 1 question, or 2-3 (share ``multi``), byte-identical repeats of the
    previous row (share ``repeat``) and JPEG copies of it with the same question (share ``near``)."""
    rng = random.Random(seed)
    rows: list[Problem] = []
    k = 0
    while len(rows) < n:
        data, scene = diagram(seed * 100_003 + k, size)
        images = (data,)
        if second_image_every and k % second_image_every == 1:  # a multi-image row: both images kept
            images += (diagram(seed * 100_003 + k + 50_000, size)[0],)
        k += 1
        qs = questions_of(scene, inline_options)
        for question, answer in rng.sample(qs, rng.choice((2, 3)) if rng.random() < multi else 1):
            rows.append(Problem(images, question, answer))
            if rng.random() < repeat:
                rows.append(rows[-1])
            if rng.random() < near:
                rows.append(Problem((jpeg_copy(images[0]), *images[1:]), question, answer, copy_of=images))
    return rows[:n]


# ---------------------------------------------------------------------------- writers, one per shape


def _image_files(folder: Path, rows: list[Problem], sub: str) -> list[str]:
    """Each distinct image written once under ``folder/sub``; the relative path of each row's first image."""
    (folder / sub).mkdir(parents=True, exist_ok=True)
    names: dict[bytes, str] = {}
    for p in rows:
        data = p.images[0]
        if data not in names:
            ext = "jpg" if data[:3] == b"\xff\xd8\xff" else "png"
            names[data] = f"{sub}/{len(names):05d}.{ext}"
            (folder / names[data]).write_bytes(data)
    return [names[p.images[0]] for p in rows]


def write_jsonl(folder: Path, rows: list[Problem], name: str) -> Source:
    paths = _image_files(folder, rows, "images")
    ids = [f"{name}-{i:05d}" for i in range(len(rows))]
    lines = [json.dumps({"id": i, "question": p.question, "answer": p.answer, "image": path})
             for i, p, path in zip(ids, rows, paths)]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    spec = {"type": "jsonl", "name": name, "path": str(folder / "train.jsonl")}
    return Source("jsonl", spec, dict(zip(ids, rows)))


def write_json_array(folder: Path, rows: list[Problem], name: str) -> Source:
    paths = _image_files(folder, rows, "img")
    pids = [f"p{i}" for i in range(len(rows))]
    doc = [{"pid": pid, "query": p.question, "label": int(p.answer) if p.answer.isdigit() else p.answer,
            "image": path} for pid, p, path in zip(pids, rows, paths)]
    (folder / "test.json").write_text(json.dumps(doc, indent=1))
    spec = {"type": "json", "name": name, "path": str(folder / "test.json"),
            "columns": {"question": "query", "answer": "label", "id": "pid"}}
    return Source("json_array", spec, dict(zip(pids, rows)))


def write_json_keyed(folder: Path, rows: list[Problem], name: str) -> Source:
    paths = _image_files(folder, rows, "images")
    keys = [str(1000 + i) for i in range(len(rows))]
    doc = {k: {"question": p.question, "answer": p.answer, "image": Path(path).name}
           for k, p, path in zip(keys, rows, paths)}
    (folder / "meta").mkdir(exist_ok=True)
    (folder / "meta" / "problems.json").write_text(json.dumps(doc))
    spec = {"type": "json", "name": name, "path": str(folder / "meta" / "problems.json"),
            "image_root": str(folder / "images")}
    return Source("json_keyed", spec, dict(zip(keys, rows)))


def write_parquet(folder: Path, rows: list[Problem], name: str) -> Source:
    """``datasets`` with an ``Image`` feature; options in their own column, None for free-form rows."""
    import datasets

    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "options": datasets.List(datasets.Value("string")), "image": datasets.Image()})
    table = {"question": [], "answer": [], "options": [], "image": []}
    for i, p in enumerate(rows):
        stem = p.question.replace(f" {OPTIONS_TEXT}", "")
        table["question"].append(stem)
        table["answer"].append(p.answer)
        table["options"].append(list(COLOURS) if stem != p.question else None)
        table["image"].append({"bytes": p.images[0], "path": f"{i}.png"})
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(table, features=features).to_parquet(str(folder / "train.parquet"))
    spec = {"type": "parquet", "name": name, "path": str(folder / "train.parquet"), "columns": {"choices": "options"}}
    return Source("parquet", spec, {str(i): p for i, p in enumerate(rows)})


def write_verl(folder: Path, rows: list[Problem], name: str) -> Source:
    """verl / EasyR1: a chat ``prompt`` with ``<image>`` per image, ``images`` as {bytes, path} lists."""
    import datasets

    features = datasets.Features({
        "data_source": datasets.Value("string"),
        "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
        "reward_model": {"style": datasets.Value("string"), "ground_truth": datasets.Value("string")},
        "extra_info": {"index": datasets.Value("int64"), "question": datasets.Value("string")}})
    records = []
    for i, p in enumerate(rows):
        text = "<image>" * len(p.images) + p.question
        records.append({"data_source": name, "prompt": [
            {"role": "system", "content": "Think step by step, then give the answer."},
            {"role": "user", "content": text}],
            "images": [{"bytes": b, "path": f"{i}_{j}.png"} for j, b in enumerate(p.images)],
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"index": 10 * i, "question": text}})
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(records, features=features).to_parquet(str(folder / "train.parquet"))
    spec = {"type": "parquet", "name": name, "path": str(folder / "train.parquet"),
            "columns": {"question": "prompt[-1].content", "answer": "reward_model.ground_truth",
                        "image": "images", "task": "data_source", "id": "extra_info.index"}}
    return Source("verl", spec, {str(10 * i): p for i, p in enumerate(rows)})


def write_llava(folder: Path, rows: list[Problem], name: str) -> Source:
    images = folder / "images"
    paths = _image_files(images, rows, "coco")
    ids = [f"{i:09d}" for i in range(len(rows))]
    doc = [{"id": i, "image": path, "conversations": [{"from": "human", "value": f"<image>\n{p.question}"},
                                                       {"from": "gpt", "value": p.answer}]}
           for i, p, path in zip(ids, rows, paths)]
    (folder / "llava_mix.json").write_text(json.dumps(doc))
    spec = {"type": "json", "name": name, "path": str(folder / "llava_mix.json"), "image_root": str(images),
            "columns": {"question": "conversations[0].value", "answer": "conversations[1].value"}}
    return Source("llava", spec, dict(zip(ids, rows)))


def write_hf_disk(folder: Path, rows: list[Problem], name: str) -> Source:
    import datasets

    features = datasets.Features({"problem": datasets.Value("string"), "solution": datasets.Value("string"),
                                  "images": datasets.List(datasets.Image())})
    ds = datasets.Dataset.from_dict({"problem": [p.question for p in rows], "solution": [p.answer for p in rows],
                                     "images": [[{"bytes": b, "path": None} for b in p.images] for p in rows]},
                                    features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(folder / "geo"))
    spec = {"type": "hf_disk", "name": name, "path": str(folder / "geo"), "split": "train",
            "columns": {"question": "problem", "answer": "solution", "image": "images"}}
    return Source("hf_disk", spec, {str(i): p for i, p in enumerate(rows)})


WRITERS = {"jsonl": write_jsonl, "json_array": write_json_array, "json_keyed": write_json_keyed,
           "parquet": write_parquet, "verl": write_verl, "llava": write_llava, "hf_disk": write_hf_disk}


def write_source(shape: str, folder: Path, n: int, seed: int, **plan_kw) -> Source:
    """A source of ``n`` rows in ``shape`` under ``folder``, named after the shape."""
    plan_kw.setdefault("second_image_every", 5 if shape in ("verl", "hf_disk") else 0)
    folder.mkdir(parents=True, exist_ok=True)
    return WRITERS[shape](folder, plan(n, seed, **plan_kw), shape)


# ---------------------------------------------------------------------------- running and reading back


def curate(sources: list[dict], output_root: Path, *sets: str, teachers: bool = False):
    """``pipelines.curate.run`` on file sources only, as ``sightline data --set ...`` would build it."""
    from curation.recipe import load_data_recipe
    from pipelines.curate import run

    overrides = [f"output_root={output_root}", "name=real", "synthetic.n=0", "val_fraction=0.1",
                 f"sources={json.dumps(sources)}"]
    if not teachers:
        overrides += ["caption.backend=none", "distill.backend=none"]
    with contextlib.redirect_stdout(sys.stderr):  # the run's summary; stdout carries the table
        return run(load_data_recipe(None, overrides + list(sets)))


def read_back(version_dir: Path, name: str) -> dict:
    """What the version holds of source ``name``: rows per table, rejects, and each example's split."""
    import pyarrow.parquet as pq

    def rows(table: str, columns: list[str]) -> list[dict]:
        files = sorted((version_dir / table).glob("*.parquet"))
        return [r for f in files for r in pq.read_table(f, columns=columns).to_pylist() if r["source"] == name]

    held = {t: rows(t, ["source", "source_id", "images"]) for t in ("rl", "val", "test")}
    return {"held": held, "examples": rows("examples", ["source", "source_id", "id", "split", "image_key"]),
            "rejects": rows("rejects", ["source", "source_id", "stage", "reason", "detail"])}


def outcome(src: Source, version_dir: Path) -> dict:
    """Coverage of the written pairs and the drops, from what was written and the rows found."""
    got = read_back(version_dir, src.spec["name"])
    covered, wrong_bytes = set(), []
    for table, rows in got["held"].items():
        for r in rows:
            p = src.problems[r["source_id"]]
            if tuple(im["bytes"] for im in r["images"]) != p.images:
                wrong_bytes.append((table, r["source_id"]))
            covered.add(p.pair)
    reasons: dict[str, int] = {}
    for r in got["rejects"]:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    splits_of_image: dict[str, set] = {}
    for r in got["examples"]:
        splits_of_image.setdefault(r["image_key"], set()).add(r["split"])
    return {"rows": len(src.problems), "held": sum(map(len, got["held"].values())),
            "kept_share": len(covered & src.pairs) / len(src.pairs), "wrong_bytes": wrong_bytes,
            "reasons": reasons, "images_on_two_sides": sum(len(s) > 1 for s in splits_of_image.values()),
            "examples": got["examples"], "rejects": got["rejects"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=300, help="rows per source (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="build under this folder and keep it (default: a temp folder)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    logging.getLogger().addFilter(lambda r: "apitools not found" not in r.getMessage())  # as the CLI does
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="real_sources_"))
    print("| shape | rows | rl+val+test | distinct pairs kept | duplicates dropped exact/near (exp) | seconds |")
    print("|---|---:|---:|---:|---|---:|")
    for k, shape in enumerate(SHAPES):
        src = write_source(shape, base / "src" / shape, a.rows, a.seed * 10 + k + 1, near=0.04)
        t = time.perf_counter()
        info = curate([src.spec], base / "out" / shape)
        seconds = time.perf_counter() - t
        o = outcome(src, Path(info.path))
        exact, near = o["reasons"].get("exact_duplicate", 0), o["reasons"].get("near_duplicate", 0)
        other = {r: n for r, n in o["reasons"].items() if not r.endswith("_duplicate")}
        flags = (f" wrong bytes {len(o['wrong_bytes'])}" if o["wrong_bytes"] else "") + \
                (f" other rejects {other}" if other else "") + \
                (f" images on two sides {o['images_on_two_sides']}" if o["images_on_two_sides"] else "")
        exp = src.planned_drops()
        print(f"| {shape} | {o['rows']} | {o['held']} | {100 * o['kept_share']:.1f}% | {exact}/{near} "
              f"({exp[0]}/{exp[1]}){flags} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
