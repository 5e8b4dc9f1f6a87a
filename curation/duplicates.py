"""Which images are near-copies, and which rows are duplicates: the dedup rule in steps a Beam graph can run.

1. Candidates: the distinct images' 64-bit perceptual hashes meet in multi-index hash bands
   (``curation.dedup.band_keys``, Norouzi et al. 2012); pairs within ``threshold`` bits are candidates.
   Each pair is *owned* by the first band its two hashes agree on, so exactly one bucket handles it.
2. Confirmation: a candidate pair is a near-copy only if its thumbnails agree
   (``curation.near_copy.same_image``); hashes propose, pixels decide. Only candidates' thumbnails
   travel, once to each bucket that owns one of their pairs.
3. Groups: every image's ``split_group`` is the smallest image key among itself and its confirmed
   near-copies (one hop), so all rows of one image and of its copies share a train/val/test side.
4. Duplicates: rows with the same group and the same normalized question (scope ``question``; also
   the same answer for ``question_answer``; any question for ``image``) are one problem; the row with
   the smallest id stays. ``exact``: byte-identical image and identical normalized question; else ``near``.
"""
from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable

import numpy as np

from schemas.ids import normalize_question

MEMBER_BYTES = 40  # a band member: the 32 bytes of the image key (sha256) and the 8 of its hash


# ---------------------------------------------------------------------------- candidates


def band_entries(image_key: str, image_hash: int, threshold: int) -> list[tuple[tuple[int, int], bytes]]:
    """``((band index, band value), member)`` for each multi-index band of an image's hash.

    The member is packed (``MEMBER_BYTES``): nine of them cross a shuffle per image, so they are
    bytes a combiner can concatenate, not Python tuples.
    """
    from curation.dedup import band_keys

    try:
        member = bytes.fromhex(image_key) + image_hash.to_bytes(8, "big")
    except ValueError:
        member = b""
    if len(member) != MEMBER_BYTES:
        raise ValueError(f"image key must be 64 hex digits (sha256), got {image_key!r}")
    return [(key, member) for key in band_keys(image_hash, threshold)]


def unpack_members(blob: bytes) -> tuple[list[str], np.ndarray]:
    """Packed members, concatenated (repeats allowed) -> (sorted distinct image keys, their hashes)."""
    members = sorted({blob[i:i + MEMBER_BYTES] for i in range(0, len(blob), MEMBER_BYTES)})
    hashes = np.frombuffer(b"".join(m[32:] for m in members), dtype=">u8").astype(np.uint64)
    return [m[:32].hex() for m in members], hashes


def owned_pairs(band: int, hashes: np.ndarray, threshold: int) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of one bucket of band ``band`` whose hashes are within
    ``threshold`` bits and agree on no earlier band: every candidate pair is owned by one bucket only.

    Vectorised in blocks of ~4M distances; the cost is quadratic in the bucket size only.
    """
    from curation.dedup import HASH_BITS, band_widths

    n = len(hashes)
    out_i, out_j = [], []
    start, step = 0, max(1, 4_000_000 // max(n, 1))
    while start < n:
        stop = min(n, start + step)
        near = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, :]) <= threshold
        near &= np.arange(n)[None, :] > np.arange(start, stop)[:, None]
        i, j = np.nonzero(near)
        out_i.append(i + start)
        out_j.append(j)
        start = stop
    i, j = np.concatenate(out_i or [np.zeros(0, int)]), np.concatenate(out_j or [np.zeros(0, int)])
    x = hashes[i] ^ hashes[j]
    owned = np.ones(len(i), dtype=bool)
    shift = HASH_BITS
    for width in band_widths(threshold)[:band]:
        shift -= width
        owned &= ((x >> np.uint64(shift)) & np.uint64((1 << width) - 1)) != 0
    return list(zip(i[owned].tolist(), j[owned].tolist()))


def bucket_pairs(band_key: tuple[int, int], packed: bytes, threshold: int) -> list[tuple[str, str]]:
    """The candidate pairs ``(a, b)``, ``a < b``, that one bucket owns (the hash-only rule: each is a near-copy)."""
    keys, hashes = unpack_members(packed)
    return [(keys[i], keys[j]) for i, j in owned_pairs(band_key[0], hashes, threshold)]


def pair_members(band_key: tuple[int, int], packed: bytes, threshold: int
                 ) -> list[tuple[str, tuple[tuple[int, int], int]]]:
    """``(image key, (band key, hash))`` for each image in a pair the bucket owns: where its thumbnail must go."""
    keys, hashes = unpack_members(packed)
    wanted = sorted({i for pair in owned_pairs(band_key[0], hashes, threshold) for i in pair})
    return [(keys[i], (band_key, int(hashes[i]))) for i in wanted]


def confirmed_in_bucket(band_key: tuple[int, int], members: Iterable[tuple[str, int, bytes]],
                        threshold: int) -> list[tuple[str, str]]:
    """The owned pairs of a bucket's ``(image key, hash, thumbnail)`` members that are near-copies."""
    by_key = {key: (h, thumb) for key, h, thumb in members}
    keys = sorted(by_key)
    hashes = np.array([by_key[k][0] for k in keys], dtype=np.uint64)
    pairs = [(keys[i], keys[j]) for i, j in owned_pairs(band_key[0], hashes, threshold)]
    return confirmed_pairs({k: by_key[k][1] for k in keys}, pairs)


