"""Batched near-copy verdicts (``curation.images.near_copy_batch``): the same answers as ``near_copies`` pair by
pair, on puzzles, their one-colour and one-digit variants, their copies and photos."""
import numpy as np
from PIL import Image

from curation.images import near_copy_batch as B
from curation.images.near_copy import thumbnail, thumbnail_bytes, thumbnail_from_bytes
from tests.curation.test_dedup import altered, jpeg, photo, png, puzzle


def _thumbs() -> dict[str, bytes]:
    """Puzzles, their one-colour / one-digit variants (hash candidates, different images), their copies
    (JPEG, brighter, darker, resized) and photos, as thumbnails keyed like images."""
    images = {}
    for seed in range(3):
        base = puzzle(seed, 512)
        images[f"p{seed}"] = base
        images[f"p{seed}-recolour"] = puzzle(seed, 512, recolour=seed * 3)
        images[f"p{seed}-digit"] = puzzle(seed, 512, digit_plus=seed * 5)
        for how in ("jpeg70", "brighter", "darker", "resize"):
            images[f"p{seed}-{how}"] = altered(base, how)
        images[f"photo{seed}"] = photo(seed, 256)
        images[f"photo{seed}-jpeg"] = jpeg(photo(seed, 256), 70)
    return {k: thumbnail_bytes(thumbnail(png(img))) for k, img in images.items()}


def test_batched_confirmation_gives_near_copies_answer_for_every_pair():
    thumbs = _thumbs()
    keys = sorted(thumbs)
    pairs = [(a, b) for i, b in enumerate(keys) for a in keys[:i]]
    truth = sorted(p for p in pairs if B.near_copies(thumbs[p[0]], thumbs[p[1]]))
    assert B.confirmed_pairs(thumbs, pairs) == truth
    copies = {tuple(sorted((f"p{s}", f"p{s}-{how}"))) for s in range(3) for how in ("jpeg70", "brighter", "darker",
                                                                                     "resize")}
    assert copies <= set(truth)  # every copy is found, and no variant against the base or a same-size copy
    assert not any(("recolour" in a + b or "digit" in a + b) and "resize" not in a + b for a, b in truth)
    # (near_copies does pass a one-digit variant against the 0.6x resized copy: the half grid of rescaled
    # pairs blurs the digit away. The batch keeps that answer, as it must; the rule is curation.images.near_copy's.)
    assert ("p0-digit", "p0-resize") in truth


def test_luminance_bounds_rule_out_a_changed_digit_and_keep_copies():
    thumbs = _thumbs()
    pairs = [("p0", "p0-recolour"), ("p0", "p0-digit"), ("p0", "p0-brighter"), ("p0", "p0-darker"),
             ("p0", "p0-jpeg70")]
    keys = sorted(thumbs)
    images = B.Thumbnails([thumbs[k] for k in keys])
    ia = np.array([keys.index(a) for a, _ in pairs])
    ib = np.array([keys.index(b) for _, b in pairs])
    gain_x, gain_y = B._gains(np.array([images.p99(i) for i in ia]), np.array([images.p99(j) for j in ib]))
    assert gain_x.tolist() == [1.0] * 5 and gain_y[3] > 1.05 and gain_y[[0, 1, 2, 4]].tolist() == [1.0] * 4
    floats = [np.stack([images.floats(i) for i in idx]) for idx in (ia, ib)]
    full = B._luma_maybe_same(*floats, gain_x, gain_y)
    # a changed digit moves luminance: ruled out without same_image; orange <-> yellow barely moves it (that
    # pair is left to same_image's colour pass); the copies all stay
    assert full.tolist() == [True, False, True, True, True]
    eight_bit = (np.abs(np.stack([images.luma8(i) for i in ia]).astype(int) - np.stack([images.luma8(j) for j in ib]))
                 >= B.LUMA8_FAR).sum(axis=(1, 2)) < B.MIN_PIXELS
    assert eight_bit[[0, 1, 2, 4]].tolist() == [True, False, True, True]  # the same verdicts where no gain applies
    assert B.confirmed_pairs(thumbs, pairs) == sorted([("p0", "p0-brighter"), ("p0", "p0-darker"), ("p0", "p0-jpeg70")])


def test_a_bucket_larger_than_the_decoded_cache_gives_the_same_answer(monkeypatch):
    thumbs = _thumbs()
    keys = sorted(thumbs)
    pairs = [(a, b) for i, b in enumerate(keys) for a in keys[:i]]
    full = B.confirmed_pairs(thumbs, pairs)
    monkeypatch.setattr(B, "DECODED_CACHE", 3)
    assert B.confirmed_pairs(thumbs, pairs) == full and len(full) >= 30


def test_pairs_on_different_grids_are_decided_by_same_image():
    wide = puzzle(4, 512).resize((512, 300), Image.LANCZOS)
    thumbs = {"a": thumbnail_bytes(thumbnail(png(puzzle(4, 512)))), "b": thumbnail_bytes(thumbnail(png(wide)))}
    assert thumbnail_from_bytes(thumbs["a"]).pixels.shape != thumbnail_from_bytes(thumbs["b"]).pixels.shape
    assert B.confirmed_pairs(thumbs, [("a", "b")]) == [] == [p for p in [("a", "b")] if B.near_copies(*thumbs.values())]


