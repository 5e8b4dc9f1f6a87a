"""Near-copy verdicts for many candidate pairs at once, with exactly the answers of :func:`near_copies`.

``near_copies`` (one pair) is ``curation.images.near_copy.same_image`` behind a quick clearly-different test.
Hash buckets of synthetic diagrams hold hundreds of thousands of candidate pairs (20,000 level-1 rows of
``configs/data/mini.yaml``: 420,688 pairs, 1 a copy), so the batch version puts cheaper tests first, each
one a proof that the next would say "different" too, and runs them on numpy stacks of pairs:

1. for pairs of one image size that ``same_image`` compares without a brightness gain, bit masks of 8-bit
   luminance bands (every 2nd row and column, then every pixel): a lower bound of the pixels too far apart
   in luminance (:func:`_luma_far_count`); then bit masks of "high" and "low" channel values: a lower bound
   of the clearly-different count;
2. for pairs of one image size, a luminance bound (on 8-bit luminance when ``same_image`` applies no
   brightness gain, else on the float images after that gain);
3. near_copies' clearly-different test itself;
4. ``same_image`` for what is left.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from curation.errors import SightlineError
from curation.images.near_copy import (
    _LUMA,
    MIN_PIXELS,
    TAU,
    _brightest_channel,
    _p99,
    same_image,
    thumbnail,
    thumbnail_bytes,
    thumbnail_from_bytes,
    thumbnail_header,
)

from curation.images.near_copy_masks import (  # noqa: F401 - the masks' names, as the batch reads them
    CLEARLY_DIFFERENT,
    CLEARLY_DIFFERENT_SHARE,
    FAR_HIGH,
    FAR_LOW,
    LUMA8_FAR,
    LUMA_BAND,
    LUMA_BANDS,
    LUMA_MARGIN,
    SAMPLE,
    _certainly_far,
    _far_bits,
    _luma8,
    _luma_bits,
    _luma_far_count,
    _packed_rows,
)

BATCH_PAIRS = 128            # pairs compared at once (~2.5 MB of float32 per side for 56 x 56 thumbnails)


def near_copies(thumb_a: bytes, thumb_b: bytes) -> bool:
    """Do two candidate thumbnails show the same picture (re-encoded, resized, brightened)?

    Most hash candidates of diagrams are plainly different pictures; when the thumbnails share a
    grid and more than 1% of their pixels differ by half the range, that settles it without the
    full comparison (``curation.images.near_copy.same_image``, ~2 ms a pair).
    """

    return _near_copies(thumbnail_from_bytes(thumb_a), thumbnail_from_bytes(thumb_b))


def _near_copies(a, b) -> bool:

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

    Steps, each removing only pairs the next would remove too: (1) on bit masks, pairs of one image size
    and no brightness gain with ``MIN_PIXELS`` or more pixels two luminance bands apart (:func:`_luma_bound`,
    ~0.4 us a pair on every 2nd row and column: almost every hash candidate of distinct diagrams ends here), then pairs with over 1%
    of pixels certainly half the range apart (:func:`_certainly_far`); (2) near_copies' own clearly-different test; (3) for
    one image size, a luminance bound: ``same_image`` calls a pair the same only when fewer than
    ``MIN_PIXELS`` pixels differ in luminance (BT.601) by more than ``TAU`` after its brightness match,
    so a pair with ``MIN_PIXELS`` pixels beyond ``TAU + LUMA_MARGIN``, computed the same way, is not a
    copy; (4) ``same_image`` itself. Steps 1-3 run on batches of pairs of one grid; pairs on two grids
    go to ``same_image`` directly, as in near_copies.
    """
    pairs = sorted(set(pairs))
    keys = sorted({k for p in pairs for k in p})
    index = {k: i for i, k in enumerate(keys)}
    ia = np.array([index[a] for a, _ in pairs], dtype=np.int64)
    ib = np.array([index[b] for _, b in pairs], dtype=np.int64)
    return [pairs[k] for k in confirmed(Thumbnails([thumbs[k] for k in keys]), ia, ib)]