def group_edges(a: str, b: str) -> list[tuple[str, str]]:
    """A confirmed near-copy pair -> (image, candidate group) for both; the group is the min over candidates."""
    g = min(a, b)
    return [(a, g), (b, g)]


# ---------------------------------------------------------------------------- duplicate rows


def duplicate_key(group: str, question: str, answer: str | None, scope: str) -> str:
    """The key under which rows compete: one problem = one near-copy group (+ question (+ answer))."""
    if scope == "image":
        text = ""
    else:
        text = normalize_question(question)
        if scope == "question_answer":
            text += "\x00" + normalize_question(answer or "")
    return group + ":" + hashlib.sha1(text.encode()).hexdigest()[:16]


def regrouped(key: str, group: str) -> str:
    """``duplicate_key(image, ...)`` -> ``duplicate_key(group, ...)``: the same problem, keyed by the image's group."""
    return group + key[key.index(":"):]


def duplicates_in_group(members: Iterable[tuple[str, str, str, str]]) -> list[dict]:
    """Rows ``(id, row_key, image_key, normalized question)`` of one key -> the drop decisions.

    The row with the smallest (id, row_key) stays; every other row is dropped, as ``exact`` when some
    row before it has the same image bytes and normalized question (a byte-identical repeat, even
    when the kept row is a re-encoded copy), else ``near``.
    """
    ms = sorted(set(members))
    kept_id = ms[0][0]
    seen = {(ms[0][2], ms[0][3])}
    drops = []
    for _, key, image, question in ms[1:]:
        drops.append({"kind": "exact" if (image, question) in seen else "near", "key": key, "kept": kept_id})
        seen.add((image, question))
    return drops


def row_key(row: dict) -> str:
    """Identity of one ingested row (two byte-identical rows of one source share an id, not a row key)."""
    return f"{row['id']}|{row['source']}|{row['source_id']}"


# ---------------------------------------------------------------------------- applying the decisions


