"""Read numeric answers as people write them: integers, decimals, fractions, surds, words.

"5 cm", "1,234", "−3", "\\dfrac{1}{2}", "2\\sqrt{3}", "√13", "65°", "25%", "twenty-one" and
"x = 5" all read as exact values (``Fraction`` times a square-free root) in pure string code,
so ``verify`` needs math-verify only for real expressions. Units are dropped, never converted.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

# ----------------------------------------------------------------------------- LaTeX clean-up

WRAPPERS = ("boxed", "fbox", "text", "textbf", "textit", "textrm", "mathrm", "mathbf", "mathit",
             "mbox", "operatorname", "displaystyle")


def unwrap_command(text: str, name: str) -> str:
    r"""Replace every ``\name{X}`` by `` X `` (balanced braces; an unclosed one runs to the end)."""
    head = "\\" + name
    out, i = [], 0
    while (j := text.find(head, i)) >= 0:
        k = j + len(head)
        if k < len(text) and text[k].isalpha():  # \textbf is not \text
            out.append(text[i:k])
            i = k
            continue
        out.append(text[i:j])
        while k < len(text) and text[k] == " ":
            k += 1
        if k >= len(text) or text[k] != "{":
            i = k
            continue
        depth, m = 0, k
        while m < len(text):
            depth += (text[m] == "{") - (text[m] == "}")
            if depth == 0:
                break
            m += 1
        out.append(" " + text[k + 1:m] + " ")
        i = m + 1
    out.append(text[i:])
    return "".join(out)


_SUPERSCRIPTS = str.maketrans({"²": "^2", "³": "^3", "⁄": "/", "−": "-", "–": "-", "﹣": "-", "－": "-",
                               "×": "*", "·": "*", "÷": "/", "º": "°"})
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°")
_THIN_SPACE_IN_NUMBER = re.compile(r"(?<=\d)(?:\\[,!; ]|\{,\})(?=\d{3})")
_SPACING = re.compile(r"\\(?:[,!;: ]|quad|qquad)|~")
_SQRT = re.compile(r"(?:\\sqrt|\bsqrt|√)\s*(?:\{([^{}]*)\}|\(([^()]*)\)|([\d.]+|[a-zA-Z]))")
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
# a mixed number: "2\frac{1}{2}" and "2½" are 5/2 in an answer, not 2 * 1/2
_MIXED = re.compile(r"(?<![\d.])(\d+)\s*(?:\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}|([¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞]))")
_VULGAR = re.compile(r"[¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞]")


def _mixed(m: re.Match) -> str:
    whole = int(m.group(1))
    part = (Fraction(int(m.group(2)), int(m.group(3))) if m.group(4) is None
            else Fraction(unicodedata.numeric(m.group(4))).limit_denominator(10))
    if not 0 < part < 1:
        return m.group(0)
    value = whole + part
    return f"({value.numerator})/({value.denominator})"


def plain(text: str) -> str:
    r"""The text without LaTeX wrappers (\text{}, \boxed{}, ...) and ``$`` delimiters."""
    for name in WRAPPERS:
        if "\\" + name in text:
            text = unwrap_command(text, name)
    return text.replace("$", " ").strip()
_OPS = [(re.compile(r"\\(?:cdot|times)\b"), "*"), (re.compile(r"\\(?:left|right)\b"), ""),
        (re.compile(r"\\[()\[\]]"), " "), (re.compile(r"\\%"), "%"), (re.compile(r"\\\$"), "$")]


def clean_math(text: str) -> str:
    r"""Light LaTeX/unicode normalisation for the number reader.

    ``\dfrac``/``\tfrac``/``\frac`` become ``(a)/(b)``, every square-root spelling becomes
    ``√(x)``, degree marks become `` deg``, wrappers such as ``\text{}`` and ``\boxed{}`` are
    unwrapped, ``$`` delimiters and spacing commands are dropped, the unicode minus is ``-``.
    """
    s = _MIXED.sub(_mixed, text) if ("frac" in text or _VULGAR.search(text)) else text
    s = _VULGAR.sub(lambda m: f"({Fraction(unicodedata.numeric(m.group(0))).limit_denominator(10)})", s)
    s = unicodedata.normalize("NFKC", s.translate(_SUPERSCRIPTS))
    s = _THIN_SPACE_IN_NUMBER.sub("", s)
    for name in WRAPPERS:
        if "\\" + name in s:
            s = unwrap_command(s, name)
    s = _DEGREE.sub(" deg ", s)
    for pattern, repl in _OPS:
        s = pattern.sub(repl, s)
    s = _SPACING.sub(" ", s).replace("$", "")
    for _ in range(3):  # \frac{\sqrt{3}}{2}: the inner root goes first
        s = _SQRT.sub(lambda m: "√(" + next(g for g in m.groups() if g is not None).strip() + ")", s)
        s = _FRAC.sub(lambda m: f"({m.group(1) or m.group(2)})/({m.group(3) or m.group(4)})", s)
    return " ".join(s.split())


# ----------------------------------------------------------------------------- numbers

_SMALL = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
NUMBER_WORDS = {**_SMALL, **_TENS, "none": 0}
_NEGATIVE_WORDS = {"negative", "minus"}

# A unit tail is a few word tokens ("cm", "square meters", "km/h", "apples"); these words
# mean the answer is a relation or a hedge, not a unit, so the number cannot be read alone.
_NOT_UNITS = {"or", "and", "to", "plus", "minus", "times", "more", "less", "than", "not", "over", "by",
              "of", "divided", "multiplied", "squared", "cubed", "pi", "between", "approximately"}
_SINGLE_LETTER_UNITS = set("mgshlkvwjn")  # 5 m, 5 g, 5 s; 5x or 5 e are expressions
_PERCENT = {"%", "percent", "pct", "percentage"}

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_HEAD = re.compile(
    rf"(?P<s1>[-+])?\s*\(?\s*(?P<s2>[-+])?\s*(?P<coef>{_NUM})?\s*\*?\s*(?:√\(\s*(?P<rad>{_NUM})\s*\))?"
    rf"\s*\)?(?:\s*/\s*\(?\s*(?P<s3>[-+])?\s*(?P<den>{_NUM})\s*\)?)?")
# "x = 5", "AB = 5 cm", "\angle ABC = 65^\circ", "about 3.5": a name or a hedge word before the number
_PREFIX = re.compile(r"^(?:(?:approximately|approx\.?|about|around|roughly|exactly|≈|\\approx|=)\s*"
                     r"|[^=\d+\-*/^<>≈]{1,25}(?:=|\\approx|≈)\s*)", re.IGNORECASE)
_TAIL_TOKEN = re.compile(r"[a-zµμ]+\.?(?:\^\{?-?\d\}?)?|deg")


@dataclass(frozen=True)
class Number:
    """``coef * sqrt(radicand)`` with a square-free radicand, as written in an answer."""
    coef: Fraction
    radicand: int = 1
    decimal: bool = False   # written with a decimal point: compare rounded, as math-verify does
    percent: bool = False

    def value(self) -> float:
        return float(self.coef) * math.sqrt(self.radicand)


def _fraction(token: str) -> Fraction:
    return Fraction(token.replace(",", ""))


def _square_free(n: int) -> tuple[int, int] | None:
    """n = outside**2 * inside; None when n is too large to factor at once."""
    if n > 10**8:
        return None
    outside, inside, p = 1, n, 2
    while p * p <= inside:
        while inside % (p * p) == 0:
            inside //= p * p
            outside *= p
        p += 1
    return outside, inside


def _read_tail(tail: str) -> tuple[bool, int] | None:
    """(percent, scale) from the words after a number; None when they are not just units."""
    tail = re.sub(r"\s*\^\s*", "^", tail.strip().strip(".,;:"))
    words = tail.lower().replace("/", " ").split()
    scale = 1
    if words and words[0] in _SCALES:
        scale = _SCALES[words.pop(0)]
    if words and " ".join(words) in _PERCENT | {"per cent"}:
        return True, scale
    if len(words) > 4:
        return None
    for w in words:
        if w in _NOT_UNITS or w in NUMBER_WORDS or w in _SCALES or not _TAIL_TOKEN.fullmatch(w):
            return None
        if len(w.rstrip(".")) == 1 and w[0] not in _SINGLE_LETTER_UNITS:
            return None
    return False, scale


def words_number(text: str) -> tuple[int, str] | None:
    """Leading English number words ("twenty-one", "three hundred and five") and the rest."""
    tokens = text.lower().replace("-", " ").split()
    sign, total, current, used = 1, 0, 0, 0
    if tokens and tokens[0] in _NEGATIVE_WORDS:
        sign, used = -1, 1
    start, previous = used, ""
    for tok in tokens[start:]:
        if tok in _SMALL or tok == "none":
            current += _SMALL.get(tok, 0)
        elif tok in _TENS:
            current += _TENS[tok]
        elif tok == "hundred" and used > start:
            current = current * 100
        elif tok in _SCALES and used > start:
            total, current = total + current * _SCALES[tok], 0
        elif tok == "and" and previous in _SCALES:  # "one hundred and five", not "five and six"
            pass
        else:
            break
        used, previous = used + 1, tok
    if previous == "and":
        used -= 1
    if used == start:
        return None
    return sign * (total + current), " ".join(tokens[used:])


def read_number(text: str) -> Number | None:
    """A plain number, fraction or simple surd with optional units, %, degrees or sign.

    Reads "5", "-3", "1,234", "0.5", "1/2", "\\frac{1}{2}", "2\\sqrt{3}", "√13", "65°",
    "25%", "5 cm", "12 cm^2", "3 thousand", "twenty-one", "x = 5"; anything else is None.
    """
    if not isinstance(text, str) or len(text) > 200:
        return None
    s = clean_math(text)
    s = _PREFIX.sub("", s, count=1).strip()
    if s[:1] and s[0] in "€£¥":  # "$" went with the LaTeX delimiters
        s = s[1:].strip()
    if not s:
        return None
    m = _HEAD.match(s)
    head = s[:m.end()] if m else ""
    if not m or (m.group("coef") is None and m.group("rad") is None) or head.count("(") != head.count(")"):
        words = words_number(s)
        if words is None:
            return None
        value, rest = words
        tail = _read_tail(rest)
        if tail is None:
            return None
        return Number(Fraction(value * tail[1]), percent=tail[0])
    tail = _read_tail(s[m.end():])
    if tail is None:
        return None
    percent, scale = tail
    coef = _fraction(m.group("coef")) if m.group("coef") else Fraction(1)
    decimal = "." in (m.group("coef") or "") + (m.group("den") or "")
    negative = [m.group(k) for k in ("s1", "s2", "s3")].count("-") % 2 == 1
    radicand = 1
    if m.group("rad"):
        if "." in m.group("rad"):
            return None
        split = _square_free(int(m.group("rad").replace(",", "")))
        if split is None:
            return None
        coef, radicand = coef * split[0], split[1]
    if m.group("den"):
        den = _fraction(m.group("den"))
        if den == 0:
            return None
        coef /= den
    coef *= -scale if negative else scale
    if coef == 0:
        radicand = 1
    return Number(coef, radicand, decimal, percent)


def _same(a: Number, b: Number, a_scale: Fraction = Fraction(1), b_scale: Fraction = Fraction(1)) -> bool:
    if a.decimal or b.decimal:  # math-verify rounds floats to 6 places
        return round(a.value() * a_scale, 6) == round(b.value() * b_scale, 6)
    return a.radicand == b.radicand and a.coef * a_scale == b.coef * b_scale


def numbers_equal(gold: Number, pred: Number) -> bool:
    """Equal as written, or with a percent sign read as /100 (math-verify's rule).

    "25%" matches gold "25" and gold "0.25"; a bare "0.25" does not match gold "25".
    """
    if _same(gold, pred):
        return True
    if pred.percent and not gold.percent:
        return _same(gold, pred, b_scale=Fraction(1, 100))
    if gold.percent and not pred.percent:
        return _same(gold, pred, a_scale=Fraction(1, 100))
    return False


_NUMBER_TOKEN = re.compile(r"(?<![\w.^/])-?\d+(?:,\d{3})*(?:\.\d+)?%?(?![\w^/]|\.\d)")
_MATHY = re.compile(r"[=^*/+\\<>]")
NEGATION = re.compile(r"\b(?:not|never|isn't|aren't|doesn't|don't|can't|cannot|no)\b|n't\b")


def sole_number(sentence: str) -> Number | None:
    """The only number in a prose sentence ("There are 5 apples."); None if none, several or negated."""
    if _MATHY.search(sentence) or not re.search(r"[A-Za-z]{2}", sentence):
        return None
    words = [w.strip(".,;:!?()") for w in sentence.lower().replace("-", " ").split()]
    found, last = [], -2
    for i, word in enumerate(words):
        if _NUMBER_TOKEN.fullmatch(word):
            number = read_number(word)
        elif word in NUMBER_WORDS and word not in ("none", "one"):  # "the one on the left"
            number = Number(Fraction(NUMBER_WORDS[word]))
        else:
            continue
        if NEGATION.search(" ".join(words[max(0, i - 2):i])):  # "not 5", "isn't exactly 5"
            return None
        if not (found and i == last + 1 and number == found[-1]):  # "12 (twelve)" says it once
            found.append(number)
        last = i
    return found[0] if len(found) == 1 else None   # "3 cats and 3 dogs" is not an answer of 3
