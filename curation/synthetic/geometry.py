"""Geometry scenes in the spirit of Geometry3K: a right triangle with two labelled sides (find the
third, an exact surd) and a triangle with two labelled angles (find the third). Vertex names,
which side or angle is asked, mirroring, scale and position vary so few images repeat."""
from __future__ import annotations

import math
import random

from curation.synthetic.families import base_scene
from curation.synthetic.render import font_size, text_size

_TRIPLES = {1: [(3, 4), (6, 8)], 2: [(3, 4), (6, 8), (5, 12), (8, 6)],
            3: [(5, 12), (8, 15), (9, 12), (12, 16), (7, 24), (20, 21)]}
_LEG_RANGE = {1: (1, 9), 2: (2, 12), 3: (3, 20)}
_HYP_RANGE = {2: (3, 12), 3: (5, 20)}  # "find a leg" questions start at level 2
_NAMES = ("ABC", "PQR", "XYZ", "DEF", "KLM", "STU")
# Angles: (multiple of, smallest angle allowed, largest labelled angle)
_ANGLES = {1: (10, 30, 80), 2: (5, 25, 100), 3: (1, 20, 110)}


def simplify_sqrt(n: int) -> str:
    """sqrt(n) as LaTeX in simplest radical form: 25 -> '5', 13 -> '\\sqrt{13}', 20 -> '2\\sqrt{5}'."""
    assert n > 0, "simplify_sqrt needs a positive integer"
    k = max(f for f in range(1, math.isqrt(n) + 1) if n % (f * f) == 0)
    m = n // (k * k)
    if m == 1:
        return str(k)
    return f"\\sqrt{{{m}}}" if k == 1 else f"{k}\\sqrt{{{m}}}"


def _unit(dx: float, dy: float) -> tuple[float, float]:
    d = math.hypot(dx, dy) or 1.0
    return dx / d, dy / d


