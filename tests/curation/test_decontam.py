import io
import json
import pickle
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw, ImageFilter

from curation.decontam import EvalIndex, eval_spec
from curation.images.hashes import hamming, hash_hex, phash64
from curation.errors import SightlineError


def photo(seed: int, size: int = 128) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = (int(v) for v in rng.integers(10, size - 10, 2))
        r = int(rng.integers(5, 25))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img.filter(ImageFilter.GaussianBlur(1))


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def eval_files(tmp_path):
    """One JSONL eval set without answers, one Parquet eval set."""
    jdir = tmp_path / "mathvista"
    jdir.mkdir()
    lines = []
    for i in range(3):
        (jdir / f"{i}.png").write_bytes(encode(photo(i)))
        lines.append(json.dumps({"question": f"What is the area of shape {i}?", "image": f"{i}.png"}))
    lines.append(json.dumps({"question": "Which object is largest?", "image": "missing.png"}))
    (jdir / "test.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.Table.from_pylist(
        [{"question": "How many   Dogs are in the picture?", "answer": "2", "image": encode(photo(10))}],
        schema=pa.schema([("question", pa.string()), ("answer", pa.string()), ("image", pa.binary())]))
    pq.write_table(table, tmp_path / "chartqa.parquet")
    return [str(jdir / "test.jsonl"), str(tmp_path / "chartqa.parquet")]


def test_catches_resized_eval_image_and_respaced_question(eval_files):
    index = EvalIndex.from_files(eval_files, threshold=8)
    copy = photo(1).resize((300, 300), Image.LANCZOS)
    copy_hash = phash64(Image.open(io.BytesIO(encode(copy, "JPEG", quality=70))))
    reason, detail = index.check(copy_hash, "Totally new question?")
    assert reason == "eval_image_overlap" and "'test'" in detail

    reason, detail = index.check(phash64(photo(99)), "  how many dogs ARE in the\tpicture? ")
    assert reason == "eval_question_overlap" and "'chartqa'" in detail
    # The question of a row whose eval image was missing still counts.
    assert index.check(None, "which object is LARGEST?")[0] == "eval_question_overlap"


def test_passes_unrelated_rows(eval_files):
    index = EvalIndex.from_files(eval_files, threshold=8)
    for seed in range(20, 30):
        assert index.check(phash64(photo(seed)), f"What colour is object {seed}?") is None
    assert index.check(None, "") is None


def test_summary_counts_and_small_pickle(eval_files):
    index = EvalIndex.from_files(eval_files)
    s = index.summary()
    assert s["eval_sets"] == {"test": {"images": 3, "questions": 4}, "chartqa": {"images": 1, "questions": 1}}
    assert (s["images"], s["questions"]) == (4, 5)
    assert s["skipped"] == {"test:image_missing": 1}
    index.check(0, "x")  # builds the band index
    clone = pickle.loads(pickle.dumps(index))
    assert clone._bands is None  # never shipped
    assert clone.check(phash64(photo(2)), "")[0] == "eval_image_overlap"


def test_band_lookup_equals_brute_force_and_pickles_small():
    rng = random.Random(0)
    eval_hashes = [rng.getrandbits(64) for _ in range(2000)]
    index = EvalIndex.from_rows(({"image_hash": hash_hex(h), "question": None} for h in eval_hashes), threshold=10)
    assert len(pickle.dumps(index)) < 2000 * 10 + 1000  # uint64 hash + uint16 eval set each
    for k in range(300):
        base = eval_hashes[k] if k % 2 else rng.getrandbits(64)
        query = base ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, 14)))
        best = min(hamming(query, h) for h in eval_hashes)
        found = index.nearest_image(query)
        if best <= 10:
            assert found is not None and found[0] == best
        else:
            assert found is None


def test_min_question_chars_ignores_short_generic_questions():
    rows = [{"question": "Why?", "image_hash": None}, {"question": "What is the perimeter of ABCD?"}]
    index = EvalIndex.from_rows(rows, min_question_chars=10)
    assert index.check(None, "why?") is None
    assert index.check(None, "what is the perimeter of abcd?")[0] == "eval_question_overlap"
    assert index.summary()["skipped"] == {"short_question": 1}


def test_eval_spec_infers_the_type(tmp_path, eval_files):
    assert eval_spec(eval_files[0])["type"] == "auto"  # .json may be an array or an object keyed by id
    assert eval_spec(eval_files[1])["type"] == "parquet"
    assert eval_spec({"type": "jsonl", "path": eval_files[0]})["require_answer"] is False
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SightlineError, match="not a .jsonl file"):
        eval_spec(tmp_path / "notes.txt")
    with pytest.raises(SightlineError, match="does not exist"):
        eval_spec(tmp_path / "gone.jsonl")
