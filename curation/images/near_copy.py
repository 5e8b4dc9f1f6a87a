"""Is one image a near-copy of another? Small RGB thumbnails and a pixel verdict on candidate pairs.

A perceptual hash proposes pairs; it cannot decide them: distinct diagrams that differ in one
colour or one digit share 64-bit hashes (issue 9 measured 1,312 such pairs among 369 puzzles).
The verdict here compares two thumbnails pixel by pixel, after undoing what copying does to an
image (a rescale, lossy re-encoding, a brightness gain), and calls the pair distinct when some
pixels still differ clearly. Thumbnails, not images, are what crosses a shuffle, and only for
rows that are candidates. Constants are measured by ``benchmarks/dedup_quality.py``.

The comparison, in the spirit of image-diff tools such as pixelmatch (which also tell rendering
noise from content change by local tolerance) and of JPEG's own split into luminance and chroma:

1. both thumbnails are area-averaged onto the smaller one's grid; when the two *images* had
   different sizes (a rescaled copy), onto half that grid, because resampling shifts thin
   lines by a fraction of a pixel, which at full resolution looks like a changed stroke;
2. a global brightness gain is undone by matching the 99th percentile of each pixel's
   brightest channel (a white background pins it, so a recoloured object cannot move it);
3. **luminance** (BT.601 Y) is compared pixel by pixel, unsmoothed: JPEG keeps Y at full
   resolution, so q70 moves it far less than a changed digit moves its strokes (for rescaled
   pairs it is smoothed once, see 1);
4. **colour** (each of R, G, B) is compared after two 3x3 binomial passes: JPEG's 2x2 chroma
   subsampling smears colour along edges, which the smoothing averages away, while a recoloured
   object keeps its full difference inside (orange vs yellow: 0.17 in G);
5. each score is the ``MIN_PIXELS``-th largest difference (0-1) over the grid; the pair is a
   copy when both are at most ``TAU``.
"""
from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from curation.errors import SightlineError
from curation.images.decode import check_image

THUMB_SIZE = 256          # longer side; 128 loses digits under ~11% of the image height (measured)
THUMB_MAX_SCALE = 0.5     # a thumbnail is at least 2x smaller than its image: JPEG's 8x8 blocks and
                          # 2x2 chroma subsampling are averaged before anything is compared
TAU = 0.155               # colour difference (0-1, max over R, G, B) that counts as "clearly different"
MIN_PIXELS = 3            # ... on at least this many grid pixels (one or two stray pixels are noise)
MAX_ASPECT_CHANGE = 1.25  # a larger change of width / height is another image (a 5% crop changes it <= 1.06)
_MAGIC = b"SLT1"
_HEADER = struct.Struct(">4sHHII")  # magic, thumbnail height, width, image width, height


class Thumbnail(NamedTuple):
    """``pixels``: ``(h, w, 3)`` uint8 RGB; ``width``/``height``: the size of the image it shows."""

    pixels: np.ndarray
    width: int
    height: int


def thumbnail(image, size: int = THUMB_SIZE) -> Thumbnail:
    """The thumbnail of an image (encoded bytes or a PIL image): area-averaged (PIL ``BOX``), aspect
    ratio kept, longer side at most ``size`` and at most half the image's; never enlarged."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):

        check = check_image(bytes(image))
        if not check.ok:
            raise SightlineError(f"cannot make a thumbnail: {check.reason} ({check.detail})")
        image = check.image
    if not isinstance(image, Image.Image):
        raise TypeError(f"thumbnail needs image bytes or a PIL image, got {type(image).__name__}")
    if size < 8:
        raise ValueError(f"thumbnail size must be >= 8, got {size}")
    image = image.convert("RGB")
    w, h = image.size
    scale = min(size / max(w, h), THUMB_MAX_SCALE)
    small = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX) if scale < 1 else image
    return Thumbnail(np.asarray(small, dtype=np.uint8), w, h)


def thumbnail_bytes(thumb: Thumbnail) -> bytes:
    """Compact form for a shuffle: a 16-byte header, then the zlib-compressed pixels."""
    px = thumb.pixels
    if px.dtype != np.uint8 or px.ndim != 3 or px.shape[2] != 3:
        raise ValueError(f"thumbnail pixels must be (h, w, 3) uint8, got {px.dtype} {px.shape}")
    return _HEADER.pack(_MAGIC, px.shape[0], px.shape[1], thumb.width, thumb.height) + \
        zlib.compress(np.ascontiguousarray(px).tobytes(), 1)


def thumbnail_header(data: bytes) -> tuple[int, int, int, int]:
    """``(thumbnail height, width, image width, height)`` of :func:`thumbnail_bytes`, without inflating the pixels."""
    if len(data) < _HEADER.size or data[:4] != _MAGIC:
        raise SightlineError("not a Sightline thumbnail (bad header)")
    _, h, w, width, height = _HEADER.unpack_from(data)
    if not (h and w and width and height):
        raise SightlineError(f"corrupt thumbnail: {h}x{w} of a {width}x{height} image")
    return h, w, width, height


def thumbnail_from_bytes(data: bytes) -> Thumbnail:
    """Inverse of :func:`thumbnail_bytes`. The size is checked before anything is inflated, so a
    corrupt or hostile blob costs at most one thumbnail's worth of memory."""
    data = bytes(data)
    if len(data) < _HEADER.size or data[:4] != _MAGIC:
        raise SightlineError("not a Sightline thumbnail (bad header)")
    _, h, w, width, height = _HEADER.unpack_from(data)
    expected = h * w * 3
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data[_HEADER.size:], expected + 1)
    except zlib.error as e:
        raise SightlineError(f"corrupt thumbnail: {e}") from None
    if not (h and w and width and height) or len(raw) != expected or inflater.unconsumed_tail:
        raise SightlineError(f"corrupt thumbnail: {len(raw)} pixel bytes for {h}x{w}x3")
    return Thumbnail(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3), width, height)