def read_decisions(lines: Iterable[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Decision lines (JSON) -> (drops by row key, split group by image key for images with near-copies)."""
    import json

    drops: dict[str, dict] = {}
    groups: dict[str, str] = {}
    for line in lines:
        d = json.loads(line)
        if d["kind"] == "group":
            groups[d["key"]] = d["group"]
        else:
            drops[d["key"]] = d
    return drops, groups


def placed(row: dict, drops: dict[str, dict], groups: dict[str, str], test_fraction: float,
           val_fraction: float, salt: str = "") -> dict:
    """The row with its ``split_group`` and ``split``, or a ``Reject`` when it is a duplicate.

    The split is a hash of the group, never of the row: every row of an image (and of its near-copies)
    lands on the same side.
    """
    from curation.rejects import Reject
    from curation.split import split_of

    drop = drops.get(row_key(row))
    if drop is not None:
        return Reject(f"{drop['kind']}_duplicate", f"kept {drop['kept']}")
    group = groups.get(row["image_key"], row["image_key"])
    return dict(row, split_group=group, split=split_of(group, test_fraction, val_fraction, salt))


# ---------------------------------------------------------------------------- confirmation


def thumbnail_of(row: dict) -> bytes:
    """The compact thumbnail of a row's first image: what travels to confirm a candidate pair."""
    from curation.dedup import thumbnail, thumbnail_bytes

    return thumbnail_bytes(thumbnail(row["images"][0]["bytes"]))


CLEARLY_DIFFERENT = 128      # of 255: no re-encode, resize or 10% brightness change moves a pixel this far
CLEARLY_DIFFERENT_SHARE = 0.01
LUMA_MARGIN = 1e-4           # batched float32 luminance vs same_image's own: rounding differs by ~1e-7
BATCH_PAIRS = 64             # pairs compared at once (~2.5 MB of float32 per side for 56 x 56 thumbnails)


def near_copies(thumb_a: bytes, thumb_b: bytes) -> bool:
    """Do two candidate thumbnails show the same picture (re-encoded, resized, brightened)?

    Most hash candidates of diagrams are plainly different pictures; when the thumbnails share a
    grid and more than 1% of their pixels differ by half the range, that settles it without the
    full comparison (``curation.near_copy.same_image``, ~2 ms a pair).
    """
    from curation.dedup import thumbnail_from_bytes

    return _near_copies(thumbnail_from_bytes(thumb_a), thumbnail_from_bytes(thumb_b))


def _near_copies(a, b) -> bool:
    from curation.dedup import same_image

    if a.pixels.shape == b.pixels.shape and not _not_far(a.pixels[None], b.pixels[None])[0]:
        return False
    return bool(same_image(a, b)[0])


def _not_far(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of ``(n, h, w, 3)`` uint8 stacks: False when over 1% of pixels differ by half the range."""
    d = np.maximum(a, b) - np.minimum(a, b)  # |a - b| without leaving uint8
    far = (d[..., 0] > CLEARLY_DIFFERENT) | (d[..., 1] > CLEARLY_DIFFERENT) | (d[..., 2] > CLEARLY_DIFFERENT)
    return far.sum(axis=(1, 2)) / (far.shape[1] * far.shape[2]) <= CLEARLY_DIFFERENT_SHARE


def confirmed_pairs(thumbs: dict[str, bytes], pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs :func:`near_copies` confirms, with its answers, for many pairs at once.

    Thumbnails are decoded once per image while they are in use (a bounded cache, so a bucket of any
    size holds ``DECODED_CACHE`` of them at most). Pairs on one grid take the clearly-different test
    in batches. Pairs of one image size then take a luminance bound in batches: ``same_image`` calls a
    pair the same only when fewer than ``MIN_PIXELS`` pixels differ in luminance (BT.601) by more than
    ``TAU`` after its brightness match, so a pair with ``MIN_PIXELS`` pixels beyond ``TAU + LUMA_MARGIN``,
    computed the same way, is not a copy. Only the rest meet ``same_image``.
    """
    from curation.dedup import same_image

    images = _Thumbnails(thumbs)
    pairs = sorted(set(pairs))
    out = [(a, b) for a, b in pairs if images.grid(a) != images.grid(b) and same_image(images[a], images[b])[0]]
    grid = sorted(((a, b) for a, b in pairs if images.grid(a) == images.grid(b)), key=lambda p: (images.grid(p[0]), p))
    for _, same_grid in itertools.groupby(grid, key=lambda p: images.grid(p[0])):
        same_grid = list(same_grid)
        for start in range(0, len(same_grid), BATCH_PAIRS):
            out += _confirm_batch(images, same_grid[start:start + BATCH_PAIRS])
    return sorted(out)


DECODED_CACHE = 2048  # thumbnails kept decoded (~9 KB each for 56 x 56): pairs come sorted, so partners repeat


class _Thumbnails:
    """Thumbnail bytes by image key, decoded on demand (least recently used dropped), with each image's
    grid, image size and 99th-percentile brightness remembered (a few numbers per image)."""

    def __init__(self, thumbs: dict[str, bytes]):
        from collections import OrderedDict

        self.thumbs, self.decoded, self.meta, self.p99s = thumbs, OrderedDict(), {}, {}

    def __getitem__(self, key: str):
        from curation.dedup import thumbnail_from_bytes

        t = self.decoded.get(key)
        if t is None:
            t = self.decoded[key] = thumbnail_from_bytes(self.thumbs[key])
            self.meta[key] = (t.pixels.shape, t.width, t.height)
            if len(self.decoded) > DECODED_CACHE:
                self.decoded.popitem(last=False)
        else:
            self.decoded.move_to_end(key)
        return t

    def _meta(self, key: str) -> tuple:
        if key not in self.meta:
            self[key]  # decodes it and notes its grid and size
        return self.meta[key]

    def grid(self, key: str) -> tuple:
        return self._meta(key)[0]

    def size(self, key: str) -> tuple:
        return self._meta(key)[1:]

    def p99(self, key: str, x: np.ndarray) -> float:
        """``same_image``'s 99th-percentile brightness of the image whose float pixels are ``x``."""
        from curation.near_copy import _brightest_channel, _p99

        if key not in self.p99s:
            self.p99s[key] = _p99(_brightest_channel(x))
        return self.p99s[key]


def _confirm_batch(images: _Thumbnails, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs of one grid: the clearly-different test, the luminance bound (one image size), then same_image."""
    from curation.dedup import same_image

    a = np.stack([images[k].pixels for k, _ in batch])
    b = np.stack([images[k].pixels for _, k in batch])
    keep = _not_far(a, b)
    sized = np.array([bool(k) and images.size(x) == images.size(y) for (x, y), k in zip(batch, keep)])
    if sized.any():
        # as same_image sees them on their own grid: float32 in [0, 1]
        xa = a[sized].astype(np.float32) * np.float32(1 / 255)
        xb = b[sized].astype(np.float32) * np.float32(1 / 255)
        pairs = [p for p, s in zip(batch, sized) if s]
        pa = [images.p99(x, f) for (x, _), f in zip(pairs, xa)]
        pb = [images.p99(y, f) for (_, y), f in zip(pairs, xb)]
        keep[sized] = _luma_maybe_same(xa, xb, pa, pb)
    return [(x, y) for (x, y), k in zip(batch, keep) if k and same_image(images[x], images[y])[0]]


def _luma_maybe_same(x: np.ndarray, y: np.ndarray, pa: list[float], pb: list[float]) -> np.ndarray:
    """Per pair (same grid, same image size): False when ``same_image`` would certainly say different.

    Repeats ``curation.near_copy._match_brightness`` pair by pair (the darker image scaled up to the
    other's 99th-percentile brightness, unless either is near black or they differ over 2x).
    """
    from curation.near_copy import _LUMA, MIN_PIXELS, TAU

    gain_x, gain_y = np.ones(len(x), np.float32), np.ones(len(x), np.float32)
    for i, (p, q) in enumerate(zip(pa, pb)):
        if min(p, q) < 0.05 or not 0.5 <= q / p <= 2.0:
            continue
        if q > p:
            gain_x[i] = np.float32(q / p)
        else:
            gain_y[i] = np.float32(p / q)
    x = np.where((gain_x != 1)[:, None, None, None], np.minimum(x * gain_x[:, None, None, None], 1.0), x)
    y = np.where((gain_y != 1)[:, None, None, None], np.minimum(y * gain_y[:, None, None, None], 1.0), y)
    luma = np.abs((x - y) @ _LUMA)
    return (luma > TAU + LUMA_MARGIN).sum(axis=(1, 2)) < MIN_PIXELS
