"""The bit masks that settle most candidate pairs of ``curation.images.near_copy_batch`` before any exact test.

A thumbnail's pixels become bits, 64 to a machine word, so one AND and a popcount compare 64 pixels of two
images at once: channel masks (:func:`_far_bits`: a channel high in one image and low in the other is more
than ``CLEARLY_DIFFERENT`` apart) and 8-bit luminance bands (:func:`_luma_bits`: two bands apart is at least
``LUMA8_FAR`` steps). Each count is a lower bound of the exact test's, so a pair it rejects, the exact test
would reject too.
"""
from __future__ import annotations

import numpy as np

from curation.images.near_copy import _LUMA, TAU

CLEARLY_DIFFERENT = 128      # of 255: no re-encode, resize or 10% brightness change moves a pixel this far
CLEARLY_DIFFERENT_SHARE = 0.01
LUMA_MARGIN = 1e-4           # batched float32 luminance vs same_image's own: rounding differs by ~1e-7
FAR_LOW, FAR_HIGH = 64, 192  # a channel below 64 in one image and at least 192 in the other: 129 or more apart


def _luma8(floats: np.ndarray) -> np.ndarray:
    """BT.601 luminance of float pixels in [0, 1], rounded to 8 bits (the plain pairs' luminance bound)."""
    return np.rint(np.clip(floats @ _LUMA, 0, 1) * 255).astype(np.uint8)



def _far_bits(pixels: np.ndarray) -> np.ndarray:
    """``(2, 3, words)`` uint64: for each channel, the pixels at or above ``FAR_HIGH`` and those below
    ``FAR_LOW``, one bit each. ANDing one image's high bits with another's low bits finds pixels that are
    certainly more than ``CLEARLY_DIFFERENT`` apart, 64 pixels per machine word."""
    channels = np.ascontiguousarray(pixels.reshape(-1, 3).T)  # (3, pixels): packbits is fast along rows
    masks = np.concatenate([channels >= FAR_HIGH, channels < FAR_LOW])  # (6, pixels)
    return _packed_rows(masks).reshape(2, 3, -1)


def _packed_rows(masks: np.ndarray) -> np.ndarray:
    """``(rows, pixels)`` booleans -> ``(rows, words)`` uint64, 64 pixels per word, padding bits 0."""
    n = masks.shape[1]
    out = np.zeros((masks.shape[0], -(-n // 64) * 8), dtype=np.uint8)
    out[:, :-(-n // 8)] = np.packbits(masks, axis=1)
    return out.view(np.uint64)


def _certainly_far(a: np.ndarray, b: np.ndarray, pixels: int) -> np.ndarray:
    """Per pair of stacked ``_far_bits``: True when more than ``CLEARLY_DIFFERENT_SHARE`` of the pixels have a
    channel high in one image and low in the other (a lower bound of the clearly-different test's count)."""
    x = (a[:, 0] & b[:, 1]) | (a[:, 1] & b[:, 0])
    return np.bitwise_count(x[:, 0] | x[:, 1] | x[:, 2]).sum(axis=1, dtype=np.int64) / pixels > CLEARLY_DIFFERENT_SHARE


# a rounded 8-bit luminance difference of at least this many steps is more than TAU + LUMA_MARGIN apart
LUMA8_FAR = int(np.floor((TAU + LUMA_MARGIN) * 255 + 1)) + 1
# 8-bit luminance in bands of this width: two pixels two or more bands apart differ by at least LUMA8_FAR
LUMA_BAND = LUMA8_FAR - 1
SAMPLE = 2  # the first luminance-band test reads every SAMPLE-th row and column (1 in 4 pixels)
LUMA_BANDS = 255 // LUMA_BAND + 1


def _luma_bits(luma8: np.ndarray) -> np.ndarray:
    """``(LUMA_BANDS - 1, words)`` uint64: row ``s - 1`` has a bit for each pixel whose 8-bit luminance is in
    band ``s`` or above (``luma8 // LUMA_BAND >= s``), 64 pixels per machine word (padding bits 0)."""
    band = luma8.ravel() // LUMA_BAND
    return _packed_rows(band[None, :] >= np.arange(1, LUMA_BANDS, dtype=band.dtype)[:, None])


def _luma_far_count(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of stacked :func:`_luma_bits`: the pixels whose luminance bands are two or more apart, each
    certainly ``LUMA8_FAR`` or more 8-bit steps apart (a lower bound of ``_confirm_batch``'s plain count).

    Band of ``a`` at most ``t`` and band of ``b`` at least ``t + 2`` (or the other way round), for some ``t``."""
    far = np.zeros((a.shape[0], a.shape[2]), dtype=np.uint64)
    for t in range(LUMA_BANDS - 2):  # rows: t -> "band >= t + 1"
        far |= (~a[:, t] & b[:, t + 1]) | (~b[:, t] & a[:, t + 1])
    return np.bitwise_count(far).sum(axis=1, dtype=np.int64)
