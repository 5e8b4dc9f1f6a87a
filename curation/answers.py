"""Read short answers the way people write them: option letters, yes/no, numbers, plain text.

Everything here is pure string work (no sympy), so it is fast and cannot hang; ``verify``
tries these readers first and calls math-verify only for real expressions. A reader returns
``None`` when it cannot read the answer with confidence: hedges ("3 or 4", "A and C") read
as nothing rather than as the first candidate, so a reward can never be earned by listing.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

# ----------------------------------------------------------------------------- LaTeX clean-up

_WRAPPERS = ("boxed", "fbox", "text", "textbf", "textit", "textrm", "mathrm", "mathbf", "mathit",
             "mbox", "operatorname", "displaystyle")
_TEXT_WRAPPERS = _WRAPPERS + ("overline", "underline", "mathsf", "mathcal", "texttt", "textsf", "emph")


def unwrap_command(text: str, name: str) -> str:
    r"""Replace every ``\name{X}`` by `` X `` (balanced braces); an unclosed one is dropped."""
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
_OPS = [(re.compile(r"\\(?:cdot|times)\b"), "*"), (re.compile(r"\\(?:left|right)\b"), ""),
        (re.compile(r"\\[()\[\]]"), " "), (re.compile(r"\\%"), "%"), (re.compile(r"\\\$"), "$")]


def clean_math(text: str) -> str:
    r"""Light LaTeX/unicode normalisation shared by the number reader and math-verify input.

    ``\dfrac``/``\tfrac``/``\frac`` become ``(a)/(b)``, every square-root spelling becomes
    ``√(x)``, degree marks become `` deg``, wrappers such as ``\text{}`` and ``\boxed{}`` are
    unwrapped, ``$`` delimiters and spacing commands are dropped, the unicode minus is ``-``.
    """
    s = unicodedata.normalize("NFKC", text.translate(_SUPERSCRIPTS))
    s = _THIN_SPACE_IN_NUMBER.sub("", s)
    for name in _WRAPPERS:
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

_SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
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
                     r"|[^=\d+\-*/^<>≈]{1,25}(?:=|\\approx|≈)\s*)", re.I)
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


def _read_tail(tail: str) -> tuple[bool, int, bool] | None:
    """(percent, scale, ok) for the words after a number; None when they are not units."""
    tail = re.sub(r"\s*\^\s*", "^", tail.strip().strip(".,;:"))
    words = tail.lower().replace("/", " ").split()
    percent, scale = False, 1
    if words and words[0] in _SCALES:
        scale = _SCALES[words.pop(0)]
    if words and " ".join(words) in _PERCENT | {"per cent"}:
        return True, scale, True
    if len(words) > 4:
        return None
    for w in words:
        if w in _NOT_UNITS or w in NUMBER_WORDS or w in _SCALES or not _TAIL_TOKEN.fullmatch(w):
            return None
        if len(w.rstrip(".")) == 1 and w[0] not in _SINGLE_LETTER_UNITS:
            return None
    return percent, scale, True


def _words_number(text: str) -> tuple[int, str] | None:
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
    if s.startswith("$") or s[:1] in "€£¥":
        s = s[1:].strip()
    if not s:
        return None
    m = _HEAD.match(s)
    if not m or (m.group("coef") is None and m.group("rad") is None) or s[:m.end()].count("(") != \
            s[:m.end()].count(")"):
        words = _words_number(s)
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
    percent, scale, _ = tail
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


def sole_number(sentence: str) -> Number | None:
    """The one number in a prose sentence ("There are 5 apples."); None if zero or several."""
    if _MATHY.search(sentence) or len(re.findall(r"[A-Za-z]{2,}", sentence)) < 2:
        return None
    words = sentence.lower().replace("-", " ").split()
    found = {read_number(t) for t in _NUMBER_TOKEN.findall(sentence)}
    found |= {Number(Fraction(NUMBER_WORDS[w.strip(".,;:!?")])) for w in words
              if w.strip(".,;:!?") in NUMBER_WORDS and w.strip(".,;:!?") not in ("none", "one")}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


# ----------------------------------------------------------------------------- text

_ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]")


def normalize_text(text: str) -> str:
    """Lower case, no LaTeX wrappers, punctuation or articles, number words as digits."""
    s = text
    for name in _TEXT_WRAPPERS:
        if "\\" + name in s:
            s = unwrap_command(s, name)
    s = unicodedata.normalize("NFKC", s.replace("$", " ")).lower()
    words = _PUNCT.sub(" ", s.replace("-", " ")).split()
    if len(words) > 1 and (spelled := _words_number(" ".join(words))) and not spelled[1]:
        return str(spelled[0])
    return " ".join(str(NUMBER_WORDS[w]) if w in NUMBER_WORDS and w != "none" else w
                    for w in words if w not in _ARTICLES)


# ----------------------------------------------------------------------------- yes / no

_POLARITY = {"yes": True, "true": True, "no": False, "false": False}
_NEGATION = re.compile(r"\b(?:not|never|isn't|aren't|doesn't|don't|can't|cannot|no)\b|n't\b")


def read_yes_no(text: str) -> bool | None:
    """True for yes/true, False for no/false, None when unclear or hedged ("yes or no")."""
    words = re.findall(r"[a-z']+", normalize_text(text) if "\\" in text else text.lower())
    if not words:
        return None
    if words[0] in _POLARITY and not (len(words) > 1 and words[1] in ("or", "and")):
        return _POLARITY[words[0]]
    if len(words) > 12:
        return None
    found = {_POLARITY[w] for w in words if w in _POLARITY}
    if len(found) != 1:
        return None
    polarity = found.pop()
    if polarity and _NEGATION.search(" ".join(words)):
        return None
    return polarity


def gold_yes_no(gold: str) -> bool | None:
    """A gold answer counts as yes/no only when it is exactly one of the four words."""
    return _POLARITY.get(normalize_text(gold))


# ----------------------------------------------------------------------------- option letters

_LONE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\].:]?")
_LABELLED = re.compile(r"(?:\(([A-Z])\)|([A-Z])\s*[.:)\]])\s*(\S.*)", re.S)
_KEYWORD = re.compile(r"\b(?:option|choice|answer)\b(?:\s++(?:is|was|would\s+be|should\s+be|will\s+be))?"
                      r"\s*+[:\-]?\s*+(?:\*\*)?\s*+[(\[]?([A-Za-z])[)\]]?(?![\w'])", re.I)
_IS_LETTER = re.compile(r"\b(?:is|be)\s+[(\[]?([A-Z])[)\]]?(?![\w'])")
_STANDALONE = re.compile(r"(?<![\w'])[(\[]?([A-Z])[)\]]?(?![\w'-])")


def strip_choice_labels(choices: list[str]) -> list[str]:
    """["A. 3 cm", "B. 5 cm"] -> ["3 cm", "5 cm"]; left alone unless every option is labelled."""
    stripped = []
    for i, choice in enumerate(choices):
        m = re.match(rf"\s*(?:\({chr(65 + i)}\)|{chr(65 + i)}\s*[.:)])\s*(.*)", choice, re.S)
        if not m:
            return list(choices)
        stripped.append(m.group(1))
    return stripped


def _choice_by_value(text: str, choices: list[str]) -> int | None:
    """Index of the option the answer states: the same text, or the same number ("5" for "5 cm")."""
    norm = normalize_text(text)
    if not norm:
        return None
    exact = [i for i, c in enumerate(choices) if normalize_text(c) == norm]
    if len(exact) == 1:
        return exact[0]
    number = read_number(text)
    if number is not None:
        same = [i for i, c in enumerate(choices) if (n := read_number(c)) is not None and numbers_equal(n, number)]
        return same[0] if len(same) == 1 else None
    return None


def _choice_inside(text: str, choices: list[str]) -> int | None:
    """Index of the one option a short answer contains ("It is dark red." for "dark red")."""
    options = [normalize_text(c) for c in choices]
    norm = normalize_text(text)
    if not norm or len(norm) > 3 * max(len(o) for o in options) + 40:
        return None
    padded = f" {norm} "
    inside = [i for i, o in enumerate(options) if o and f" {o} " in padded]
    # "dark red" contains "red": keep only options not contained in another hit
    inside = [i for i in inside if not any(options[i] != options[j] and options[i] in options[j] for j in inside)]
    return inside[0] if len(inside) == 1 else None


def read_choice(text: str, choices: list[str] | None, letters: str) -> str | None:
    """The option letter an answer picks, from its letter or (given choices) its text.

    A letter wins over option text when both are written ("B: 3 cm" reads as B).
    """
    s = text.strip().strip("*_` ").strip()
    if (m := _LONE.fullmatch(s)) and m.group(1).upper() in letters:
        return m.group(1).upper()
    if choices and (i := _choice_by_value(s, choices)) is not None:
        return letters[i]
    if (m := _LABELLED.match(s)) and (m.group(1) or m.group(2)) in letters:
        return m.group(1) or m.group(2)
    for pattern in (_KEYWORD, _IS_LETTER):
        hits = [h.group(1) for h in pattern.finditer(s)]
        hits = [h.upper() for h in hits if h.isupper() or _lone_after(s, h)]
        if hits and hits[-1] in letters:
            return hits[-1]
    if len(s) <= 60:
        hits = {h.group(1) for h in _STANDALONE.finditer(s) if h.group(1) in letters and not _is_article(s, h)}
        if len(hits) == 1:
            return hits.pop()
    if choices and (i := _choice_inside(s, choices)) is not None:
        return letters[i]
    return None


def _lone_after(text: str, letter: str) -> bool:
    """A lower-case letter counts only at the end of the answer ("option b."), not "is a dog"."""
    return re.search(rf"[(\[]?{letter}[)\]]?\s*[.!]?\s*$", text) is not None


def _is_article(text: str, hit: re.Match) -> bool:
    return hit.group(0) == "A" and re.match(r"\s+[a-z]", text[hit.end():]) is not None


def gold_choice(gold: str, choices: list[str] | None, letters: str) -> str | None:
    """The gold option letter: "B", "(B)", "B. 5 cm", or the option's text itself."""
    s = gold.strip()
    if (m := _LONE.fullmatch(s)) and m.group(1).upper() in letters:
        return m.group(1).upper()
    if (m := _LABELLED.match(s)) and (m.group(1) or m.group(2)) in letters:
        return m.group(1) or m.group(2)
    if choices and (i := _choice_by_value(s, choices)) is not None:
        return letters[i]
    return None
