"""Scene builders: ``build(rng, level, size) -> scene dict`` for each task family.

A scene holds everything needed to draw the image (pixel geometry) and to teach it (objects,
values, the question's parameters and the gold answer), so renderer and program teachers read
one record. Levels follow the CLEVR / FigureQA habit of growing the scene rather than changing
the question: more objects, more colours, distractors sharing an attribute, larger numbers.
"""
from __future__ import annotations

import random

from curation.synthetic.render import COLORS, SHAPES, font_size, text_size

LETTERS = "ABCDEFGH"
# Bar labels are short words, never single letters, so option letters and labels cannot collide.
BAR_WORDS = ("cat", "dog", "sun", "box", "cup", "hat", "pen", "egg", "fox", "bee",
             "jar", "key", "car", "bus", "toy", "pie", "ant", "bat", "oak", "ice")


def plural(shape: str) -> str:
    return shape + "s"


def position_word(x: float, y: float, width: int, height: int) -> str:
    row = ("top", "middle", "bottom")[min(2, int(3 * y / height))]
    col = ("left", "center", "right")[min(2, int(3 * x / width))]
    return "center" if (row, col) == ("middle", "center") else f"{row} {col}"


def base_scene(family: str, level: int, size: int) -> dict:
    return {"family": family, "level": level, "width": size, "height": size, "background": "white"}


def place_on_grid(rng: random.Random, k: int, grid: int, size: int, jitter: float) -> list[tuple[int, int]]:
    """k distinct cells of a grid x grid layout, as jittered pixel centres in reading order.

    Distinct cells keep objects apart; jitter stays below a cell's tenth-or-so so two objects in
    different columns (rows) are always clearly left/right (above/below) of each other.
    """
    cell = size / grid
    j = max(1, round(cell * jitter))
    centres = []
    for c in sorted(rng.sample(range(grid * grid), k)):
        row, col = divmod(c, grid)
        centres.append((round((col + 0.5) * cell) + rng.randint(-j, j),
                        round((row + 0.5) * cell) + rng.randint(-j, j)))
    return centres


def _objects(rng, attrs, grid, size) -> list[dict]:
    """Place (colour, shape) pairs on the grid; attrs are shuffled so order carries no hint."""
    attrs = list(attrs)
    rng.shuffle(attrs)
    r = max(4, round(size / grid * 0.32))
    return [{"color": c, "shape": s, "x": x, "y": y, "r": r, "where": position_word(x, y, size, size)}
            for (c, s), (x, y) in zip(attrs, place_on_grid(rng, len(attrs), grid, size, 0.1))]


# --------------------------------------------------------------------------- counting

_COUNTING = {
    1: dict(n=(2, 5), colors=2, shapes=2, grid=3, kinds=("total", "color_shape")),
    2: dict(n=(4, 8), colors=3, shapes=3, grid=4, kinds=("total", "color_shape", "color", "shape")),
    3: dict(n=(7, 12), colors=4, shapes=3, grid=4, kinds=("color_shape", "color", "shape", "total")),
}


def matches(obj: dict, color: str | None, shape: str | None) -> bool:
    return (color is None or obj["color"] == color) and (shape is None or obj["shape"] == shape)


def counting(rng: random.Random, level: int, size: int) -> dict:
    p = _COUNTING[level]
    colors = rng.sample(sorted(COLORS), p["colors"])
    shapes = rng.sample(SHAPES, p["shapes"])
    n = rng.randint(*p["n"])
    objects = _objects(rng, [(rng.choice(colors), rng.choice(shapes)) for _ in range(n)], p["grid"], size)
    kind = rng.choice(p["kinds"])
    target = rng.choice(objects)
    color = target["color"] if kind in ("color_shape", "color") else None
    shape = target["shape"] if kind in ("color_shape", "shape") else None
    noun = plural(shape) if shape else "shapes"
    question = f"How many {color} {noun} are there?" if color else f"How many {noun} are there?"
    count = sum(matches(o, color, shape) for o in objects)
    return {**base_scene("counting", level, size), "objects": objects,
            "query": {"kind": kind, "color": color, "shape": shape},
            "question": question, "choices": None, "answer": str(count), "answer_type": "integer"}