def confirmed(images: Thumbnails, ia: np.ndarray, ib: np.ndarray) -> list[int]:
    """Positions ``k`` of the pairs ``(images ia[k], images ib[k])`` that near_copies confirms, in order."""

    if not len(ia):
        return []
    cross = images.grid_id[ia] != images.grid_id[ib]
    out = [k for k in np.flatnonzero(cross) if same_image(images[ia[k]], images[ib[k]])[0]]
    for gid in np.unique(images.grid_id[ia[~cross]]):
        chosen = np.flatnonzero(~cross & (images.grid_id[ia] == gid))
        # luminance bands first: on diagrams they leave ~1 pair in 20,000 (the channel masks ~1 in 3), so the
        # channel masks are made only for the images of the pairs left
        left = _luma_bound(images, gid, chosen, ia, ib)
        if len(left):
            bits, at = images.far_bits(np.unique(np.concatenate([ia[left], ib[left]])))
            left = np.concatenate([c[~_certainly_far(bits[at[ia[c]]], bits[at[ib[c]]], images.pixels_of[gid])]
                                   for c in _chunks(left, BOUND_PAIRS)])
        for batch in _chunks(left, BATCH_PAIRS):
            out += _confirm_batch(images, batch, ia[batch], ib[batch]).tolist()
    return sorted(out)


def _chunks(a: np.ndarray, size: int) -> list[np.ndarray]:
    return [a[i:i + size] for i in range(0, len(a), size)]


BOUND_PAIRS = 4096    # pairs per bit-mask step (2 x 9 MB of masks for 56 x 56 thumbnails)
DECODED_CACHE = 2048  # thumbnails kept decoded (~9 KB each for 56 x 56): pairs come sorted, so partners repeat


class Look(NamedTuple):
    """What confirmation reads of a candidate before any pair: its thumbnail bytes, ``(thumbnail height, width,
    image width, height)``, ``same_image``'s brightness percentile and the sampled luminance-band masks."""

    thumb: bytes
    grid: tuple[int, int, int, int]
    p99: float
    bits: np.ndarray


def first_look(blob: bytes) -> Look:
    """The :class:`Look` of a prepared (:func:`prepared_thumbnail`) or plain thumbnail blob."""
    return _unprepared(blob) if blob[:4] == _PREPARED_MAGIC else _look_of(blob, thumbnail_from_bytes(blob))


def _look_of(blob: bytes, t) -> Look:
    p99, bits = _first_look(t.pixels)
    return Look(blob, (*t.pixels.shape[:2], t.width, t.height), p99, bits)


_LOOK = struct.Struct("<HHIIfI")  # thumbnail height, width, image width, height, p99 (float32: exact), thumb length


def look_bytes(look: Look) -> bytes:
    """A :class:`Look` as bytes (for a temporary file this process reads back: ``look_from_bytes``)."""
    h, w, width, height = look.grid
    return _LOOK.pack(h, w, width, height, look.p99, len(look.thumb)) + look.thumb + look.bits.tobytes()


def look_from_bytes(data: bytes) -> Look:
    """Inverse of :func:`look_bytes` (no inflating: the masks are stored as they are held)."""
    h, w, width, height, p99, n = _LOOK.unpack_from(data)
    start = _LOOK.size + n
    bits = np.frombuffer(data, dtype=np.uint64, offset=start).reshape(LUMA_BANDS - 1, -1)
    return Look(data[_LOOK.size:start], (h, w, width, height), float(p99), bits)


