"""Program teachers: exact captions and templated step-by-step solutions written from a scene.

Like CLEVR's functional programs or MAVIS's rule-based CoT, these teachers cannot hallucinate:
they read the scene the image was drawn from. The caption describes without solving; the
solution speaks about "the image" in the trace format ``<think>...</think><answer>...</answer>``.
With ``error_rate`` the solution makes one plausible slip (miscount, misread bar, flipped
relation, arithmetic slip) that always changes the final answer, so verifiers have realistic
wrong traces to reject.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator

from curation.synthetic.families import LETTERS, RELATIONS, matches, plural
from curation.synthetic.generator import scenes
from curation.synthetic.geometry import simplify_sqrt


def _scene(scene_json: str) -> dict:
    scene = json.loads(scene_json) if isinstance(scene_json, str) else scene_json
    if scene.get("family") not in _CAPTION:
        raise ValueError(f"not a synthetic scene (family {scene.get('family')!r})")
    return scene


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _n(count: int, color: str | None, shape: str | None) -> str:
    """'1 red circle', '3 squares', '2 blue shapes'."""
    noun = shape or "shape"
    return " ".join(w for w in (str(count), color, noun if count == 1 else plural(noun)) if w)


# --------------------------------------------------------------------------- captions

def _caption_objects(s: dict) -> str:
    parts = [f"{_a(o['color'])} {o['color']} {o['shape']} at the {o['where']} (x={o['x']}, y={o['y']})"
             for o in s["objects"]]
    return (f"A {s['width']}x{s['height']} image with a white background and flat coloured shapes. "
            f"Shapes in reading order: {'; '.join(parts)}.")


def _caption_chart(s: dict) -> str:
    c = s["chart"]
    bars = ", ".join(f"{b['label']} = {b['value']}" for b in s["bars"])
    return (f"A {s['width']}x{s['height']} bar chart on a white background with {len(s['bars'])} "
            f"{s['bars'][0]['color']} bars. The vertical axis runs from 0 to {c['max']} with gridlines every "
            f"{c['step']} and tick labels every {c['tick_every']}. Each bar has a word label under it. "
            f"Bars from left to right: {bars}.")


def _caption_numbers(s: dict) -> str:
    parts = [f"{n['value']} in {n['color']} at the {n['where']}" for n in s["numbers"]]
    return (f"A {s['width']}x{s['height']} image with a white background showing numbers in large digits: "
            f"{'; '.join(parts)}.")


def _caption_geometry(s: dict) -> str:
    t = s["triangle"]
    head = f"A {s['width']}x{s['height']} geometry diagram on a white background: "
    if t["kind"] == "right":
        sides = [f"the {k if k == 'hypotenuse' else k + ' leg'} is labelled "
                 + (str(t["sides"][k]) if t["sides"][k] is not None else "with a question mark")
                 for k in ("vertical", "horizontal", "hypotenuse")]
        return head + (f"a right triangle drawn in black, with the right angle marked by a small square at "
                       f"the {t['right_angle_at']}. {_sentence(_listing(sides))}.")
    v = t["names"]
    angles = [f"the angle at {n} is labelled {t['angles'][n]}°" if n in t["angles"]
              else f"the angle at {n} is not labelled" for n in v]
    return head + (f"triangle {''.join(v)} drawn in black, with vertex {v[0]} at the bottom left, {v[1]} at "
                   f"the bottom right and {v[2]} at the top. {_sentence(_listing(angles))}.")


_CAPTION = {"counting": _caption_objects, "spatial": _caption_objects, "chart": _caption_chart,
            "arithmetic": _caption_numbers, "geometry": _caption_geometry}


def caption_from_scene(scene_json: str) -> str:
    """An exact, dense description of the image: every object, label and value, but no solving."""
    s = _scene(scene_json)
    return _CAPTION[s["family"]](s)


# --------------------------------------------------------------------------- solutions

def _solve_counting(s: dict, slip: random.Random | None) -> tuple[str, str]:
    q, objs = s["query"], s["objects"]
    color, shape = q["color"], q["shape"]
    if q["kind"] == "total":
        groups = Counter(o["shape"] for o in objs)
        keys = [(None, sh) for sh in sorted(groups)]
        counts = {(None, sh): groups[sh] for sh in groups}
    elif q["kind"] == "color":
        groups = Counter(o["shape"] for o in objs if o["color"] == color)
        keys = [(color, sh) for sh in sorted(groups)]
        counts = {(color, sh): groups[sh] for sh in groups}
    elif q["kind"] == "shape":
        groups = Counter(o["color"] for o in objs if o["shape"] == shape)
        keys = [(c, shape) for c in sorted(groups)]
        counts = {(c, shape): groups[c] for c in groups}
    else:
        keys = [(color, shape)]
        counts = {(color, shape): sum(matches(o, color, shape) for o in objs)}
    if slip:  # miscount one group by one (never down to zero: the group would vanish from the trace)
        key = slip.choice(keys)
        counts[key] += 1 if counts[key] == 1 or slip.random() < 0.5 else -1
    total = sum(counts.values())
    listed = _listing([_n(counts[k], *k) for k in keys])
    if q["kind"] == "color_shape":
        near = Counter((o["color"], o["shape"]) for o in objs
                       if (o["color"] == color) != (o["shape"] == shape))
        near_groups = [_n(v, *k) for k, v in sorted(near.items())]
        others = f" The {_listing(near_groups)} do not count." if near else ""
        return f"The image shows {listed}.{others} So there are {total}.", str(total)
    what = {"total": "shapes", "color": f"{color} shapes", "shape": plural(shape or "")}[q["kind"]]
    sum_text = f" {' + '.join(str(counts[k]) for k in keys)} = {total}." if len(keys) > 1 else ""
    return f"The {what} in the image are {listed}.{sum_text} So there are {total}.", str(total)


def _solve_spatial(s: dict, slip: random.Random | None) -> tuple[str, str]:
    q = s["query"]
    name_a = f"{q['subject']['color']} {q['subject']['shape']}"
    name_b = f"{q['object']['color']} {q['object']['shape']}"
    oa = next(o for o in s["objects"] if matches(o, q["subject"]["color"], q["subject"]["shape"]))
    ob = next(o for o in s["objects"] if matches(o, q["object"]["color"], q["object"]["shape"]))
    if q["axis"] == "horizontal":
        first = oa["x"] < ob["x"]
        comparisons, relations = ("further left", "further right"), ("left", "right")
    else:
        first = oa["y"] < ob["y"]
        comparisons, relations = ("higher", "lower"), ("above", "below")
    if slip:  # misjudge which of the two is further along the axis
        first = not first
    i = 0 if first else 1
    fact = relations[i]
    text = (f"In the image, the {name_a} is at the {oa['where']} and the {name_b} is at the {ob['where']}. "
            f"The {name_a} is {comparisons[i]}, so it is {RELATIONS[fact]} the {name_b}")
    if fact == q["relation"]:
        return text + ".", "yes"
    return text + f", not {RELATIONS[q['relation']]} it.", "no"


def _solve_chart(s: dict, slip: random.Random | None) -> tuple[str, str]:
    q, step = s["query"], s["chart"]["step"]
    read = {b["label"]: b["value"] for b in s["bars"]}
    if q["kind"] in ("tallest", "shortest"):
        pick = (max if q["kind"] == "tallest" else min)(read, key=read.get)
        if slip:  # misread another bar past the true extreme
            wrong = slip.choice([lab for lab in read if lab != pick])
            read[wrong] = read[pick] + step if q["kind"] == "tallest" else max(0, read[pick] - step)
            pick = wrong
        values = ", ".join(f"{lab} {v}" for lab, v in read.items())
        letter = LETTERS[s["choices"].index(pick)]
        return (f"The bars in the image have values {values}. The {q['kind']} is {pick} with {read[pick]}, "
                f"which is option {letter}.", letter)
    if q["kind"] == "value":
        v = read[q["bar"]]
        if slip:  # off by one gridline, staying on the axis
            down = v + step > s["chart"]["max"] or (v - step > 0 and slip.random() < 0.5)
            v = v - step if down else v + step
        return (f"In the image, bar {q['bar']} reaches the gridline at {v} on the vertical axis. "
                f"So its value is {v}.", str(v))
    hi, lo = read[q["bar"]], read[q["other"]]
    diff = hi - lo
    if slip:
        diff += 1 if diff == 1 or slip.random() < 0.5 else -1
    return (f"In the image, bar {q['bar']} has value {hi} and bar {q['other']} has value {lo}. "
            f"{hi} - {lo} = {diff}.", str(diff))


def _solve_arithmetic(s: dict, slip: random.Random | None) -> tuple[str, str]:
    q = s["query"]
    nums = [n["value"] for n in s["numbers"] if q["color"] is None or n["color"] == q["color"]]
    if q["color"]:
        others = [f"{n['color']} {n['value']}" for n in s["numbers"] if n["color"] != q["color"]]
        head = (f"The {q['color']} numbers in the image are {_listing([str(v) for v in nums])}; "
                f"the {_listing(others)} {'is' if len(others) == 1 else 'are'} ignored.")
    else:
        head = f"The image shows the numbers {_listing([str(v) for v in nums])}."
    if q["op"] == "sum":
        result, expr = sum(nums), " + ".join(map(str, nums))
        if slip:
            result += 1 if slip.random() < 0.5 else -1
    elif q["op"] == "product":
        a, b = nums
        result, expr = a * b, f"{a} × {b}"
        if slip:  # one copy of a too many or too few, the classic times-table slip
            result += a if slip.random() < 0.5 else -a
    else:
        a, b = max(nums), min(nums)
        result, expr = a - b, f"{a} - {b}"
        if slip:
            result += 1 if result == 1 or slip.random() < 0.5 else -1
    return f"{head} {expr} = {result}.", str(result)


def _solve_geometry(s: dict, slip: random.Random | None) -> tuple[str, str]:
    t = s["triangle"]
    if t["kind"] == "right":
        sides, unknown = t["sides"], t["unknown"]
        if unknown == "hypotenuse":
            a, b = sides["vertical"], sides["horizontal"]
            given, sign, what = f"legs {a} and {b}", "+", "the hypotenuse"
        else:
            a = sides["hypotenuse"]
            b = next(v for k, v in sides.items() if k != "hypotenuse" and v is not None)
            given, sign, what = f"hypotenuse {a} and one leg {b}", "-", "the other leg"
        square = a * a + b * b if sign == "+" else a * a - b * b
        if slip:  # an addition slip under the root
            square += 1 if square == 1 or slip.random() < 0.5 else -1
        root = simplify_sqrt(square)
        chain = f"\\sqrt{{{square}}} = {root}" if root != f"\\sqrt{{{square}}}" else root
        return (f"The image shows a right triangle with {given}. By Pythagoras {what} is "
                f"\\sqrt{{{a}^2 {sign} {b}^2}} = \\sqrt{{{a * a} {sign} {b * b}}} = {chain}.", root)
    (n1, d1), (n2, d2) = t["angles"].items()
    x = t["unknown"]
    value = 180 - d1 - d2
    if slip:
        value += 10 if value <= 10 or slip.random() < 0.5 else -10
    return (f"The image shows triangle {''.join(t['names'])} with angle {n1} = {d1}° and angle {n2} = {d2}°. "
            f"The angles of a triangle sum to 180°, so angle {x} = 180 - {d1} - {d2} = {value}.", str(value))


_SOLVE = {"counting": _solve_counting, "spatial": _solve_spatial, "chart": _solve_chart,
          "arithmetic": _solve_arithmetic, "geometry": _solve_geometry}


def solution_from_scene(scene_json: str, *, error_rate: float = 0.0, rng: random.Random | None = None) -> str:
    """A short worked solution ``<think>...</think><answer>...</answer>``.

    With probability ``error_rate`` it makes one plausible mistake that changes the final answer.
    Without ``rng`` the draw is seeded from the scene, so the same scene gives the same trace.
    """
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate!r}")
    s = _scene(scene_json)
    slip = None
    if error_rate > 0:
        rng = rng or random.Random(json.dumps(s, sort_keys=True))
        slip = rng if rng.random() < error_rate else None
    body, answer = _SOLVE[s["family"]](s, slip)
    return f"<think>{body}</think><answer>{answer}</answer>"


def corpus(n: int = 2000, seed: int = 0) -> Iterator[str]:
    """Texts for training a small tokenizer: questions, options, captions, solutions, answers."""
    for s in scenes(n, seed=seed):
        yield s["question"]
        if s["choices"]:
            yield "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(s["choices"]))
        text = json.dumps(s, sort_keys=True, ensure_ascii=False)
        yield caption_from_scene(text)
        yield solution_from_scene(text)
        yield s["answer"]
