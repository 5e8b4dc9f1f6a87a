"""Draw a scene dict as a PIL image and encode it as deterministic PNG bytes.

Rendering reads only the scene, so an image can always be re-drawn from its `scene` column.
Everything here is integer pixel geometry and PIL's bundled default font: the same scene gives
the same bytes on every machine with the same Pillow.
"""
from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 90, 220),
    "yellow": (230, 190, 20),
    "purple": (140, 60, 190),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
GRID = (205, 205, 205)


class _KeptMasks(ImageFont.FreeTypeFont):
    """A FreeType font that keeps the glyph masks it renders: scenes draw the same few labels (digits, letters)
    thousands of times, and rendering one was ~40% of drawing a scene. ``ImageDraw.text`` asks for the same mask
    with the same arguments and only reads it, so the pixels are the ones an uncached font draws."""

    MAX = 4096

    def __init__(self, base: ImageFont.FreeTypeFont):  # not super().__init__: it would load the font file again
        self.__dict__.update(base.__dict__)
        self._masks: dict = {}

    def getmask2(self, text, mode="", *args, **kwargs):
        if mode not in ("L", "1"):  # an RGBA (colour) mask is written into by ImageDraw: never shared
            return super().getmask2(text, mode, *args, **kwargs)
        key = (text, mode, repr(args), repr(sorted(kwargs.items())))
        hit = self._masks.get(key)
        if hit is None:
            if len(self._masks) >= self.MAX:
                self._masks.clear()
            hit = self._masks[key] = super().getmask2(text, mode, *args, **kwargs)
        return hit


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    return _KeptMasks(ImageFont.load_default(size=size))


def font_size(image_size: int, fraction: float) -> int:
    return max(8, round(image_size * fraction))


@lru_cache(maxsize=4096)
def text_size(text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = font(size).getbbox(text)
    return right - left, bottom - top


def draw_text(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, size: int,
              fill=INK) -> None:
    """Draw ``text`` centred on (x, y)."""
    draw.text((round(x), round(y)), text, fill=fill, font=font(size), anchor="mm")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, color: str, x: int, y: int, r: int) -> None:
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=INK)
    elif shape == "square":
        s = round(r * 0.9)  # a square of half-side r looks bigger than a circle of radius r
        draw.rectangle((x - s, y - s, x + s, y + s), fill=fill, outline=INK)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r - 2), (x - r, y + r - 2)], fill=fill, outline=INK)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _draw_objects(draw, scene: dict) -> None:
    for o in scene["objects"]:
        draw_shape(draw, o["shape"], o["color"], o["x"], o["y"], o["r"])


def _draw_chart(draw, scene: dict) -> None:
    c = scene["chart"]
    x0, y0, x1, y1 = c["plot"]  # plot box: left, top, right, bottom (y1 is the zero line)
    fs = c["font_size"]
    for v in range(0, c["max"] + 1, c["step"]):
        y = c["zero_y"] - v * c["unit_px"]
        draw.line((x0, round(y), x1, round(y)), fill=GRID)
        if v % c["tick_every"] == 0:
            draw_text(draw, x0 - 2 - text_size(str(v), fs)[0] / 2, y, str(v), fs)
    for bar in scene["bars"]:
        top = c["zero_y"] - bar["value"] * c["unit_px"]
        draw.rectangle((bar["x0"], round(top), bar["x1"], c["zero_y"]), fill=COLORS[bar["color"]],
                       outline=INK)
        draw_text(draw, (bar["x0"] + bar["x1"]) / 2, y1 + 2 + fs / 2, bar["label"], c["label_font_size"])
    draw.line((x0, y0, x0, c["zero_y"]), fill=INK)
    draw.line((x0, c["zero_y"], x1, c["zero_y"]), fill=INK)


def _draw_numbers(draw, scene: dict) -> None:
    for n in scene["numbers"]:
        draw_text(draw, n["x"], n["y"], str(n["value"]), n["font_size"], fill=COLORS.get(n["color"], INK))


def _draw_triangle(draw, scene: dict) -> None:
    t = scene["triangle"]
    pts = [tuple(p) for p in t["vertices"]]
    draw.polygon(pts, outline=INK)
    draw.line(pts + [pts[0]], fill=INK, width=2)
    if t.get("right_angle_marker"):
        draw.line([tuple(p) for p in t["right_angle_marker"]], fill=INK)
    for label in t["labels"]:
        draw_text(draw, label["x"], label["y"], label["text"], t["font_size"])


_DRAW = {
    "counting": _draw_objects,
    "spatial": _draw_objects,
    "chart": _draw_chart,
    "arithmetic": _draw_numbers,
    "geometry": _draw_triangle,
}


def render(scene: dict) -> Image.Image:
    """The RGB image of a scene."""
    image = Image.new("RGB", (scene["width"], scene["height"]), BACKGROUND)
    _DRAW[scene["family"]](ImageDraw.Draw(image), scene)
    return image


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes with no timestamps or metadata, so equal pixels give equal bytes.

    zlib level 3: flat-colour images compress about as well as at 6, in two thirds of the time.
    """
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
