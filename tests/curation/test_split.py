import hashlib
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw

from curation.images.hashes import phash64
from curation.images.near_copy import thumbnail, thumbnail_bytes
from tests.curation.dedup_reference import Candidate, candidate_keys, image_sha256, near_copy_pairs
from curation.errors import SightlineError
from curation.images import duplicates as D
from curation.split import image_key, split_leaks, split_of


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def scene(seed: int, size: int = 192) -> Image.Image:
    """A few coloured shapes on white, distinct per seed."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y = (int(v) for v in rng.integers(20, size - 20, 2))
        r = int(rng.integers(8, 24))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=fill, outline="black")
    return img


def test_split_fractions_on_10k_keys_are_right_deterministic_and_seeded():
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(10_000)]
    splits = [split_of(k, 0.1, 0.05) for k in keys]
    counts = Counter(splits)
    assert abs(counts["test"] / 10_000 - 0.10) < 0.015
    assert abs(counts["val"] / 10_000 - 0.05) < 0.012
    assert counts["train"] + counts["test"] + counts["val"] == 10_000
    assert splits == [split_of(k, 0.1, 0.05) for k in keys]           # the same on every call
    reseeded = [split_of(k, 0.1, 0.05, seed="v2") for k in keys]
    assert reseeded != splits and abs(Counter(reseeded)["test"] / 10_000 - 0.10) < 0.015
    assert {split_of(k, 0.0) for k in keys[:200]} == {"train"}
    assert {split_of(k, 1.0) for k in keys[:200]} == {"test"}
    assert "val" not in {split_of(k, 0.2) for k in keys[:500]}      # no val unless asked for


@pytest.mark.parametrize("test, val", [(-0.1, 0.0), (1.1, 0.0), (0.6, 0.5), (0.1, -0.2)])
def test_bad_fractions_are_one_clear_error(test, val):
    with pytest.raises(SightlineError, match="split fractions"):
        split_of("k", test, val)


def test_image_key_is_the_sha256_of_the_first_image():
    a, b = encode(scene(1)), encode(scene(2))
    assert image_key(a) == hashlib.sha256(a).hexdigest() == image_sha256(a)
    assert image_key([a, b]) == image_key(a) != image_key([b, a])
    with pytest.raises(SightlineError):
        image_key([])
    with pytest.raises(SightlineError):
        image_key(b"")


def one_hop_groups(pairs) -> dict[str, str]:
    """The pipeline's grouping (pipelines.dedup.near_copy_groups) as a loop: group_edges, then the minimum per image."""
    groups: dict[str, str] = {}
    for a, b, *_ in pairs:
        for image, group in D.group_edges(a, b):
            groups[image] = min(group, groups.get(image, group))
    return groups


def test_a_group_is_the_smallest_key_among_an_image_and_its_direct_near_copies():
    pairs = [("d", "c", 0.05), ("e", "d"), ("b", "a"), ("y", "x")]
    groups = one_hop_groups(pairs)
    assert groups == {"a": "a", "b": "a", "c": "c", "d": "c", "e": "d", "x": "x", "y": "x"}
    assert one_hop_groups(pairs[::-1]) == groups  # whatever order the pairs come in
    # one hop: in the chain c~d~e, e joins d's group, not c's (split.py's docstring says so)
    assert groups["e"] != groups["c"]


def test_split_leaks_finds_images_on_two_sides():
    rows = [("a", "train"), ("a", "train"), ("b", "test"), ("c", "train"), ("c", "test"), ("d", "val"), ("d", "test")]
    assert split_leaks(rows) == ["c", "d"]
    assert split_leaks([("a", "train"), ("b", "test")]) == []
    with pytest.raises(SightlineError, match="unknown split"):
        split_leaks([("a", "dev")])


def test_fifty_images_with_four_questions_and_their_copies_never_straddle_the_split():
    """Rows of one image, and of its JPEG copy, share one side; the old row-id split leaks."""
    questions = ["How many shapes?", "What colour is the largest shape?", "Is there a square?", "Which is leftmost?"]
    images = [encode(scene(s)) for s in range(50)]
    copies = [encode(Image.open(io.BytesIO(images[i])), "JPEG", quality=70) for i in range(0, 50, 5)]
    all_images = images + copies
    # Image-only candidate buckets (no question), then the confirmation: the pipeline's grouping pass.
    cands = [Candidate(image_sha256(data), image_sha256(data), phash64(Image.open(io.BytesIO(data))), "",
                       thumbnail_bytes(thumbnail(data))) for data in all_images]
    buckets: dict[str, list[Candidate]] = {}
    for c in cands:
        for key in candidate_keys(c.phash, None):
            buckets.setdefault(key, []).append(c)
    pairs = {p for members in buckets.values() for p in near_copy_pairs(members)}
    assert len(pairs) == len(copies)  # each copy joins its original, and nothing else joins
    groups = one_hop_groups(pairs)
    assert len(set(groups.values())) == len(copies)  # each copy with its original

    rows = [(image_key(data), q) for data in all_images for q in questions]
    sides = [(key, split_of(groups.get(key, key), 0.3)) for key, _ in rows]
    assert split_leaks(sides) == []
    by_group = {}
    for key, side in sides:
        assert by_group.setdefault(groups.get(key, key), side) == side
    assert 0.1 < sum(side == "test" for _, side in sides) / len(sides) < 0.5
    # The old rule, a hash of image + question per row, puts most of these images on both sides.
    old = [(key, "test" if int(hashlib.sha256((key + q).encode()).hexdigest()[:12], 16) / 2**48 < 0.3 else "train")
           for key, q in rows]
    assert len(split_leaks(old)) > 25