# --------------------------------------------------------------------------- spatial

_SPATIAL = {
    1: dict(n=(2, 2), grid=3, axes=("horizontal",)),
    2: dict(n=(3, 4), grid=3, axes=("horizontal", "vertical")),
    3: dict(n=(5, 6), grid=4, axes=("horizontal", "vertical")),
}
RELATIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


def spatial(rng: random.Random, level: int, size: int) -> dict:
    p = _SPATIAL[level]
    pairs = [(c, s) for c in sorted(COLORS) for s in SHAPES]
    a, b = rng.sample(pairs, 2)
    rest = [q for q in pairs if q not in (a, b)]
    if level == 3:  # distractors that share one attribute with the subject: the name must be read whole
        share = [q for q in rest if q[0] == a[0] or q[1] == a[1]]
        near = rng.sample(share, 2)
        distractors = near + rng.sample([q for q in rest if q not in near], rng.randint(*p["n"]) - 4)
    else:
        distractors = rng.sample(rest, rng.randint(*p["n"]) - 2)
    half_cell = size / p["grid"] / 2
    for _ in range(1000):
        objects = _objects(rng, [a, b] + distractors, p["grid"], size)
        sa = next(o for o in objects if (o["color"], o["shape"]) == a)
        sb = next(o for o in objects if (o["color"], o["shape"]) == b)
        axes = [ax for ax in p["axes"]
                if abs((sa["x"] - sb["x"]) if ax == "horizontal" else (sa["y"] - sb["y"])) >= half_cell]
        if axes:
            break
    else:  # pragma: no cover - a 3x3 grid gives distinct columns with probability 2/3 per try
        raise RuntimeError("could not place a spatial scene")
    axis = rng.choice(axes)
    if axis == "horizontal":
        true_rel, false_rel = ("left", "right") if sa["x"] < sb["x"] else ("right", "left")
    else:
        true_rel, false_rel = ("above", "below") if sa["y"] < sb["y"] else ("below", "above")
    answer = rng.choice(("yes", "no"))
    relation = true_rel if answer == "yes" else false_rel
    question = f"Is the {a[0]} {a[1]} {RELATIONS[relation]} the {b[0]} {b[1]}?"
    return {**base_scene("spatial", level, size), "objects": objects,
            "query": {"subject": {"color": a[0], "shape": a[1]}, "object": {"color": b[0], "shape": b[1]},
                      "relation": relation, "axis": axis},
            "question": question, "choices": None, "answer": answer, "answer_type": "yes_no"}


# --------------------------------------------------------------------------- chart

_CHART = {
    1: dict(bars=3, max=5, step=1, tick_every=1, kinds=("tallest", "value")),
    2: dict(bars=4, max=10, step=1, tick_every=2, kinds=("tallest", "shortest", "value")),
    3: dict(bars=5, max=20, step=2, tick_every=4, kinds=("tallest", "shortest", "value", "difference")),
}


