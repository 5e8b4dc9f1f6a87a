"""Verifications per second of ``curation.answers.verify.verify`` on a realistic mix of visual-QA answers.

Run (pinned to one core, single thread):

    .venv/bin/python benchmarks/verify_speed.py

The mix is what a GRPO rollout produces for chart/geometry/counting questions: option
letters, yes/no, integers with units, fractions, square roots, degrees, free text, word answers
inside a short sentence ("It is a triangle.", negations among the wrong ones), options given only
in the question text, multi-letter answers, and a few symbolic expressions, written inside
<answer> tags, in \\boxed{} or as an "answer is" phrase; about a quarter are wrong. Every value is distinct, so no cache is hit. The ``agree``
column is the share of verdicts equal to the label the case was built with.
"""
from __future__ import annotations

import argparse
import os
import random
import time
from typing import NamedTuple

from curation.answers.verify import verify


class Case(NamedTuple):
    response: str
    gold: str
    choices: list[str] | None
    answer_type: str | None
    correct: bool
    question: str | None = None


# ----------------------------------------------------------------------------- case makers


def _wrap(rng: random.Random, answer: str) -> str:
    think = "<think>Look at the figure, measure, and compare the options.</think>\n"
    style = rng.randrange(4)
    if style == 0:
        return f"{think}<answer>{answer}</answer>"
    if style == 1:
        return f"{think}<answer>\\boxed{{{answer}}}</answer>"
    if style == 2:
        return f"Step 1: read the chart.\nStep 2: compute.\nThe final answer is $\\boxed{{{answer}}}$."
    return f"{think}So the answer is {answer}."


def _letter(rng, i):
    options = [f"{v} cm" for v in rng.sample(range(2, 60), 4)]
    gold = rng.randrange(4)
    pick = gold if rng.random() < 0.75 else (gold + 1) % 4
    letter = "ABCD"[pick]
    form = rng.choice([letter, f"({letter})", f"{letter}.", f"Option {letter}", f"{letter}: {options[pick]}",
                       options[pick]])
    return _wrap(rng, form), "ABCD"[gold], options, None, pick == gold


def _yes_no(rng, i):
    gold = rng.choice(["yes", "no"])
    said = gold if rng.random() < 0.75 else {"yes": "no", "no": "yes"}[gold]
    form = rng.choice([said, said.capitalize() + ".", f"{said.capitalize()}, it is."])
    return _wrap(rng, form), gold, None, "yes_no", said == gold


def _integer_unit(rng, i):
    gold = rng.randint(1, 5000)
    said = gold if rng.random() < 0.75 else gold + rng.randint(1, 9)
    unit = rng.choice(["", " cm", "cm", " apples", " m^2", " \\text{ km}"])
    number = f"{said:,}" if said >= 1000 and rng.random() < 0.5 else str(said)
    return _wrap(rng, number + unit), str(gold), None, "integer", said == gold


def _fraction(rng, i):
    num, den = rng.randint(1, 40), rng.randint(2, 40)
    right = rng.random() < 0.75
    said_num = num if right else num + 1
    form = rng.choice([f"\\frac{{{said_num}}}{{{den}}}", f"\\dfrac{{{said_num}}}{{{den}}}",
                       f"{said_num}/{den}"])
    return _wrap(rng, form), f"\\frac{{{num}}}{{{den}}}", None, "number", right


def _sqrt(rng, i):
    inside, outside = rng.choice([2, 3, 5, 6, 7, 10, 11, 13]), rng.randint(1, 9)
    right = rng.random() < 0.75
    radicand = outside * outside * inside if right else outside * outside * inside + 1
    form = rng.choice([f"\\sqrt{{{radicand}}}", f"√{radicand}", f"sqrt({radicand})"])
    return _wrap(rng, form), f"{outside}\\sqrt{{{inside}}}", None, "math", right


def _degrees(rng, i):
    gold = rng.randint(1, 179)
    said = gold if rng.random() < 0.75 else 180 - gold if gold != 90 else 91
    form = rng.choice([f"{said}°", f"{said}^\\circ", f"{said}^{{\\circ}}", f"{said} degrees"])
    return _wrap(rng, form), f"{gold}^\\circ", None, "number", said == gold


def _text(rng, i):
    words = ["red", "blue", "green", "circle", "square", "triangle", "cat", "dog", "left", "right"]
    gold = rng.choice(words)
    said = gold if rng.random() < 0.75 else rng.choice([w for w in words if w != gold])
    return _wrap(rng, rng.choice([said, said.capitalize(), f"the {said}"])), gold, None, "text", said == gold


