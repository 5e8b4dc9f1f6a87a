import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from curation.images.decode import IMAGE_REASONS, check_image


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG claiming another size in its header (CRC recomputed, so it parses)."""
    assert png[12:16] == b"IHDR"
    data = struct.pack(">II", width, height) + png[24:29]
    return png[:16] + data + struct.pack(">I", zlib.crc32(b"IHDR" + data)) + png[33:]


def test_good_png_is_loaded_rgb_with_the_same_pixels():
    img = noise()
    check = check_image(encode(img))
    assert check.ok and check.reason is None
    assert (check.width, check.height) == (64, 48)
    assert check.image.mode == "RGB"
    assert np.array_equal(np.asarray(check.image), np.asarray(img))
    assert pickle.loads(pickle.dumps(check)).width == 64


def test_empty_bytes():
    assert check_image(b"").reason == "empty_image"


def test_oversized_byte_string_is_refused_before_decoding():
    data = encode(noise())
    check = check_image(data, max_bytes=len(data) - 1)
    assert (check.ok, check.reason) == (False, "image_too_large_bytes")


def test_random_bytes_and_eps_are_not_images():
    rng = np.random.default_rng(1)
    assert check_image(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()).reason == "not_an_image"
    # EPS would run Ghostscript: refused as a format.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n" + b"0 0 moveto\n" * 20
    assert check_image(eps).reason == "not_an_image"


def test_truncated_png_and_jpeg():
    png = encode(noise())
    check = check_image(png[: len(png) // 2])
    assert check.reason == "truncated_image"
    assert (check.width, check.height) == (64, 48)  # the header was read
    jpeg = encode(noise(), "JPEG", quality=90)
    assert check_image(jpeg[: len(jpeg) // 2]).reason == "truncated_image"


def test_damaged_pixel_data_is_corrupt():
    png = bytearray(encode(noise()))
    start = png.index(b"IDAT") + 20
    png[start:start + 40] = bytes(b ^ 0xFF for b in png[start:start + 40])
    assert check_image(bytes(png)).reason == "corrupt_image"


def test_header_claiming_30000x30000_is_a_bomb():
    bomb = with_ihdr_size(encode(noise(32, 32)), 30000, 30000)
    assert len(bomb) < 10_000
    check = check_image(bomb)
    assert (check.ok, check.reason) == (False, "decompression_bomb")


def test_own_pixel_cap_applies_before_decoding():
    # 5000x5000 is under PIL's own limit: only our cap, read from the header, stops it.
    claim = with_ihdr_size(encode(noise(32, 32)), 5000, 5000)
    check = check_image(claim)
    assert check.reason == "decompression_bomb"
    assert (check.width, check.height) == (5000, 5000)
    assert "16000000" in check.detail
    assert check_image(encode(noise(100, 100)), max_pixels=9_999).reason == "decompression_bomb"
    assert check_image(encode(noise(100, 100)), max_pixels=10_000).ok


def test_too_small():
    check = check_image(encode(noise(4, 4)))
    assert (check.reason, check.width, check.height) == ("image_too_small", 4, 4)
    assert check_image(encode(noise(4, 4)), min_side=4).ok


def test_palette_with_transparency_becomes_rgb_on_white():
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 10, 20))          # left half red, right half index 0 = transparent
    check = check_image(encode(img, transparency=0))
    assert check.ok and check.image.mode == "RGB"
    assert check.image.getpixel((2, 2)) == (255, 0, 0)
    assert check.image.getpixel((15, 2)) == (255, 255, 255)


def test_rgba_is_composited_on_white():
    img = Image.new("RGBA", (20, 20), (0, 0, 255, 0))
    img.paste((0, 0, 0, 128), (0, 0, 10, 20))
    check = check_image(encode(img))
    assert check.image.getpixel((15, 5)) == (255, 255, 255)   # fully transparent
    assert check.image.getpixel((5, 5)) == (127, 127, 127)    # half black over white


def test_cmyk_jpeg_and_16_bit_png_are_rescaled_to_8_bit_rgb():
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # red in CMYK
    r, g, b = check_image(encode(cmyk, "JPEG", quality=95)).image.getpixel((10, 10))
    assert r > 230 and g < 25 and b < 25
    gray16 = np.full((20, 20), 32896, dtype=np.uint16)     # 128 * 257
    gray16[:, :10] = 65535
    check = check_image(encode(Image.fromarray(gray16)))
    assert check.ok and check.image.mode == "RGB"
    assert check.image.getpixel((5, 5)) == (255, 255, 255)
    assert check.image.getpixel((15, 5)) == (128, 128, 128)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    check = check_image(encode(noise(64, 32), "JPEG", exif=exif))
    assert check.ok and (check.width, check.height) == (32, 64)


@pytest.mark.parametrize("reason", IMAGE_REASONS)
def test_every_declared_reason_is_snake_case(reason):
    assert reason.replace("_", "").isalpha() and reason.islower()
