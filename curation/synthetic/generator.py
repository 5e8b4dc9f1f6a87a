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


def _check_share(open_share: float) -> float:
    if isinstance(open_share, bool) or not isinstance(open_share, (int, float)) or not 0 <= open_share <= 1:
        raise ValueError(f"open_share must be a number in [0, 1], got {open_share!r}")
    return float(open_share)


def sentence_gold(answer: str, answer_type: str, choices: list[str] | None = None) -> str:
    """A short gold stated as a sentence, the way chat-style sets write answers: an ``open`` gold that no rule
    decides and a judge must (the program judge reads these: ``curation.generation.judge.program_verdict``)."""
    if answer_type == "yes_no":
        return "Yes, that is right." if answer == "yes" else "No, it is not."
    if answer_type == "multiple_choice" and choices:
        return f"The answer is the {choices[ord(answer) - 65]}."
    if answer_type == "math":
        return f"Working it out, the length is ${answer}$."
    return f"Looking at the picture, it is {answer}."


def _example(index: int, seed: int, families: tuple[str, ...], size: int, levels: tuple[int, int],
             open_share: float = 0.0) -> dict:
    source_id, scene = _scene(index, seed, families, size, levels)
    png = png_bytes(render(scene))
    answer, answer_type = scene["answer"], scene["answer_type"]
    if open_share and random.Random(f"{source_id}:open").random() < open_share:  # the scene keeps the short one
        answer, answer_type = sentence_gold(answer, answer_type, scene["choices"]), "open"
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
        "answer": answer,
        "answer_type": answer_type,
        "scene": json.dumps(scene, sort_keys=True, ensure_ascii=False),
        "caption": None,
        "caption_teacher": None,
    }


def generate_one(index: int, *, seed: int = 0, families: Sequence[str] | None = None, image_size: int = 112,
                 level: int | tuple[int, int] | None = None, open_share: float = 0.0) -> dict:
    """The ``examples`` row number ``index`` of the synthetic source (columns of schemas.tables.EXAMPLES).

    ``level`` fixes the difficulty (1..3), draws it from a (low, high) range, or from 1..3 when None.
    ``open_share``: the share of rows (drawn per row) whose gold is a sentence (``sentence_gold``, answer type
    ``open``); their scenes keep the short answer, so the program teachers still write verifiable traces.
    """
    return _example(_check_int("index", index, 0), _check_int("seed", seed), _check_families(families),
                    _check_size(image_size), _check_level(level), _check_share(open_share))


def generate(n: int, *, seed: int = 0, start: int = 0, families: Sequence[str] | None = None,
             image_size: int = 112, level: int | tuple[int, int] | None = None,
             open_share: float = 0.0) -> Iterator[dict]:
    """Rows ``start .. start + n - 1``, one at a time (``generate_one``'s options). Arguments are checked now,
    rows made lazily."""
    n, start, seed = _check_int("n", n, 0), _check_int("start", start, 0), _check_int("seed", seed)
    fams, size, levels = _check_families(families), _check_size(image_size), _check_level(level)
    share = _check_share(open_share)

    def rows() -> Iterator[dict]:
        for index in range(start, start + n):
            yield _example(index, seed, fams, size, levels, share)

    return rows()


def scenes(n: int, *, seed: int = 0, start: int = 0, families: Sequence[str] | None = None,
           image_size: int = 112, level: int | tuple[int, int] | None = None) -> Iterator[dict]:
    """The scene dicts of ``generate`` without drawing or encoding images (for text corpora)."""
    n, start, seed = _check_int("n", n, 0), _check_int("start", start, 0), _check_int("seed", seed)
    fams, size, levels = _check_families(families), _check_size(image_size), _check_level(level)
    return (_scene(index, seed, fams, size, levels)[1] for index in range(start, start + n))