def _sentence(rng, i):
    words = ["red", "blue", "green", "circle", "square", "triangle", "cat", "dog"]
    gold = rng.choice(words)
    roll = rng.random()
    said = gold if roll < 0.75 else rng.choice([w for w in words if w != gold])
    negated = 0.75 <= roll < 0.85   # "It is not a triangle." is wrong even with the gold word in it
    if negated:
        said = gold
    subject = rng.choice(["It", "The shape", "The object in the image", "This"])
    article = "an " if said[0] in "aeiou" else rng.choice(["a ", "the ", ""])
    sentence = f"{subject} is {'not ' if negated else ''}{article}{said}."
    form = rng.choice([f"<think>Look at the figure.</think>\n<answer>{sentence}</answer>",
                       f"I looked at the image.\n{sentence}"])
    return form, gold, None, "text", said == gold and not negated


def _options_in_question(rng, i):
    values = [f"{v}" for v in rng.sample(range(2, 90), 4)]
    layout = rng.randrange(3)
    if layout == 0:
        listed = " ".join(f"({'ABCD'[k]}) {v}" for k, v in enumerate(values))
    elif layout == 1:
        listed = "\n" + "\n".join(f"{'ABCD'[k]}. {v}" for k, v in enumerate(values))
    else:
        listed = "\nOptions:\n" + "\n".join(f"{'ABCD'[k]}: {v}" for k, v in enumerate(values))
    question = f"<image>\nHow many dots are there in picture {i}? {listed}"
    gold = rng.randrange(4)
    pick = gold if rng.random() < 0.75 else (gold + 2) % 4
    form = rng.choice(["ABCD"[pick], f"({'ABCD'[pick]})", values[pick], f"There are {values[pick]} dots"])
    return _wrap(rng, form), "ABCD"[gold], None, None, pick == gold, question


def _multi(rng, i):
    n = rng.randint(4, 6)
    choices = [f"statement {i}.{k}" for k in range(n)]
    gold = sorted(rng.sample("ABCDEF"[:n], rng.randint(2, 3)))
    said = list(gold) if rng.random() < 0.75 else sorted(set(gold[:-1]) | {rng.choice("ABCDEF"[:n])})
    form = rng.choice([", ".join(said), "".join(said), " and ".join(said)])
    return _wrap(rng, form), rng.choice([", ".join(gold), "".join(gold)]), choices, None, said == gold


def _expression(rng, i):
    a = rng.randint(1, 9)
    right = rng.random() < 0.75
    said = f"(x+{a})^{2}" if right else f"(x+{a + 1})^{2}"
    return _wrap(rng, said), f"x^2+{2 * a}x+{a * a}", None, "math", right


KINDS = [  # (row name, maker, share of the mix)
    ("letter", _letter, 0.25), ("yes/no", _yes_no, 0.18), ("integer+unit", _integer_unit, 0.18),
    ("fraction", _fraction, 0.07), ("sqrt", _sqrt, 0.05), ("degrees", _degrees, 0.07), ("text", _text, 0.05),
    ("sentence", _sentence, 0.05), ("opts in quest.", _options_in_question, 0.05), ("multi letter", _multi, 0.03),
    ("expression*", _expression, 0.02),
]

# ----------------------------------------------------------------------------- run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="cases in the mix")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = random.Random(args.seed)
    verify("<answer>(x+1)^2</answer>", "x^2+2x+1")  # import math-verify and sympy outside the clock
    rows, total_n, total_s, total_agree = [], 0, 0.0, 0
    for name, make, share in KINDS:
        cases = [Case(*make(rng, i)) for i in range(max(1, int(args.n * share)))]
        started = time.perf_counter()
        verdicts = [verify(c.response, c.gold, choices=c.choices, answer_type=c.answer_type, question=c.question)
                    for c in cases]
        seconds = time.perf_counter() - started
        agree = sum(v.correct == c.correct for v, c in zip(verdicts, cases))
        rows.append((name, len(cases), len(cases) / seconds, agree / len(cases)))
        total_n, total_s, total_agree = total_n + len(cases), total_s + seconds, total_agree + agree

    print(f"{'answer kind':<14} {'n':>6} {'verif/s':>10} {'agree':>7}")
    for name, n, rate, agree in rows:
        print(f"{name:<14} {n:>6} {rate:>10,.0f} {agree:>7.1%}")
    print(f"{'overall':<14} {total_n:>6} {total_n / total_s:>10,.0f} {total_agree / total_n:>7.1%}")
    print("* symbolic expressions go to math-verify (sympy); everything else is read without it")


if __name__ == "__main__":
    main()