def test_luminance_band_bound_is_a_lower_bound_of_the_exact_far_count():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (200, 56, 56), dtype=np.uint8)
    # b: a nudged by up to +-60 steps (adjacent or farther bands), with a few pixels replaced outright
    b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
    b[:, :3, :3] = rng.integers(0, 256, (200, 3, 3), dtype=np.uint8)
    exact = (np.abs(a.astype(int) - b) >= B.LUMA8_FAR).sum(axis=(1, 2))
    bits_a = np.stack([B._luma_bits(x) for x in a])
    bits_b = np.stack([B._luma_bits(x) for x in b])
    bound = B._luma_far_count(bits_a, bits_b)
    bands_apart = (np.abs((a // B.LUMA_BAND).astype(int) - b // B.LUMA_BAND) >= 2).sum(axis=(1, 2))
    assert bound.tolist() == bands_apart.tolist()  # the bit masks count what they claim to
    assert (bound <= exact).all() and (bound < exact).any() and bound.min() >= B.MIN_PIXELS
    assert B._luma_far_count(bits_a, bits_a).tolist() == [0] * 200
    assert B.LUMA_BAND * 2 - (B.LUMA_BAND - 1) >= B.LUMA8_FAR  # two bands apart: at least LUMA8_FAR steps


def test_the_luminance_band_bound_changes_no_answer_on_synthetic_scenes(monkeypatch):
    """Our own diagrams (crowded hash buckets in real runs) and copies of them: every pair answered the same
    with and without the band bound, which removes most plain pairs the channel masks let through."""
    from curation.synthetic.generator import generate

    images = {}
    for r in generate(80, seed=3, level=(1, 2), image_size=112):
        img = Image.open(__import__("io").BytesIO(r["images"][0]["bytes"])).convert("RGB")
        images[r["id"]] = img
        if len(images) < 24:
            images[r["id"] + "-jpeg"] = jpeg(img, 70)
            images[r["id"] + "-brighter"] = altered(img, "brighter")
    thumbs = {k: thumbnail_bytes(thumbnail(png(img))) for k, img in images.items()}
    keys = sorted(thumbs)
    pairs = [(a, b) for i, b in enumerate(keys) for a in keys[:i]]
    removed, reached = [], []
    bound = B._luma_bound

    def counting(images, gid, chosen, ia, ib):
        out = bound(images, gid, chosen, ia, ib)
        removed.append(len(chosen) - len(out))
        reached.append(len(chosen))
        return out

    monkeypatch.setattr(B, "_luma_bound", counting)
    with_bound = B.confirmed_pairs(thumbs, pairs)
    monkeypatch.setattr(B, "_luma_bound", lambda images, gid, chosen, ia, ib: chosen)
    assert with_bound == B.confirmed_pairs(thumbs, pairs)
    print(f"{len(pairs)} pairs, {sum(reached)} past the channel masks, {sum(removed)} removed by the band bound")
    assert sum(removed) > (sum(reached) - len(with_bound)) // 2
    copies = {tuple(sorted((k.split("-")[0], k))) for k in keys if "-" in k}
    assert copies <= set(with_bound) and len(copies) == 16


def test_prepared_thumbnails_give_the_same_answers_and_refuse_corrupt_blobs():
    import pytest

    from curation.errors import SightlineError

    images = {}
    for seed in range(3):
        base = puzzle(seed, 512)
        images[f"p{seed}"] = png(base)
        images[f"p{seed}-digit"] = png(puzzle(seed, 512, digit_plus=seed * 5))
        for how in ("jpeg70", "brighter", "resize"):
            images[f"p{seed}-{how}"] = png(altered(base, how))
    plain = {k: thumbnail_bytes(thumbnail(b)) for k, b in images.items()}
    prepared = {k: B.prepared_thumbnail(b) for k, b in images.items()}
    keys = sorted(images)
    pairs = [(a, b) for i, b in enumerate(keys) for a in keys[:i]]
    found = B.confirmed_pairs(plain, pairs)
    assert B.confirmed_pairs(prepared, pairs) == found and len(found) >= 9
    # what the prepared blob carries is what the plain path computes from the decoded pixels
    for k in ("p0", "p1-brighter"):
        thumb, header, p99, bits = B._unprepared(prepared[k])
        assert thumb == plain[k]
        t = thumbnail_from_bytes(plain[k])
        want_p99, want_bits = B._first_look(t.pixels)
        assert p99 == want_p99 == B.Thumbnails([plain[k]]).p99(0) and (bits == want_bits).all()
        assert header == (*t.pixels.shape[:2], t.width, t.height)
    blob = prepared["p0"]
    for bad in (blob[:-5], blob[:10], blob[:12] + b"x" + blob[13:], blob + b"\0"):
        with pytest.raises(SightlineError, match="prepared thumbnail|thumbnail"):
            B.Thumbnails([bad])
