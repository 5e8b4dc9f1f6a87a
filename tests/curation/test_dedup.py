import io
import random
from collections import defaultdict

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from curation.errors import SightlineError
from curation.images.hashes import band_keys, hamming, hash_from_hex, hash_hex, phash64
from curation.images.near_copy import same_image, thumbnail, thumbnail_bytes, thumbnail_from_bytes
from tests.curation.dedup_reference import (
    Candidate,
    Drop,
    candidate_keys,
    candidate_pairs,
    confirm,
    decide_duplicates,
    find_duplicates,
    first_drop,
    image_sha256,
    near_copy_pairs,
)
from schemas.ids import normalize_question


def photo(seed: int, size: int = 128) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(coarse)
    for _ in range(4):
        x, y, r = (int(v) for v in rng.integers(10, size - 10, 3) // [1, 1, 4])
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return coarse.filter(ImageFilter.GaussianBlur(1))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_phash64_matches_imagehash_and_hex_round_trips():
    img = photo(0)
    h = phash64(img)
    assert hash_hex(h) == str(imagehash.phash(img))
    assert len(hash_hex(h)) == 16 and hash_from_hex(hash_hex(h)) == h
    assert hash_hex(1) == "0000000000000001"
    with pytest.raises(ValueError):
        hash_from_hex("0" * 17)


def test_jpeg_copy_is_near_and_different_images_are_far():
    img = photo(1)
    assert hamming(phash64(img), phash64(jpeg(img, 70))) <= 4
    assert hamming(phash64(img), phash64(img.resize((77, 77)))) <= 4
    far = [hamming(phash64(photo(1)), phash64(photo(s))) for s in range(2, 8)]
    assert min(far) >= 14


def test_band_keys_partition_the_64_bits():
    rng = random.Random(0)
    for t in (0, 1, 7, 10, 63):
        h = rng.getrandbits(64)
        keys = band_keys(h, t)
        assert [i for i, _ in keys] == list(range(t + 1))
        widths = [64 // (t + 1) + (1 if i < 64 % (t + 1) else 0) for i in range(t + 1)]
        rebuilt = 0
        for (_, value), w in zip(keys, widths):
            assert 0 <= value < 2**w
            rebuilt = (rebuilt << w) | value
        assert rebuilt == h
    with pytest.raises(ValueError):
        band_keys(0, 64)


@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_band_keys_find_exactly_the_all_pairs_answer(threshold):
    rng = random.Random(threshold)
    hashes = []
    for _ in range(60):  # 60 clusters of 5: near variants at distances around the threshold
        base = rng.getrandbits(64)
        hashes.append(base)
        for _ in range(4):
            flips = rng.sample(range(64), rng.randint(0, threshold + 3))
            hashes.append(base ^ sum(1 << b for b in flips))
    assert len(hashes) == 300
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300) if hamming(hashes[i], hashes[j]) <= threshold}
    buckets = defaultdict(set)
    for i, h in enumerate(hashes):
        for key in band_keys(h, threshold):
            buckets[key].add(i)
    via_bands = {(i, j) for members in buckets.values() for i in members for j in members
                 if i < j and hamming(hashes[i], hashes[j]) <= threshold}
    assert via_bands == brute
    assert len(brute) > 50  # the fixture does have near pairs


# ---------------------------------------------------------------- the default rule: confirmed near-copies

ORANGE, YELLOW = (245, 130, 20), (230, 190, 20)  # curation.synthetic's pair: 0.24 apart in G
PALETTE = [(220, 40, 40), (40, 160, 60), (40, 90, 220), (140, 60, 190), ORANGE, YELLOW]


