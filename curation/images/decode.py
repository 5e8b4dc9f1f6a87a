"""Bounded image checks: decode untrusted bytes into a fully loaded RGB image, or say why not.

The pixel cap is applied to the size the header declares, before any pixel is decoded, so a
small file that claims 30000x30000 (a decompression bomb) costs a header read, not gigabytes.
PIL's own bomb guard (``Image.MAX_IMAGE_PIXELS``) fires inside ``Image.open``; its error is
caught as the same reject, and its warning threshold is mirrored by reading -- never setting --
the global, so no warning filter is touched (``warnings.catch_warnings`` is not thread-safe).
Only raster formats with pure-Python or libjpeg/libpng/libwebp decoders are opened: EPS (which
runs Ghostscript) and the long tail of exotic plugins are refused as ``not_an_image``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a dataset image can plausibly be in. MPO (multi-picture JPEG) comes through JPEG.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM")

IMAGE_REASONS = (
    "empty_image",            # no bytes at all
    "image_too_large_bytes",  # byte string over max_bytes
    "not_an_image",           # no allowed format recognises the bytes
    "decompression_bomb",     # header declares more pixels than the cap
    "image_too_small",        # a side under min_side
    "truncated_image",        # the header is fine, the pixel data ends early
    "corrupt_image",          # the pixel data is damaged in another way
)


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one image: ``ok`` with a loaded RGB ``image``, or a ``reason`` code."""

    ok: bool
    reason: str | None
    detail: str
    width: int
    height: int
    image: Image.Image | None = None


def _reject(reason: str, detail: str, width: int = 0, height: int = 0) -> ImageCheck:
    return ImageCheck(False, reason, detail, width, height, None)


def check_image(data: bytes, *, max_pixels: int = 16_000_000, min_side: int = 16,
                max_bytes: int = 50_000_000) -> ImageCheck:
    """Decode ``data`` under a pixel cap; return an RGB image or the first failure's reason."""
    if not data:
        return _reject("empty_image", "0 bytes")
    if len(data) > max_bytes:
        return _reject("image_too_large_bytes", f"{len(data)} bytes > max_bytes={max_bytes}")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as e:
        return _reject("decompression_bomb", str(e))
    except UnidentifiedImageError:
        head = bytes(data[:8]).hex()
        return _reject("not_an_image", f"no decoder for {len(data)} bytes starting {head}")
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # a recognised but broken header
        return _reject("corrupt_image", f"header: {type(e).__name__}: {e}")

    with img:
        fmt, mode = img.format, img.mode
        width, height = img.size
        pixels = width * height
        pil_cap = Image.MAX_IMAGE_PIXELS  # read, not set: beyond it PIL would only warn
        if pixels > max_pixels or (pil_cap is not None and pixels > pil_cap):
            cap = max_pixels if pil_cap is None else min(max_pixels, pil_cap)
            return _reject("decompression_bomb", f"{width}x{height} = {pixels} pixels > cap {cap}",
                           width, height)
        if min(width, height) < min_side:
            return _reject("image_too_small", f"{width}x{height}, min_side={min_side}", width, height)
        try:
            img.load()
        except Image.DecompressionBombError as e:
            return _reject("decompression_bomb", str(e), width, height)
        except (OSError, EOFError) as e:
            truncated = isinstance(e, EOFError) or "truncated" in str(e).lower()
            return _reject("truncated_image" if truncated else "corrupt_image",
                           f"{fmt}: {type(e).__name__}: {e}", width, height)
        except (SyntaxError, ValueError, IndexError, TypeError, ZeroDivisionError, MemoryError) as e:
            return _reject("corrupt_image", f"{fmt}: {type(e).__name__}: {e}", width, height)
        try:
            oriented = ImageOps.exif_transpose(img)  # a photo's orientation tag
        except Exception:  # noqa: BLE001 - EXIF parsing fails in many ways; a bad tag is not a bad image
            oriented = img
        rgb = to_rgb(oriented)
    width, height = rgb.size  # an EXIF rotation swaps the sides
    return ImageCheck(True, None, f"{fmt} {mode} {width}x{height}", width, height, rgb)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: transparency is composited on white, 16-bit and float data are rescaled."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode.startswith("I") or img.mode == "F":
        # PIL's own I;16 -> RGB conversion clips at 255 (a white image); rescale instead.
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        elif img.mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    has_alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")