def chart(rng: random.Random, level: int, size: int) -> dict:
    p = _CHART[level]
    n = p["bars"]
    values = rng.sample(range(p["step"], p["max"] + 1, p["step"]), n)  # distinct: one tallest, one shortest
    labels = rng.sample(BAR_WORDS, n)
    color = rng.choice(sorted(COLORS))
    fs = font_size(size, 0.085)
    x0 = text_size(str(p["max"]), fs)[0] + 5
    y0 = fs // 2 + 3
    zero_y = size - fs - 5
    x1 = size - 4
    slot = (x1 - x0) / n
    label_fs = fs  # shrink the bar labels until the widest fits its slot with a gap
    while label_fs > 7 and max(text_size(lab, label_fs)[0] for lab in labels) > slot - 3:
        label_fs -= 1
    bars = [{"label": lab, "value": v, "color": color,
             "x0": round(x0 + slot * (i + 0.2)), "x1": round(x0 + slot * (i + 0.8))}
            for i, (lab, v) in enumerate(zip(labels, values))]
    chart_box = {"plot": [x0, y0, x1, zero_y], "zero_y": zero_y, "unit_px": (zero_y - y0) / p["max"],
                 "max": p["max"], "step": p["step"], "tick_every": p["tick_every"], "font_size": fs,
                 "label_font_size": label_fs}
    kind = rng.choice(p["kinds"])
    choices = None
    if kind in ("tallest", "shortest"):
        pick = (max if kind == "tallest" else min)(bars, key=lambda b: b["value"])
        choices = rng.sample(labels, n)
        answer, answer_type = LETTERS[choices.index(pick["label"])], "multiple_choice"
        question, query = f"Which bar is the {kind}?", {"kind": kind, "bar": pick["label"]}
    elif kind == "value":
        pick = rng.choice(bars)
        answer, answer_type = str(pick["value"]), "integer"
        question, query = f"What is the value of bar {pick['label']}?", {"kind": kind, "bar": pick["label"]}
    else:
        hi, lo = sorted(rng.sample(bars, 2), key=lambda b: -b["value"])
        answer, answer_type = str(hi["value"] - lo["value"]), "integer"
        question = f"How much greater is the value of bar {hi['label']} than the value of bar {lo['label']}?"
        query = {"kind": kind, "bar": hi["label"], "other": lo["label"]}
    return {**base_scene("chart", level, size), "chart": chart_box, "bars": bars, "query": query,
            "question": question, "choices": choices, "answer": answer, "answer_type": answer_type}


# --------------------------------------------------------------------------- arithmetic

_ARITHMETIC = {
    1: dict(ops=("sum", "difference"), red=0),
    2: dict(ops=("sum", "difference", "product"), red=0),
    3: dict(ops=("sum", "difference", "product"), red=2),
}


def _operands(rng, op: str, level: int, k: int) -> list[int]:
    if op == "product":
        return [rng.randint(2, 9)] + [rng.randint(2, 12) for _ in range(k - 1)]
    hi = 9 if level == 1 else 30
    return rng.sample(range(1, hi + 1), k)  # distinct, so "larger minus smaller" is never 0


def arithmetic(rng: random.Random, level: int, size: int) -> dict:
    p = _ARITHMETIC[level]
    op = rng.choice(p["ops"])
    k = 3 if (level == 3 and op == "sum") else 2
    operands = _operands(rng, op, level, k)
    if p["red"]:  # level 3: the question is about the red numbers, blue ones are distractors
        colors = ["red"] * k + ["blue"] * (4 - k)
        values = operands + [rng.randint(1, 30) for _ in range(4 - k)]
    else:
        colors, values = ["black"] * k, operands
    items = list(zip(values, colors))
    rng.shuffle(items)
    fs = font_size(size, 0.22)
    numbers = [{"value": v, "color": c, "x": x, "y": y, "font_size": fs,
                "where": position_word(x, y, size, size)}
               for (v, c), (x, y) in zip(items, place_on_grid(rng, len(items), 2, size, 0.12))]
    which = "the red numbers" if p["red"] else "the numbers shown"
    if op == "sum":
        answer, question = sum(operands), f"What is the sum of {which}?"
    elif op == "product":
        answer, question = operands[0] * operands[1], f"What is the product of {which}?"
    else:
        two = "the two red numbers" if p["red"] else "the two numbers shown"
        answer = max(operands) - min(operands)
        question = f"What is the difference between {two} (larger minus smaller)?"
    return {**base_scene("arithmetic", level, size), "numbers": numbers,
            "query": {"op": op, "color": "red" if p["red"] else None},
            "question": question, "choices": None, "answer": str(answer), "answer_type": "integer"}
