"""64-bit perceptual hashes of images and the multi-index bands that find near hashes without all pairs.

``phash64`` is imagehash's DCT hash as an int (the ``image_hash`` column holds ``hash_hex`` of it);
``hamming`` counts differing bits. Candidates come from multi-index hashing (Norouzi, Punjani & Fleet,
"Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012): the 64 bits are cut into
``threshold + 1`` bands (``band_widths``), so by pigeonhole two hashes within Hamming distance
``threshold`` agree exactly on at least one band (``band_keys``). A hash only proposes a pair: the dedup
rule (``curation.images.duplicates``) confirms each one on thumbnails (``curation.images.near_copy``),
and decontamination (``curation.decontam``) looks eval images up through the same bands.
"""
from __future__ import annotations

import numpy as np

HASH_BITS = 64
# From benchmarks/dedup_quality.py (N=500, seed 0): at 8, resized / JPEG q70 / brightness
# copies are found (recall >= 0.99), 5% crops 0.63, 2-3 degree rotations 0.46, and under 1% of
# distinct images are dropped. 14 meets "recall >= 0.95 at pairwise FP <= 0.01" but drops 9% of
# 500 distinct images, a share that grows with N (measured: 25% of 3000 photo-like images).
# Flat synthetic scenes collide at any threshold: do not near-dedup procedurally distinct data.
# Under the default rule the threshold only bounds the candidates: same_image decides, and it
# rejects crops and rotations anyway (benchmarks/dedup_quality.py --part confirm).
DEFAULT_THRESHOLD = 8


# ---------------------------------------------------------------- hashes

def phash64(img) -> int:
    """DCT perceptual hash of a PIL image as an int (imagehash's bit order, row-major, MSB first)."""
    import imagehash

    bits = imagehash.phash(img, hash_size=8).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_hex(h: int) -> str:
    """16 lowercase hex digits, the ``image_hash`` column format (same as ``str(ImageHash)``)."""
    return format(h, "016x")


def hash_from_hex(text: str) -> int:
    """Inverse of :func:`hash_hex`; refuses anything but 1-16 hex digits."""
    if not 0 < len(text) <= 16:
        raise ValueError(f"not a 64-bit hex hash: {text!r}")
    return int(text, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# ---------------------------------------------------------------- multi-index bands

def band_widths(threshold: int) -> list[int]:
    """Widths of the ``threshold + 1`` bands, as equal as possible (wider bands first)."""
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in 0..{HASH_BITS - 1}, got {threshold}")
    n = threshold + 1
    base, extra = divmod(HASH_BITS, n)
    return [base + 1 if i < extra else base for i in range(n)]


def band_keys(h: int, threshold: int) -> list[tuple[int, int]]:
    """``(band_index, band_value)`` keys of ``h``; hashes within ``threshold`` share at least one."""
    keys = []
    shift = HASH_BITS
    for i, width in enumerate(band_widths(threshold)):
        shift -= width
        keys.append((i, (h >> shift) & ((1 << width) - 1)))
    return keys