# A row meets several candidates in a bucket: decode its thumbnail once (the pixels are read-only).
_decoded = lru_cache(maxsize=64)(thumbnail_from_bytes)


def _as_thumbnail(t) -> Thumbnail:
    if isinstance(t, (bytes, bytearray, memoryview)):
        return _decoded(bytes(t))
    if not isinstance(t, Thumbnail):
        raise TypeError(f"expected a Thumbnail or thumbnail_bytes(), got {type(t).__name__}")
    return t


def _on_grid(t: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    if t.shape[:2] != (h, w):
        t = np.asarray(Image.fromarray(t).resize((w, h), Image.BOX))
    return t.astype(np.float32) * np.float32(1 / 255)


def _brightest_channel(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])  # ~10x faster than x.max(axis=2)


def _p99(v: np.ndarray) -> float:
    flat = v.ravel()
    k = int(0.99 * (flat.size - 1))
    return float(np.partition(flat, k)[k])


def _match_brightness(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo a global gain: scale the darker image up until both 99th-percentile brightnesses agree.

    A median of pixel ratios could be led by the changed pixels themselves and turn orange into
    yellow; a high percentile of the brightest channel is pinned by the background. The clipping
    of a brightened copy is not undone: it leaves differences under the gain (~0.1), below TAU.
    """
    pa, pb = _p99(_brightest_channel(a)), _p99(_brightest_channel(b))
    if min(pa, pb) < 0.05 or not 0.5 <= pb / pa <= 2.0:
        return a, b
    if pb > pa:
        return np.minimum(a * np.float32(pb / pa), 1.0), b
    return a, np.minimum(b * np.float32(pa / pb), 1.0)


def _binomial3(x: np.ndarray) -> np.ndarray:
    """[1 2 1]/4 in each direction, edges repeated."""
    p = np.concatenate([x[:1], x, x[-1:]], axis=0)
    x = (p[:-2] + 2 * p[1:-1] + p[2:]) * np.float32(0.25)
    p = np.concatenate([x[:, :1], x, x[:, -1:]], axis=1)
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * np.float32(0.25)


def _kth_largest(v: np.ndarray, k: int) -> float:
    flat = v.ravel()
    k = min(k, flat.size)
    return float(np.partition(flat, flat.size - k)[flat.size - k])


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, the Y that JPEG keeps at full resolution


def same_image(thumb_a, thumb_b, tau: float = TAU, min_pixels: int = MIN_PIXELS) -> tuple[bool, float]:
    """``(same, score)``: is one thumbnail's image a near-copy of the other's (resized, re-encoded,
    brightened), or a distinct image? Symmetric; accepts :class:`Thumbnail` or its bytes.

    ``score`` is the larger of the luminance and colour scores of the module docstring (0-1;
    the luminance score alone when it already exceeds ``tau``: the colour pass is skipped);
    ``same`` iff ``score <= tau``. Aspect ratios more than ``MAX_ASPECT_CHANGE`` apart give
    ``(False, 1.0)``.
    """
    a, b = _as_thumbnail(thumb_a), _as_thumbnail(thumb_b)
    (ha, wa), (hb, wb) = a.pixels.shape[:2], b.pixels.shape[:2]
    if max(wa * hb, wb * ha) > MAX_ASPECT_CHANGE * min(wa * hb, wb * ha):
        return False, 1.0
    h, w = min(ha, hb), min(wa, wb)
    rescaled = (a.width, a.height) != (b.width, b.height)
    if rescaled:
        h, w = max(1, h // 2), max(1, w // 2)
    x, y = _match_brightness(_on_grid(a.pixels, h, w), _on_grid(b.pixels, h, w))
    diff = x - y  # the smoothing is linear: smoothing the difference is smoothing both images
    luma = diff @ _LUMA
    if rescaled:
        luma = _binomial3(luma[..., None])[..., 0]
    score = _kth_largest(np.abs(luma), min_pixels)
    if score <= tau:  # most distinct pairs end here, before the costlier colour pass
        colour = np.abs(_binomial3(_binomial3(diff)))
        score = max(score, _kth_largest(_brightest_channel(colour), min_pixels))
    return score <= tau, round(score, 4)