def puzzle(seed: int, size: int = 256, recolour: int | None = None, digit_plus: int | None = None) -> Image.Image:
    """A 4x4 grid of outlined circles with digits: one cell recoloured (orange <-> yellow; cells 0, 3, 6, ...
    are always one of the two) or one digit changed on request."""
    rng = random.Random(seed)
    colours = [rng.choice((ORANGE, YELLOW) if k % 3 == 0 else PALETTE) for k in range(16)]
    digits = [rng.randrange(10) for _ in range(16)]
    if recolour is not None:
        colours[recolour] = YELLOW if colours[recolour] == ORANGE else ORANGE
    if digit_plus is not None:
        digits[digit_plus] = (digits[digit_plus] + 1) % 10
    img = Image.new("RGB", (size, size), "white")
    draw, step, font = ImageDraw.Draw(img), size / 4, ImageFont.load_default(size=size // 12)
    for k in range(16):
        cx, cy, r = (k % 4 + 0.5) * step, (k // 4 + 0.5) * step, step * 0.38
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[k], outline="black", width=2)
        draw.text((cx, cy), str(digits[k]), fill="black", font=font, anchor="mm")
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def candidate(key: str, img: Image.Image, question: str, data: bytes | None = None) -> Candidate:
    data = png(img) if data is None else data
    return Candidate(key, image_sha256(data), phash64(img), normalize_question(question),
                     thumbnail_bytes(thumbnail(data)))


def test_thumbnail_keeps_aspect_halves_at_least_and_round_trips_through_bytes():
    t = thumbnail(photo(3, 300).resize((600, 300)))
    assert t.pixels.shape == (128, 256, 3) and (t.width, t.height) == (600, 300)
    small = thumbnail(photo(3, 100))
    assert small.pixels.shape == (50, 50, 3)  # at most half the image, never the full 256
    assert thumbnail(png(photo(3, 100))).pixels.tolist() == small.pixels.tolist()  # bytes or PIL alike
    back = thumbnail_from_bytes(thumbnail_bytes(t))
    assert (back.width, back.height) == (600, 300) and np.array_equal(back.pixels, t.pixels)
    assert len(thumbnail_bytes(thumbnail(puzzle(0, 512)))) < 30_000  # flat diagrams compress well


def test_broken_thumbnails_and_images_raise_one_clear_error():
    blob = thumbnail_bytes(thumbnail(photo(1)))
    with pytest.raises(SightlineError, match="bad header"):
        thumbnail_from_bytes(b"PNG" + blob)
    with pytest.raises(SightlineError, match="corrupt thumbnail"):
        thumbnail_from_bytes(blob[:-20])
    with pytest.raises(SightlineError, match="corrupt thumbnail"):  # header claims fewer pixels than the data
        thumbnail_from_bytes(blob[:4] + (1).to_bytes(2, "big") + blob[6:])
    with pytest.raises(SightlineError, match="not_an_image"):
        thumbnail(b"definitely not an image")


def altered(img: Image.Image, how: str) -> Image.Image:
    if how == "jpeg70":
        return jpeg(img, 70)
    if how == "resize":
        return img.resize((round(img.width * 0.6), round(img.height * 0.6)), Image.LANCZOS)
    return ImageEnhance.Brightness(img).enhance({"brighter": 1.1, "darker": 0.9}[how])


@pytest.mark.parametrize("how", ["jpeg70", "resize", "brighter", "darker"])
def test_copies_are_the_same_image(how):
    for seed in range(4):
        img = puzzle(seed, 512) if seed % 2 else photo(seed, 256)
        copy = altered(img, how)
        same, score = same_image(thumbnail(img), thumbnail(copy))
        assert same and 0.0 < score <= 0.15, (seed, score)


def test_one_colour_or_one_digit_apart_is_a_different_image_although_hashes_collide():
    for seed in range(4):
        base = puzzle(seed, 512)
        for other in (puzzle(seed, 512, recolour=seed * 3), puzzle(seed, 512, digit_plus=seed * 5)):
            assert hamming(phash64(base), phash64(other)) <= 8  # a hash alone would drop it
            same, score = same_image(thumbnail_bytes(thumbnail(base)), thumbnail(other))
            assert not same and score > 0.15, (seed, score)
            assert same_image(thumbnail(other), thumbnail(base)) == (same, score)  # symmetric


def test_identical_thumbnails_score_zero_and_other_shapes_are_different():
    t = thumbnail(puzzle(1))
    assert same_image(t, t) == (True, 0.0)
    wide = thumbnail(puzzle(1).resize((512, 256)))
    assert same_image(t, wide) == (False, 1.0)


def test_candidate_keys_meet_only_rows_with_the_same_normalized_question():
    h = 0x0123456789ABCDEF
    a = candidate_keys(h, "How many  Circles?")
    assert a == candidate_keys(h, " how many circles? ") and len(a) == 9
    assert not set(a) & set(candidate_keys(h, "How many squares?"))
    assert not set(a) & set(candidate_keys(h, None))
    assert set(candidate_keys(h ^ 0b11, "how many circles?")) & set(a)  # 2 bits apart: a shared band


def test_fifty_images_with_four_questions_each_are_all_kept():
    questions = ["How many circles?", "Which colour is most common?", "What is the sum of the digits?",
                 "Is there a yellow circle?"]
    rows = []
    for i in range(50):
        img = puzzle(100 + i, 128)
        data = png(img)
        rows += [candidate(f"{i:02d}-{q}", img, q, data) for q in questions]
    assert find_duplicates(rows) == {}
    # What the hash-only rule over all rows would have done: 3 of every 4 rows, and distinct puzzles.
    by_key = sorted(rows, key=lambda r: r.key)
    assert sum(any(hamming(r.phash, o.phash) <= 8 for o in by_key[:i]) for i, r in enumerate(by_key)) > 150
    hashes = [r.phash for r in rows[::4]]
    assert sum(hamming(a, b) <= 8 for i, a in enumerate(hashes) for b in hashes[:i]) >= 5  # confirmation ran


def test_copies_with_the_same_question_are_dropped_near_and_byte_identical_exact():
    q = "Which number is in the top left circle?"
    base = puzzle(7, 512)
    data = png(base)
    rows = [candidate("k0", base, q, data),
            candidate("k1", base, q.upper(), data),                       # same bytes, same normalized question
            candidate("k2", jpeg(base, 70), q),                           # re-encoded copy
            candidate("k3", base.resize((300, 300), Image.LANCZOS), q),   # rescaled copy
            candidate("k4", jpeg(base, 70), "What colour is the top left circle?"),  # another question: kept
            candidate("k5", puzzle(7, 512, recolour=0), q)]               # a different puzzle: kept
    drops = find_duplicates(rows)
    assert sorted(drops) == ["k1", "k2", "k3"]
    assert drops["k1"] == Drop("k1", "k0", "exact", 0, 0.0)
    assert drops["k2"].kind == drops["k3"].kind == "near"
    assert drops["k2"].kept == drops["k3"].kept == "k0" and 0 < drops["k2"].score <= 0.15


def test_decisions_do_not_depend_on_bucket_or_order():
    q = "How many orange circles?"
    imgs = [puzzle(11, 256), jpeg(puzzle(11, 256), 70), puzzle(11, 256).resize((200, 200)), puzzle(12, 256)]
    rows = [candidate(f"r{i}", img, q) for i, img in enumerate(imgs)]
    expected = {"r1": "r0", "r2": "r0"}
    for seed in range(4):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert {k: d.kept for k, d in find_duplicates(shuffled).items()} == expected
        bucket = decide_duplicates(shuffled)  # one bucket holding everyone: the same drops
        assert sorted((d.dropped, d.kept) for d in bucket) == sorted(expected.items())
    assert first_drop([Drop("x", "k9", "near", 2, 0.1), Drop("x", "k1", "near", 6, 0.12)]).kept == "k1"
    # Two steps, as a pipeline that ships thumbnails of candidate rows only: pairs, then verdicts.
    bare = [Candidate(r.key, r.image_sha256, r.phash, r.question) for r in rows]
    pairs = candidate_pairs(bare)
    assert ("r0", "r1") in pairs and ("r0", "r2") in pairs
    by_key = {r.key: r for r in rows}
    verdicts = [(b, a, confirm(by_key[a], by_key[b])) for a, b in pairs]
    drops = {}
    for b, a, v in verdicts:
        if v is not None:
            drops.setdefault(b, []).append(Drop(b, a, *v))
    assert {k: first_drop(d).kept for k, d in drops.items()} == expected


def test_near_pairs_without_thumbnails_are_refused_not_guessed():
    a = Candidate("a", "sha-a", 0, "q")
    b = Candidate("b", "sha-b", 1, "q")
    with pytest.raises(ValueError, match="needs both thumbnails"):
        decide_duplicates([a, b])
    assert decide_duplicates([a, Candidate("b", "sha-a", 0, "q")]) == [Drop("b", "a", "exact", 0, 0.0)]
    far = Candidate("c", "sha-c", (1 << 64) - 1, "q")  # hashes 64 bits apart: never a candidate, no thumbnail needed
    assert decide_duplicates([a, far]) == []
    assert decide_duplicates([a, Candidate("d", "sha-a", 0, "another question")]) == []


def test_near_copy_pairs_join_images_across_questions():
    base = puzzle(21, 512)
    rows = [candidate("r0", base, "Question one?"), candidate("r1", jpeg(base, 70), "Question two?"),
            candidate("r2", puzzle(21, 512, digit_plus=3), "Question one?"),
            candidate("r3", base, "Question three?")]  # same image as r0: one image, not a pair
    pairs = near_copy_pairs(rows)
    assert [(a, b) for a, b, _ in pairs] == [tuple(sorted((rows[0].image_sha256, rows[1].image_sha256)))]
    assert 0 < pairs[0][2] <= 0.15