def _fit(rng: random.Random, points: list[tuple[float, float]], size: int, margin: float) -> list[list[int]]:
    """Scale points (y up) into the image box (y down) at 80-100% of the room, at a random offset."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    room = size - 2 * margin
    k = min(room / w, room / h) * rng.uniform(0.8, 1.0)
    ox = margin + rng.uniform(0, room - k * w) - k * min(xs)
    oy = size - margin - rng.uniform(0, room - k * h) + k * min(ys)
    return [[round(ox + k * x), round(oy - k * y)] for x, y in points]


def _right_sides(rng: random.Random, level: int) -> tuple[dict, str]:
    """Side lengths {vertical, horizontal, hypotenuse} (None = unknown) and the unknown side."""
    if level == 1 or rng.random() < 0.7:
        if rng.random() < 0.4:
            a, b = rng.choice(_TRIPLES[level])
        else:
            a, b = (rng.randint(*_LEG_RANGE[level]) for _ in range(2))
        a, b = (b, a) if rng.random() < 0.5 else (a, b)
        return {"vertical": a, "horizontal": b, "hypotenuse": None}, "hypotenuse"
    if rng.random() < 0.4:
        a, b = rng.choice(_TRIPLES[level])
        c = math.isqrt(a * a + b * b)
    else:
        c = rng.randint(*_HYP_RANGE[level])
        a = rng.randint(1, c - 1)
    known, unknown = ("vertical", "horizontal") if rng.random() < 0.5 else ("horizontal", "vertical")
    return {known: a, unknown: None, "hypotenuse": c}, unknown


def _right_triangle(rng: random.Random, level: int, size: int) -> dict:
    sides, unknown = _right_sides(rng, level)
    known = {k: v for k, v in sides.items() if v is not None}
    if unknown == "hypotenuse":
        length = {"vertical": known["vertical"], "horizontal": known["horizontal"]}
        square = known["vertical"] ** 2 + known["horizontal"] ** 2
    else:
        square = known["hypotenuse"] ** 2 - sum(v for k, v in known.items() if k != "hypotenuse") ** 2
        length = {k: known.get(k) or math.sqrt(square) for k in ("vertical", "horizontal")}
    text = {k: str(v) if v is not None else "?" for k, v in sides.items()}
    fs = font_size(size, 0.1)
    mirrored = rng.random() < 0.5  # right angle at the bottom right instead of the bottom left
    leg_label = text_size(text["vertical"], fs)[0] + 8  # room for the vertical leg's label on its side
    left, right = (fs, leg_label) if mirrored else (leg_label, fs)
    top, bottom = fs // 2 + 4, fs + 8
    box_w, box_h = size - left - right, size - top - bottom
    k = min(box_w / length["horizontal"], box_h / length["vertical"]) * rng.uniform(0.8, 1.0)
    # Not to scale for extreme leg ratios: a sliver of a triangle would be unreadable.
    w, h = max(length["horizontal"] * k, 0.4 * box_w), max(length["vertical"] * k, 0.4 * box_h)
    dx, dy = rng.uniform(0, box_w - w), rng.uniform(0, box_h - h)
    yb = top + box_h - dy
    xc = left + box_w - dx if mirrored else left + dx
    sx = -1 if mirrored else 1
    c, bv, av = (xc, yb), (xc + sx * w, yb), (xc, yb - h)
    verts = [[round(x), round(y)] for x, y in (c, bv, av)]
    m = max(4, round(size * 0.05))
    xc, yb = verts[0]
    marker = [[xc + sx * m, yb], [xc + sx * m, yb - m], [xc, yb - m]]
    cx, cy = sum(p[0] for p in verts) / 3, sum(p[1] for p in verts) / 3
    hx, hy = (bv[0] + av[0]) / 2, (bv[1] + av[1]) / 2
    ux, uy = _unit(hx - cx, hy - cy)
    labels = [
        {"text": text["vertical"], "x": round(xc - sx * leg_label / 2), "y": round(yb - h / 2),
         "names": "vertical"},
        {"text": text["horizontal"], "x": round(xc + sx * w / 2), "y": round(yb + fs * 0.5 + 4),
         "names": "horizontal"},
        {"text": text["hypotenuse"], "x": round(hx + ux * fs), "y": round(hy + uy * fs),
         "names": "hypotenuse"},
    ]
    triangle = {"kind": "right", "sides": sides, "unknown": unknown, "vertices": verts,
                "right_angle_marker": marker, "right_angle_at": "bottom right" if mirrored else "bottom left",
                "labels": labels, "font_size": fs}
    question = ("What is the length of the hypotenuse?" if unknown == "hypotenuse"
                else "What is the length of the leg marked with a question mark?")
    return {"triangle": triangle, "query": {"kind": unknown, "square": square},
            "question": question, "answer": simplify_sqrt(square), "answer_type": "math"}


def _labels_clash(labels: list[dict], fs: int, size: int) -> bool:
    """True when two labels overlap or one leaves the image."""
    boxes = []
    for label in labels:
        w, h = text_size(label["text"], fs)
        x, y = label["x"], label["y"]
        boxes.append((x - w / 2 - 1, y - h / 2 - 1, x + w / 2 + 1, y + h / 2 + 1))
    if any(b[0] < 0 or b[1] < 0 or b[2] > size or b[3] > size for b in boxes):
        return True
    return any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
               for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _angle_triangle(rng: random.Random, level: int, size: int) -> dict:
    for _ in range(100):  # a small or flat draw can crowd its labels: draw again
        part = _angle_triangle_once(rng, level, size)
        if not _labels_clash(part["triangle"]["labels"], part["triangle"]["font_size"], size):
            break
    return part


def _angle_triangle_once(rng: random.Random, level: int, size: int) -> dict:
    mult, lo, hi = _ANGLES[level]
    while True:
        alpha, beta = (mult * rng.randint(-(-lo // mult), hi // mult) for _ in range(2))
        gamma = 180 - alpha - beta
        if gamma < lo:
            continue
        ra, rb = math.radians(alpha), math.radians(beta)
        ac = math.sin(rb) / math.sin(ra + rb)  # law of sines with a base of 1
        cx = ac * math.cos(ra)
        # height / width of the drawn triangle: neither a sliver nor a needle, so the labels fit
        if 0.4 <= ac * math.sin(ra) / (max(1.0, cx) - min(0.0, cx)) <= 1.6:
            break
    names = rng.choice(_NAMES)
    unknown = rng.randrange(3)
    fs = font_size(size, 0.1)
    verts = _fit(rng, [(0.0, 0.0), (1.0, 0.0), (ac * math.cos(ra), ac * math.sin(ra))], size, fs + 6)
    cx, cy = sum(p[0] for p in verts) / 3, sum(p[1] for p in verts) / 3
    labels = []
    for i, (name, degrees) in enumerate(zip(names, (alpha, beta, gamma))):
        p, q, r = verts[i], verts[(i + 1) % 3], verts[(i + 2) % 3]
        ux, uy = _unit(p[0] - cx, p[1] - cy)
        labels.append({"text": name, "x": round(p[0] + ux * (fs - 1)), "y": round(p[1] + uy * (fs - 1)),
                       "names": f"vertex {name}"})
        if i == unknown:  # the asked angle carries only its vertex letter
            continue
        # angle value on the bisector, far enough in that it sits between the two sides
        u1, u2 = _unit(q[0] - p[0], q[1] - p[1]), _unit(r[0] - p[0], r[1] - p[1])
        bx, by = _unit(u1[0] + u2[0], u1[1] + u2[1])
        half = math.acos(max(-1.0, min(1.0, u1[0] * u2[0] + u1[1] * u2[1]))) / 2
        shortest = min(math.dist(p, q), math.dist(p, r))
        d = min(max(fs * 1.6, 0.9 * fs / max(math.sin(half), 1e-3)), 0.55 * shortest)
        labels.append({"text": f"{degrees}°", "x": round(p[0] + bx * d), "y": round(p[1] + by * d),
                       "names": f"angle {name}"})
    known = {n: d for i, (n, d) in enumerate(zip(names, (alpha, beta, gamma))) if i != unknown}
    triangle = {"kind": "angles", "names": list(names), "angles": known, "unknown": names[unknown],
                "vertices": verts, "labels": labels, "font_size": fs}
    return {"triangle": triangle, "query": {"kind": "angle", "angle": names[unknown]},
            "question": f"What is the measure of angle {names[unknown]} in degrees?",
            "answer": str((alpha, beta, gamma)[unknown]), "answer_type": "number"}


def geometry(rng: random.Random, level: int, size: int) -> dict:
    part = (_right_triangle if rng.random() < 0.5 else _angle_triangle)(rng, level, size)
    return {**base_scene("geometry", level, size), **part, "choices": None}
