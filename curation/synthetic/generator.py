"""The synthetic source: example ``i`` is a pure function of (seed, i, options).

Families are dealt round-robin over ``families`` (index % len), so any index range holds a
balanced mix and a Beam DoFn can generate ranges in parallel without coordination. Each
example draws from its own ``random.Random(f"{family}:{seed}:{index}")`` (string seeds hash
with SHA-512, independent of PYTHONHASHSEED).
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence

from curation.synthetic import families as _families
from curation.synthetic.geometry import geometry
from curation.synthetic.render import png_bytes, render
from schemas.ids import row_id

SOURCE = "synthetic"
BUILDERS: dict[str, Callable[[random.Random, int, int], dict]] = {
    "counting": _families.counting,
    "chart": _families.chart,
    "spatial": _families.spatial,
    "arithmetic": _families.arithmetic,
    "geometry": geometry,
}
FAMILIES: tuple[str, ...] = tuple(BUILDERS)
LEVELS = (1, 3)
MIN_SIZE, MAX_SIZE = 64, 1024


def _check_families(families: Sequence[str] | None) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    if isinstance(families, str):
        families = [families]
    families = tuple(families)
    if not families:
        raise ValueError("families must name at least one family; known: " + ", ".join(FAMILIES))
    unknown = [f for f in families if f not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown synthetic family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    return families


def _check_level(level: int | tuple[int, int] | None) -> tuple[int, int]:
    if level is None:
        return LEVELS
    try:
        lo, hi = (level, level) if isinstance(level, int) else tuple(level)
    except (TypeError, ValueError):
        lo = hi = None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
    if not ints or not LEVELS[0] <= lo <= hi <= LEVELS[1]:
        raise ValueError(f"level must be an int in 1..3 or a (low, high) pair with 1 <= low <= high <= 3, "
                         f"got {level!r}")
    return lo, hi


def _check_size(image_size: int) -> int:
    is_int = isinstance(image_size, int) and not isinstance(image_size, bool)
    if not is_int or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size must be an int in {MIN_SIZE}..{MAX_SIZE} pixels, got {image_size!r}")
    return image_size


def _check_int(name: str, value: int, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _scene(index: int, seed: int, families: tuple[str, ...], size: int,
           levels: tuple[int, int]) -> tuple[str, dict]:
    family = families[index % len(families)]
    source_id = f"{family}:{seed}:{index}"
    rng = random.Random(source_id)
    return source_id, BUILDERS[family](rng, rng.randint(*levels), size)


def _example(index: int, seed: int, families: tuple[str, ...], size: int, levels: tuple[int, int]) -> dict:
    source_id, scene = _scene(index, seed, families, size, levels)
    png = png_bytes(render(scene))
    return {
        "id": row_id(png, scene["question"]),
        "source": SOURCE,
        "source_id": source_id,
        "split": None,
        "split_group": None,
        "task": scene["family"],
        "level": scene["level"],
        "images": [{"bytes": png, "path": None}],
        "width": scene["width"],
        "height": scene["height"],
        "image_hash": None,
        "image_key": None,
        "question": scene["question"],
        "choices": scene["choices"],
        "answer": scene["answer"],
        "answer_type": scene["answer_type"],
        "scene": json.dumps(scene, sort_keys=True, ensure_ascii=False),
        "caption": None,
        "caption_teacher": None,
    }


def generate_one(index: int, *, seed: int = 0, families: Sequence[str] | None = None, image_size: int = 112,
                 level: int | tuple[int, int] | None = None) -> dict:
    """The ``examples`` row number ``index`` of the synthetic source (columns of schemas.tables.EXAMPLES).

    ``level`` fixes the difficulty (1..3), draws it from a (low, high) range, or from 1..3 when None.
    """
    return _example(_check_int("index", index, 0), _check_int("seed", seed), _check_families(families),
                    _check_size(image_size), _check_level(level))


def generate(n: int, *, seed: int = 0, start: int = 0, families: Sequence[str] | None = None,
             image_size: int = 112, level: int | tuple[int, int] | None = None) -> Iterator[dict]:
    """Rows ``start .. start + n - 1``, one at a time. Arguments are checked now, rows made lazily."""
    n, start, seed = _check_int("n", n, 0), _check_int("start", start, 0), _check_int("seed", seed)
    fams, size, levels = _check_families(families), _check_size(image_size), _check_level(level)

    def rows() -> Iterator[dict]:
        for index in range(start, start + n):
            yield _example(index, seed, fams, size, levels)

    return rows()


def scenes(n: int, *, seed: int = 0, start: int = 0, families: Sequence[str] | None = None,
           image_size: int = 112, level: int | tuple[int, int] | None = None) -> Iterator[dict]:
    """The scene dicts of ``generate`` without drawing or encoding images (for text corpora)."""
    n, start, seed = _check_int("n", n, 0), _check_int("start", start, 0), _check_int("seed", seed)
    fams, size, levels = _check_families(families), _check_size(image_size), _check_level(level)
    return (_scene(index, seed, fams, size, levels)[1] for index in range(start, start + n))
