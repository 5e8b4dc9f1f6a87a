"""The images ``benchmarks/dedup_quality.py`` measures on: scenes of this project's own kind (shapes,
photo-like gradients, puzzles with digits), their alterations (resize, JPEG, crop, brightness, rotation)
and puzzle variants that must stay distinct (one colour or one digit changed)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

def render_shapes(rng: np.random.Generator, size: int = 112) -> Image.Image:
    """A few flat shapes on a plain background, the look of procedural VQA scenes."""
    bg = tuple(int(c) for c in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 6))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        r = int(rng.integers(size // 12, size // 4))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
        elif kind == 1:
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=color)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    return img


def render_photo(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """Smooth random colour field + soft blobs + sensor-like noise."""
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float64)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(int(rng.integers(2, 7))):
        cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        field += blob[..., None] * rng.uniform(-120, 120, 3)
    field += rng.normal(0, 8, field.shape)
    img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def project_scenes(n: int, seed: int) -> list[Image.Image]:
    """Images of the project's own generator (only with --use-synthetic)."""
    from curation.synthetic import generate

    return [Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB") for row in generate(n, seed=seed)]


# ---------------------------------------------------------------- alterations


def alter(img: Image.Image, how: str, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    if how == "resize":
        return img.resize((round(w * 0.6), round(h * 0.6)), Image.LANCZOS)
    if how == "jpeg70":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=70)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if how == "crop5":
        # 5% of each side's length removed in all, split at random between its two ends.
        dx, dy = round(w * 0.05), round(h * 0.05)
        left, top = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
        return img.crop((left, top, w - (dx - left), h - (dy - top)))
    if how == "bright10":
        return ImageEnhance.Brightness(img).enhance(0.9 if rng.random() < 0.5 else 1.1)
    if how == "rotate3":
        angle = rng.uniform(2, 3) * (1 if rng.random() < 0.5 else -1)
        return img.rotate(angle, resample=Image.BICUBIC)
    raise ValueError(how)


# ---------------------------------------------------------------- hashes


CLOSE_COLOURS = (((245, 130, 20), (230, 190, 20)),    # curation.synthetic orange / yellow
                 ((255, 165, 0), (255, 215, 0)),      # orange / gold
                 ((255, 160, 50), (255, 204, 50)))    # orange / yellow, 0.17 apart in G
OTHER_COLOURS = ((220, 40, 40), (40, 160, 60), (40, 90, 220), (140, 60, 190), (128, 128, 128))
CHANGES = ("colour", "digit")
FONT_RANGE = (20, 65)       # digit font size in px on 512 px puzzles: 4% to 13% of the image height
SMALL_FONT = 28             # digit changes below it are reported apart (and kept out of the done-when set)


def puzzle_scene(rng: np.random.Generator, fonts: tuple[int, int] = FONT_RANGE) -> dict:
    """A grid of outlined circles/squares, some with a digit, as a dict a variant can edit."""
    n = int(rng.integers(3, 7))
    pair = int(rng.integers(len(CLOSE_COLOURS)))
    palette = [*CLOSE_COLOURS[pair], *OTHER_COLOURS]
    cells = [{"shape": int(rng.integers(2)), "colour": palette[int(rng.integers(len(palette)))],
              "digit": int(rng.integers(10)) if rng.random() < 0.5 else None} for _ in range(n * n)]
    cells[int(rng.integers(n * n))]["colour"] = CLOSE_COLOURS[pair][0]   # one recolourable cell at least
    cells[int(rng.integers(n * n))]["digit"] = int(rng.integers(10))     # one digit at least
    return {"n": n, "pair": pair, "cells": cells, "font": int(rng.integers(*fonts))}


def puzzle_variant(scene: dict, change: str, rng: np.random.Generator) -> dict:
    """The same puzzle with one cell's colour swapped for its close partner, or one digit changed."""
    cells = [dict(c) for c in scene["cells"]]
    a, b = CLOSE_COLOURS[scene["pair"]]
    if change == "colour":
        i = int(rng.choice([k for k, c in enumerate(cells) if c["colour"] in (a, b)]))
        cells[i]["colour"] = b if cells[i]["colour"] == a else a
    else:
        i = int(rng.choice([k for k, c in enumerate(cells) if c["digit"] is not None]))
        cells[i]["digit"] = (cells[i]["digit"] + int(rng.integers(1, 10))) % 10
    return dict(scene, cells=cells)


def render_puzzle(scene: dict, size: int = 512) -> Image.Image:
    from PIL import ImageFont

    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw, n = ImageDraw.Draw(img), scene["n"]
    step = size / n
    font = ImageFont.load_default(size=scene["font"])
    for k, cell in enumerate(scene["cells"]):
        cx, cy, r = (k % n + 0.5) * step, (k // n + 0.5) * step, step * 0.36
        shape = draw.ellipse if cell["shape"] == 0 else draw.rectangle
        shape((cx - r, cy - r, cx + r, cy + r), fill=cell["colour"], outline=(0, 0, 0), width=3)
        if cell["digit"] is not None:
            draw.text((cx, cy), str(cell["digit"]), fill=(0, 0, 0), font=font, anchor="mm")
    return img


def synthetic_variant_pairs(n: int, seed: int, rng: np.random.Generator) -> list[tuple[str, Image.Image, Image.Image]]:
    """curation.synthetic scenes (112 px) and a copy with one object recoloured or one number changed."""
    import copy

    from curation.synthetic import render, scenes

    swap = {"orange": "yellow", "yellow": "orange", "red": "orange", "purple": "blue", "blue": "purple",
            "green": "yellow"}
    out = []
    for scene in scenes(n, seed=seed, families=["counting", "spatial", "chart", "arithmetic"]):
        other = copy.deepcopy(scene)
        if scene["family"] == "arithmetic":
            item = other["numbers"][int(rng.integers(len(other["numbers"])))]
            item["value"] += 1 if item["value"] % 10 != 9 else -1
        else:
            items = other["bars"] if scene["family"] == "chart" else other["objects"]
            item = items[int(rng.integers(len(items)))]
            item["color"] = swap[item["color"]]
        out.append((f"synthetic112-{scene['family']}", render(scene), render(other)))
    return out
