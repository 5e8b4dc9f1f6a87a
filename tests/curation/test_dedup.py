import io
import random
from collections import defaultdict

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from curation.dedup import (
    band_keys,
    duplicates_in_bucket,
    exact_duplicates,
    exact_key,
    find_near_duplicates,
    hamming,
    hash_from_hex,
    hash_hex,
    min_kept,
    phash64,
)


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


def brute_force_rule(items, threshold):
    """The drop rule by definition: smallest strictly smaller id within the threshold."""
    out = {}
    for i, hi in items:
        kept = [j for j, hj in items if j < i and hamming(hi, hj) <= threshold]
        if kept:
            out[i] = min(kept)
    return out


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


def test_drop_rule_is_local_and_not_transitive():
    a, b, c = 0, 0b111, 0b111111  # a~b (3), b~c (3), a-c 6 apart
    assert sorted(duplicates_in_bucket([("c", c), ("a", a), ("b", b)], 3)) == [("b", "a", 3), ("c", "b", 3)]
    assert find_near_duplicates([("c", c), ("a", a), ("b", b)], 3) == {"b": "a", "c": "b"}
    assert find_near_duplicates([("c", c), ("a", a), ("b", b)], 6) == {"b": "a", "c": "a"}
    assert duplicates_in_bucket([("a", a), ("a", a)], 3) == []  # one id is one row


def test_kept_id_is_deterministic_and_matches_the_definition():
    rng = random.Random(7)
    items = []
    for _ in range(40):
        base = rng.getrandbits(64)
        for _ in range(rng.randint(1, 4)):
            flips = rng.sample(range(64), rng.randint(0, 12))
            items.append((f"id{rng.getrandbits(32):08x}", base ^ sum(1 << b for b in flips)))
    expected = brute_force_rule(items, 8)
    assert expected  # some duplicates exist
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert find_near_duplicates(shuffled, 8) == expected


def test_large_bucket_is_processed_in_blocks_with_the_same_answer():
    rng = np.random.default_rng(3)
    hashes = [int(h) for h in rng.integers(0, 2**16, 2500, dtype=np.uint64)]  # one dense region
    items = [(f"{i:05d}", h) for i, h in enumerate(hashes)]
    got = {d: k for d, k, _ in duplicates_in_bucket(items, 2)}
    arr = np.array(hashes, dtype=np.uint64)
    dist = np.bitwise_count(arr[:, None] ^ arr[None, :])
    near = np.tril(dist <= 2, -1)
    expected = {items[i][0]: items[int(near[i].argmax())][0] for i in np.flatnonzero(near.any(1))}
    assert got == expected and len(got) > 1000


def test_min_kept_combines_candidates_per_dropped_row():
    assert min_kept([("k9", 2), ("k1", 7), ("k5", 0)]) == ("k1", 7)
    assert min_kept(iter([("x", 3)])) == ("x", 3)


def test_exact_key_normalizes_question_and_keeps_smallest_id():
    h = hash_hex(0x1234)
    assert exact_key("How many  Circles?", h) == exact_key(" how many circles? ", h.upper())
    assert exact_key("How many circles?", h) != exact_key("How many squares?", h)
    assert exact_key("How many circles?", h) != exact_key("How many circles?", hash_hex(0x1235))
    assert exact_key("Which bar?", h, answer="B") != exact_key("Which bar?", h, answer="C")
    assert exact_duplicates(["c", "a", "b", "a"]) == [("b", "a"), ("c", "a")]
    assert exact_duplicates(["only"]) == []