class Thumbnails:
    """Thumbnails by position: each decoded once up front for its grid, image size, brightness percentile and
    sampled luminance-band masks (:func:`_luma_bits`, ~0.6 KB for 56 x 56), then again on demand for its pixels (the least recently
    used dropped beyond ``DECODED_CACHE``) and channel masks (:meth:`far_bits`)."""

    def __init__(self, blobs: list[bytes] | None = None, looks: list[Look] | None = None):
        """From thumbnail blobs (prepared or plain), or from their :func:`first_look` already taken."""
        from collections import OrderedDict

        self.decoded = OrderedDict()  # position -> (thumbnail, 8-bit luminance or None)
        if looks is None:
            looks = [self._first_look(i, blob) for i, blob in enumerate(blobs)]
        self.blobs = [look.thumb for look in looks]
        grids = [(look.grid[0], look.grid[1], 3) for look in looks]
        self.p99_of = np.array([look.p99 for look in looks], dtype=np.float64)  # same_image's brightness percentile
        ids = {g: n for n, g in enumerate(sorted(set(grids)))}
        self.grid_id = np.array([ids[g] for g in grids], dtype=np.int64)
        self.size = np.array([look.grid[2:] for look in looks], dtype=np.int64).reshape(-1, 2)  # image width, height
        self.pixels_of = {n: g[0] * g[1] for g, n in ids.items()}
        self.at_grid = np.zeros(len(looks), dtype=np.int64)  # position among the images of its grid
        self.luma_bits = {}
        for n in ids.values():
            members = np.flatnonzero(self.grid_id == n)
            self.at_grid[members] = np.arange(len(members))
            self.luma_bits[n] = np.stack([looks[i].bits for i in members])

    def far_bits(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The channel masks (:func:`_far_bits`) of images ``positions`` (one grid), stacked, and an index from
        image position to its row there (-1 for the images not asked for)."""
        return self._stacked(positions, lambda i: _far_bits(self[i].pixels))

    def all_luma_bits(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`far_bits`, for the luminance-band masks of every pixel (``luma_bits`` has every
        ``SAMPLE``-th row and column only)."""
        return self._stacked(positions, lambda i: _luma_bits(self.luma8(i)))

    def _stacked(self, positions: np.ndarray, make) -> tuple[np.ndarray, np.ndarray]:
        at = np.full(len(self.blobs), -1, dtype=np.int64)
        at[positions] = np.arange(len(positions))
        return np.stack([make(i) for i in positions]), at

    def _first_look(self, i: int, blob: bytes) -> Look:
        """:func:`first_look`, keeping a plain thumbnail decoded here while the cache has room."""
        if blob[:4] == _PREPARED_MAGIC:
            return _unprepared(blob)
        return _look_of(blob, self._keep(i, thumbnail_from_bytes(blob)))

    def _keep(self, i: int, t):
        self.decoded[i] = (t, None)
        if len(self.decoded) > DECODED_CACHE:
            self.decoded.popitem(last=False)
        return t

    def _entry(self, i: int) -> tuple:

        entry = self.decoded.get(i)
        if entry is None:
            self._keep(i, thumbnail_from_bytes(self.blobs[i]))
            entry = self.decoded[i]
        self.decoded.move_to_end(i)
        return entry

    def __getitem__(self, i: int):
        return self._entry(i)[0]

    def floats(self, i: int) -> np.ndarray:
        """Image ``i`` as ``same_image`` sees it on its own grid: float32 in [0, 1]."""
        return self[i].pixels.astype(np.float32) * np.float32(1 / 255)

    def p99(self, i: int) -> float:
        """``same_image``'s 99th-percentile brightness of image ``i`` (read with the thumbnails)."""
        return float(self.p99_of[i])

    def luma8(self, i: int) -> np.ndarray:
        """BT.601 luminance of image ``i``, rounded to 8 bits (kept with its pixels while they are decoded)."""

        t, luma = self._entry(i)
        if luma is None:
            luma = _luma8(self.floats(i))
            self.decoded[i] = (t, luma)
        return luma


def _first_look(pixels: np.ndarray) -> tuple[float, np.ndarray]:
    """What confirmation reads of every candidate before any pair: ``same_image``'s brightness percentile
    and the luminance-band masks of every ``SAMPLE``-th row and column.

    The percentile is taken on uint8 and then scaled: the same float32 as on the floats (the brightest
    channel and the k-th smallest commute with a positive scale)."""
    p99 = float(np.float32(_p99(_brightest_channel(pixels))) * np.float32(1 / 255))
    return p99, _luma_bits(_luma8(pixels[::SAMPLE, ::SAMPLE].astype(np.float32) * np.float32(1 / 255)))


_PREPARED_MAGIC = b"SLC1"
_PREPARED = struct.Struct(">4sIf")  # magic, length of the thumbnail bytes, p99 (float32: exact)


def prepared_thumbnail(image) -> bytes:
    """A candidate image's thumbnail (``curation.images.near_copy.thumbnail_bytes``) with :func:`_first_look`'s
    answers, made once where the thumbnail is made: a candidate meets its pairs in up to nine buckets,
    and each would otherwise decode it and compute them again (~50 us). ~150 bytes more for diagrams."""
    t = thumbnail(image)
    thumb = thumbnail_bytes(t)
    p99, bits = _first_look(t.pixels)
    return _PREPARED.pack(_PREPARED_MAGIC, len(thumb), p99) + thumb + zlib.compress(bits.tobytes(), 1)


def _unprepared(blob: bytes):
    """Inverse of :func:`prepared_thumbnail`: (thumbnail bytes, its header, p99, sampled band masks); sizes are
    checked before anything is inflated."""
    if len(blob) < _PREPARED.size:
        raise SightlineError("corrupt prepared thumbnail (short header)")
    _, n, p99 = _PREPARED.unpack_from(blob)
    thumb = blob[_PREPARED.size:_PREPARED.size + n]
    h, w, width, height = thumbnail_header(thumb)
    words = -(-(-(-h // SAMPLE) * -(-w // SAMPLE)) // 64)
    expected = (LUMA_BANDS - 1) * words * 8
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob[_PREPARED.size + n:], expected + 1)
    except zlib.error as e:
        raise SightlineError(f"corrupt prepared thumbnail: {e}") from None
    if len(thumb) != n or len(raw) != expected or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise SightlineError(f"corrupt prepared thumbnail: {len(raw)} mask bytes for a {h}x{w} thumbnail")
    bits = np.frombuffer(raw, dtype=np.uint64).reshape(LUMA_BANDS - 1, words)
    return Look(thumb, (h, w, width, height), float(p99), bits)


def _luma_bound(images: Thumbnails, gid: int, chosen: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Of pair positions ``chosen`` (one grid), drop the plain pairs (one image size, no brightness gain: the
    pairs ``_confirm_batch`` tests on 8-bit luminance) with ``MIN_PIXELS`` or more pixels certainly
    ``LUMA8_FAR`` apart: ``_confirm_batch`` would find at least as many and reject them."""
    if not len(chosen):
        return chosen
    a, b = ia[chosen], ib[chosen]
    gain_x, gain_y = _gains(images.p99_of[a], images.p99_of[b])
    plain = (images.size[a] == images.size[b]).all(axis=1) & (gain_x == 1) & (gain_y == 1)
    far = np.zeros(len(chosen), dtype=bool)
    # every SAMPLE-th row and column first (its far pixels are some of the image's: a lower bound too, at
    # 1/SAMPLE^2 of the cost), then every pixel for the pairs left
    bits, at = images.luma_bits[gid], images.at_grid
    for c in _chunks(np.flatnonzero(plain), BOUND_PAIRS):
        far[c] = _luma_far_count(bits[at[a[c]]], bits[at[b[c]]]) >= MIN_PIXELS
    left = np.flatnonzero(plain & ~far)
    if len(left):
        bits, at = images.all_luma_bits(np.unique(np.concatenate([a[left], b[left]])))
        for c in _chunks(left, BOUND_PAIRS):
            far[c] = _luma_far_count(bits[at[a[c]]], bits[at[b[c]]]) >= MIN_PIXELS
    return chosen[~far]


def _confirm_batch(images: Thumbnails, batch: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Pair positions ``batch`` (images ``ia``, ``ib``, one grid) that near_copies confirms. Pairs of one image
    size take the luminance bound (on 8-bit luminance when ``same_image`` applies no brightness gain); then
    near_copies' clearly-different test; then same_image. Per-image work is done once per image in the batch."""

    n = len(batch)
    uniq, where = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    wa, wb = where[:n], where[n:]
    keep = np.ones(n, dtype=bool)
    sized = (images.size[ia] == images.size[ib]).all(axis=1)
    p99 = images.p99_of[uniq]
    gain_x, gain_y = _gains(p99[wa], p99[wb])
    plain = sized & (gain_x == 1) & (gain_y == 1)
    if plain.any():
        luma = np.stack([images.luma8(i) for i in uniq]).astype(np.int16)
        far = np.abs(luma[wa[plain]] - luma[wb[plain]]) >= LUMA8_FAR
        keep[plain] = far.sum(axis=(1, 2)) < MIN_PIXELS
    gained = np.flatnonzero(sized & ~plain)
    if len(gained):
        keep[gained] = _luma_maybe_same(np.stack([images.floats(i) for i in ia[gained]]),
                                        np.stack([images.floats(j) for j in ib[gained]]),
                                        gain_x[gained], gain_y[gained])
    rest = np.flatnonzero(keep)
    if len(rest):
        keep[rest] = _not_far(np.stack([images[i].pixels for i in ia[rest]]),
                              np.stack([images[j].pixels for j in ib[rest]]))
    return batch[[bool(k) and same_image(images[i], images[j])[0] for k, i, j in zip(keep, ia, ib)]]


def _gains(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 gains ``curation.images.near_copy._match_brightness`` applies to each pair's two images (1 where none):
    the darker one is scaled up to the other's 99th-percentile brightness, unless either is near black or
    they differ over 2x."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = pb / pa
        matched = (np.minimum(pa, pb) >= 0.05) & (ratio >= 0.5) & (ratio <= 2.0)
        gain_x = np.where(matched & (pb > pa), ratio, 1.0).astype(np.float32)
        gain_y = np.where(matched & (pb <= pa), pa / pb, 1.0).astype(np.float32)
    return gain_x, gain_y


def _luma_maybe_same(x: np.ndarray, y: np.ndarray, gain_x: np.ndarray, gain_y: np.ndarray) -> np.ndarray:
    """Per pair of float images (one grid, one image size) and the gains ``same_image`` applies to them
    (:func:`_gains`): False when ``same_image`` would certainly say different."""

    gx, gy = gain_x[:, None, None, None], gain_y[:, None, None, None]
    x = np.where(gx != 1, np.minimum(x * gx, 1.0), x)
    y = np.where(gy != 1, np.minimum(y * gy, 1.0), y)
    luma = np.abs((x - y) @ _LUMA)
    return (luma > TAU + LUMA_MARGIN).sum(axis=(1, 2)) < MIN_PIXELS
