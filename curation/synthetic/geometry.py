"""Geometry scenes in the spirit of Geometry3K: a right triangle with labelled legs (find the
hypotenuse, an exact surd) and a triangle with two labelled angles (find the third)."""
from __future__ import annotations

import math
import random

from curation.synthetic.families import base_scene
from curation.synthetic.render import font_size, text_size

_TRIPLES = {1: [(3, 4), (6, 8)], 2: [(3, 4), (6, 8), (5, 12), (8, 6)],
            3: [(5, 12), (8, 15), (9, 12), (12, 16), (7, 24), (20, 21)]}
_LEG_RANGE = {1: (1, 5), 2: (2, 10), 3: (3, 20)}
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


def _fit(points: list[tuple[float, float]], size: int, margin: float) -> list[list[int]]:
    """Scale and centre points (y up) into the image box (y down), keeping the aspect ratio."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    k = min((size - 2 * margin) / w, (size - 2 * margin) / h)
    ox = (size - k * w) / 2 - k * min(xs)
    oy = (size + k * h) / 2 + k * min(ys)
    return [[round(ox + k * x), round(oy - k * y)] for x, y in points]


def _right_triangle(rng: random.Random, level: int, size: int) -> dict:
    if rng.random() < 0.4:
        a, b = rng.choice(_TRIPLES[level])
    else:
        a, b = (rng.randint(*_LEG_RANGE[level]) for _ in range(2))
    if rng.random() < 0.5:
        a, b = b, a
    fs = font_size(size, 0.1)
    mirrored = rng.random() < 0.5  # right angle at the bottom right instead of the bottom left
    leg_label = text_size(str(a), fs)[0] + 8  # room for the vertical leg's label on its side
    left, right = (fs, leg_label) if mirrored else (leg_label, fs)
    top, bottom = fs // 2 + 4, fs + 8
    box_w, box_h = size - left - right, size - top - bottom
    k = min(box_w / b, box_h / a)
    # Not to scale for extreme leg ratios: a sliver of a triangle would be unreadable.
    w, h = max(b * k, 0.4 * box_w), max(a * k, 0.4 * box_h)
    yb = top + box_h
    xc = left + box_w if mirrored else left
    sx = -1 if mirrored else 1
    c, bv, av = (xc, yb), (xc + sx * w, yb), (xc, yb - h)
    verts = [[round(x), round(y)] for x, y in (c, bv, av)]
    m = max(4, round(size * 0.05))
    marker = [[xc + sx * m, yb], [xc + sx * m, yb - m], [xc, yb - m]]
    cx, cy = sum(p[0] for p in verts) / 3, sum(p[1] for p in verts) / 3
    hx, hy = (bv[0] + av[0]) / 2, (bv[1] + av[1]) / 2
    ux, uy = _unit(hx - cx, hy - cy)
    labels = [
        {"text": str(a), "x": round(xc - sx * leg_label / 2), "y": round(yb - h / 2), "names": "vertical leg"},
        {"text": str(b), "x": round(xc + sx * w / 2), "y": round(yb + fs * 0.5 + 4), "names": "horizontal leg"},
        {"text": "?", "x": round(hx + ux * fs), "y": round(hy + uy * fs), "names": "hypotenuse"},
    ]
    triangle = {"kind": "right", "legs": [a, b], "vertices": verts, "right_angle_marker": marker,
                "right_angle_at": "bottom right" if mirrored else "bottom left",
                "labels": labels, "font_size": fs}
    return {"triangle": triangle, "query": {"kind": "hypotenuse", "sum_of_squares": a * a + b * b},
            "question": "What is the length of the hypotenuse?",
            "answer": simplify_sqrt(a * a + b * b), "answer_type": "math"}


def _angle_triangle(rng: random.Random, level: int, size: int) -> dict:
    mult, lo, hi = _ANGLES[level]
    while True:
        alpha, beta = (mult * rng.randint(-(-lo // mult), hi // mult) for _ in range(2))
        gamma = 180 - alpha - beta
        if gamma < lo:
            continue
        ra, rb = math.radians(alpha), math.radians(beta)
        ac = math.sin(rb) / math.sin(ra + rb)  # law of sines with AB = 1
        cx = ac * math.cos(ra)
        # height / width of the drawn triangle: neither a sliver nor a needle, so the labels fit
        if 0.4 <= ac * math.sin(ra) / (max(1.0, cx) - min(0.0, cx)) <= 1.6:
            break
    fs = font_size(size, 0.1)
    pa, pb, pc = _fit([(0.0, 0.0), (1.0, 0.0), (ac * math.cos(ra), ac * math.sin(ra))], size, fs + 6)
    cx, cy = (pa[0] + pb[0] + pc[0]) / 3, (pa[1] + pb[1] + pc[1]) / 3
    labels = []
    for name, p, q, r, text in (("A", pa, pb, pc, f"{alpha}°"), ("B", pb, pc, pa, f"{beta}°"),
                                ("C", pc, pa, pb, None)):
        ux, uy = _unit(p[0] - cx, p[1] - cy)
        labels.append({"text": name, "x": round(p[0] + ux * (fs - 1)), "y": round(p[1] + uy * (fs - 1)),
                       "names": f"vertex {name}"})
        if text is None:  # the asked angle carries only its vertex letter
            continue
        # angle value on the bisector, far enough in that it sits between the two sides
        u1, u2 = _unit(q[0] - p[0], q[1] - p[1]), _unit(r[0] - p[0], r[1] - p[1])
        bx, by = _unit(u1[0] + u2[0], u1[1] + u2[1])
        half = math.acos(max(-1.0, min(1.0, u1[0] * u2[0] + u1[1] * u2[1]))) / 2
        shortest = min(math.dist(p, q), math.dist(p, r))
        d = min(max(fs * 1.6, 0.9 * fs / max(math.sin(half), 1e-3)), 0.55 * shortest)
        labels.append({"text": text, "x": round(p[0] + bx * d), "y": round(p[1] + by * d),
                       "names": f"angle {name}"})
    triangle = {"kind": "angles", "angles": {"A": alpha, "B": beta}, "vertices": [pa, pb, pc],
                "labels": labels, "font_size": fs}
    return {"triangle": triangle, "query": {"kind": "angle", "angle": "C"},
            "question": "What is the measure of angle C in degrees?",
            "answer": str(gamma), "answer_type": "number"}


def geometry(rng: random.Random, level: int, size: int) -> dict:
    part = (_right_triangle if rng.random() < 0.5 else _angle_triangle)(rng, level, size)
    return {**base_scene("geometry", level, size), **part, "choices": None}
