"""Verify a model's final answer against the gold answer: one check for curation, rewards and eval.

``verify(response, gold, choices=..., answer_type=..., question=...)`` reads the final answer
(last ``<answer>`` block, else last ``\\boxed{}``, else an "answer is ..." phrase, else the last
line; never from inside ``<think>``) and compares it with fast readers: option letters, sets of
letters, yes/no and text (``curation.answers.readers``), numbers with units, percent and degrees
(``curation.answers.numeric``). Only real expressions go to math-verify (``parse``/``verify``, gold first:
it is not symmetric). Options written only in the question are parsed (``curation.answers.options``).
A gold that is itself a sentence (answer type ``open``) is never guessed at: the verdict is
``needs_judge``: rule-based rewards only hold for closed-form answers, so a judge must decide.

Time bound: every call returns within ``MAX_SECONDS`` from any thread. The readers are
linear-time string code and refuse answers over ``MAX_ANSWER_CHARS``; math-verify runs with its
SIGALRM timeouts off, behind pre-screens and a watched worker thread (``curation.answers.math_check``).
"""
from __future__ import annotations

import logging
import numbers
import re
import string
import time
from dataclasses import dataclass
from functools import lru_cache

from curation.answers import math_check, numeric, readers
from curation.answers.options import options_from_question
from schemas.tables import INTEGER, MATH, MULTI_CHOICE, MULTIPLE_CHOICE, NUMBER, OPEN, TEXT, YES_NO

MAX_SECONDS = 2.0          # the bound promised to callers, whatever the thread
MATH_SECONDS = 1.5         # what math-verify may use of it, counted from the start of the call
MAX_ANSWER_CHARS = 2000    # a longer "final answer" is a wall of text, not an answer
MAX_MATH_CHARS = 500
MAX_SHORT_GOLD_WORDS = readers.MAX_SENTENCE_GOLD_WORDS   # more words than this: ``open``


@dataclass(frozen=True)
class Verdict:
    """Outcome of one check; ``reason`` is a snake_case code counted by the pipelines.

    Reasons: match_choice, match_yes_no, match_number (fast reader), match_math (math-verify),
    match_text (also a short sentence stating a word gold: "It is a triangle."), match_choices
    (the stated set of options equals a multi-answer gold), mismatch, no_choice (no option
    letter/text could be read), no_answer, needs_judge (answer type ``open``: a sentence-length
    gold that no rule can check; never counted correct), empty_gold, bad_input, answer_too_long,
    unsafe_expression, timeout, error.
    """
    correct: bool
    extracted: str | None
    reason: str


# ----------------------------------------------------------------------------- format

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_ok(response: str) -> bool:
    """Exactly ``<think>...</think>`` then ``<answer>...</answer>``, only whitespace outside."""
    if not isinstance(response, str):
        return False
    s = response.strip()
    if any(s.count(tag) != 1 for tag in _TAGS) or not (s.startswith("<think>") and s.endswith("</answer>")):
        return False
    think_end, answer_start = s.index("</think>"), s.index("<answer>")
    return (think_end < answer_start and not s[think_end + 8:answer_start].strip()
            and bool(s[answer_start + 8:-9].strip()))


# ----------------------------------------------------------------------------- extraction

_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)
# possessive quantifiers: no backtracking over long whitespace runs in a 100k-character response
_PHRASE = re.compile(r"(?:final\s++answer|\banswer)\s*+(?:\*\*)?\s*+(?:is\b|:|=)\s*+:?[ \t]*+([^\n]*)",
                     re.IGNORECASE)
_HOPE = "i hope it is correct"
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")   # "5. This is because ..." keeps "5"
_SPECIAL_TOKENS = re.compile(r"<[|｜][^<>]{0,40}?[|｜]>|</s>|<eos>")


def _strip_thinking(text: str) -> str:
    """Drop <think> blocks; an unclosed one hides the rest, a stray </think> hides what precedes."""
    kept, start, depth = [], 0, 0
    for tag in _THINK_TAG.finditer(text):
        if tag.group(1):                      # </think>
            if depth == 0:                    # thinking began in the prompt (R1-style templates)
                kept = []
            depth = 0
            start = tag.end()
        elif depth == 0:
            kept.append(text[start:tag.start()])
            depth = 1
    if depth == 0:
        kept.append(text[start:])
    return "".join(kept)


def _tagged_answer(text: str) -> str | None:
    """Content of the last non-empty <answer> block ("" when blocks exist but are empty)."""
    found, start = None, None
    for tag in _ANSWER_TAG.finditer(text):
        if not tag.group(1):
            start = tag.end()
        elif start is not None:
            if text[start:tag.start()].strip() or found is None:
                found = text[start:tag.start()]
            start = None
    if start is not None and text[start:].strip():  # cut off before </answer>
        found = text[start:]
    return found


def _last_boxed(text: str) -> str | None:
    r"""Content of the last complete \boxed{...} or \fbox{...} (balanced braces)."""
    end = len(text)
    for _ in range(20):
        i = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if i < 0:
            return None
        name_end = j = i + (6 if text.startswith("\\boxed", i) else 5)
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            depth = 0
            for k in range(j, len(text)):
                depth += (text[k] == "{") - (text[k] == "}")
                if depth == 0:
                    return text[j + 1:k]
        elif name_end < j < len(text):        # "\boxed 5"
            return re.match(r"[^\s$]*", text[j:]).group(0)
        end = i
    return None


def _phrase_answer(text: str) -> str | None:
    last = None
    for m in _PHRASE.finditer(text):
        last = m
    if last is None:
        return None
    rest = last.group(1).strip()
    for _ in range(5):  # "Final Answer: The final answer is 5": the inner phrase wins
        inner = _PHRASE.search(rest)
        if inner is None or not inner.group(1).strip():
            break
        rest = inner.group(1).strip()
    if not rest:  # "Answer:\n5"
        rest = next((line for line in text[last.end():].splitlines() if line.strip()), "")
    return _SENTENCE_END.split(rest, maxsplit=1)[0]


def _tidy(answer: str | None) -> str | None:
    if answer is None:
        return None
    s = answer.strip().rstrip(".").rstrip()
    if s[-len(_HOPE):].lower() == _HOPE:  # Minerva's "The final answer is 5. I hope it is correct."
        s = s[:-len(_HOPE)].rstrip()
    s = s.strip().strip("*_`").strip().rstrip(".").rstrip()
    return s or None


def _reduce(text: str) -> str:
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    phrase = _phrase_answer(text)
    return phrase if phrase else text


def extract_answer(response: str) -> str | None:
    """The final answer in a response, or None. Text inside <think> never counts."""
    return _final_answer(response)[0]


def _final_answer(response: str) -> tuple[str | None, bool]:
    """(answer, stated): stated is False when the answer is only the last line of untagged text."""
    if not isinstance(response, str) or not response.strip():
        return None, False
    text = _strip_thinking(_SPECIAL_TOKENS.sub("", response))
    tagged = _tagged_answer(text)
    if tagged is not None:
        return _tidy(_reduce(tagged)), True
    boxed = _last_boxed(text)
    if boxed is not None:
        return _tidy(boxed), True
    phrase = _phrase_answer(text)
    if phrase:
        return _tidy(phrase), True
    lines = [line for line in text.splitlines() if line.strip()]
    return (_tidy(re.sub(r"^\s*[-*•]\s+", "", lines[-1])) if lines else None), False  # "- 5" is a bullet


# ----------------------------------------------------------------------------- verify

_LONE_LETTER = re.compile(r"\(?[A-H]\)?\.?")
_MATH_HINT = re.compile(r"\d|\\[a-zA-Z]|[\^_=+*/√π∞<>]")
_NUMERIC_TYPES = (INTEGER, NUMBER, MATH)


def _as_text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Number):
        return str(value)
    return None


def _as_choices(choices) -> list[str] | None:
    if choices is None or isinstance(choices, (str, bytes)):
        return None
    try:
        options = [_as_text(c) for c in choices]
    except TypeError:
        return None
    if not options or None in options or len(options) > 26:
        return None
    return readers.strip_choice_labels(options)


_SENTENCE_WORD = re.compile(r"(?<![\\\w])(?:[A-Za-z]{2,}|a|I)(?:['’][a-z]+)?(?![\w{])")


def _is_sentence(gold: str) -> bool:
    """More than ``MAX_SHORT_GOLD_WORDS`` words of prose; "x + y + z" or "\\frac{a}{b}" are not words."""
    return len(_SENTENCE_WORD.findall(gold)) > MAX_SHORT_GOLD_WORDS


def answer_type_for_gold(gold, choices=None) -> str:
    """The answer type a gold answer implies: multiple_choice, multi_choice, yes_no, integer,
    number, math, text, or ``open`` for a sentence-length gold (a judge must decide those).

    With choices, a letter or an option's text is ``multiple_choice`` and several letters are
    ``multi_choice``; a bare letter without choices is ``text`` (a point "C" is not an option).
    """
    text = _as_text(gold)
    if text is not None and ("<answer>" in text.lower() or "\\boxed" in text or "\\fbox" in text):
        text = extract_answer(text)
    if not text or not text.strip():
        return TEXT
    text, options = text.strip(), _as_choices(choices)
    if options:
        letters = string.ascii_uppercase[:len(options)]
        if readers.gold_choice(text, options, letters) is not None:
            return MULTIPLE_CHOICE
        if readers.gold_letter_set(text, letters) is not None:
            return MULTI_CHOICE
    if readers.gold_yes_no(text) is not None:
        return YES_NO
    number = numeric.read_number(text)
    if number is not None:
        integral = number.radicand == 1 and number.coef.denominator == 1 and not number.decimal
        return INTEGER if integral and not number.percent else NUMBER
    if _is_sentence(text):
        return OPEN
    return MATH if _MATH_HINT.search(text) else TEXT


@lru_cache(maxsize=4096)   # k rollouts of one prompt share one question
def _question_options(question: str) -> tuple[str, ...] | None:
    parsed = options_from_question(question)
    return tuple(parsed[1]) if parsed else None


def verify(response: str, gold: str, *, choices: list[str] | None = None,
           answer_type: str | None = None, question: str | None = None) -> Verdict:
    """Is the final answer in ``response`` the ``gold`` answer? Never raises, returns in MAX_SECONDS.

    ``answer_type`` (multiple_choice, multi_choice, yes_no, integer, number, math, text, open)
    is a hint; None infers it from ``gold`` and ``choices``. When ``choices`` is None and
    ``question`` lists options ("(A) 3 (B) 5"), those options are used. Percent: "25%" matches
    gold "25" and "0.25", a bare "0.25" does not match "25". Units are dropped, not converted
    ("5 m" == "5"). ``open`` (or a sentence-length gold without a hint) gives ``needs_judge``.
    """
    started = time.monotonic()
    extracted = None
    try:
        if response is not None and not isinstance(response, str):
            return Verdict(False, None, "bad_input")
        extracted, stated = _final_answer(response) if response else (None, False)
        gold_text = _as_text(gold)
        if gold_text is None and gold is not None:
            return Verdict(False, extracted, "bad_input")
        if gold_text and ("<answer>" in gold_text.lower() or "\\boxed" in gold_text or "\\fbox" in gold_text):
            gold_text = extract_answer(gold_text)
        if not gold_text or not gold_text.strip():
            return Verdict(False, extracted, "empty_gold")
        if extracted is None:
            return Verdict(False, None, "no_answer")
        if len(extracted) > MAX_ANSWER_CHARS:
            return Verdict(False, extracted, "answer_too_long")
        kind = answer_type.strip().lower() if isinstance(answer_type, str) else None
        options = _as_choices(choices)
        if options is None and choices is None and isinstance(question, str):
            options = list(parsed) if (parsed := _question_options(question)) else None
        gold_text = gold_text.strip()
        if kind == OPEN or (kind is None and _is_sentence(gold_text)
                            and answer_type_for_gold(gold_text, options) == OPEN):
            return Verdict(False, extracted, "needs_judge")
        return _compare(extracted, stated, gold_text, options, kind, started)
    except Exception:
        logging.getLogger(__name__).debug("verify failed", exc_info=True)
        return Verdict(False, extracted, "error")


def _compare(answer: str, stated: bool, gold: str, choices: list[str] | None, kind: str | None,
             started: float) -> Verdict:
    letters = string.ascii_uppercase[:max(8, len(choices or ()))]
    if (kind in (MULTIPLE_CHOICE, MULTI_CHOICE) or choices
            or (kind is None and _LONE_LETTER.fullmatch(numeric.plain(gold)))):
        verdict = _compare_choice(answer, stated, gold, choices, kind, letters)
        if verdict is not None:
            return verdict

    polarity = readers.read_yes_no(gold) if kind == YES_NO else readers.gold_yes_no(gold)
    if polarity is not None:
        said = readers.read_yes_no(answer)
        return Verdict(said == polarity, answer, "match_yes_no" if said == polarity else "mismatch")

    gold_number = numeric.read_number(gold)
    if kind in _NUMERIC_TYPES or gold_number is not None or (kind != TEXT and _MATH_HINT.search(gold)):
        return _compare_math(answer, gold, gold_number, started)

    if readers.normalize_text(answer) == readers.normalize_text(gold) or readers.sentence_states(answer, gold):
        return Verdict(True, answer, "match_text")
    return Verdict(False, answer, "mismatch")


def _compare_choice(answer: str, stated: bool, gold: str, choices: list[str] | None, kind: str | None,
                    letters: str) -> Verdict | None:
    """One option letter, or (multi_choice) a set of them; None when the gold names no option."""
    gold_letter = readers.gold_choice(gold, choices, letters)
    if gold_letter is not None and kind != MULTI_CHOICE:
        picked = readers.read_choice(answer, choices, letters, stated=stated)
        if picked is None:
            return Verdict(False, answer, "no_choice")
        return Verdict(picked == gold_letter, answer, "match_choice" if picked == gold_letter else "mismatch")
    option_letters = letters[:len(choices)] if choices else letters
    gold_set = readers.gold_letter_set(gold, option_letters)
    if gold_set is None and gold_letter is not None:
        gold_set = frozenset(gold_letter)
    if gold_set is None:
        return None
    picked_set = readers.read_letter_set(answer, choices, option_letters, stated=stated)
    if picked_set is None:
        return Verdict(False, answer, "no_choice")
    return Verdict(picked_set == gold_set, answer, "match_choices" if picked_set == gold_set else "mismatch")


def _compare_math(answer: str, gold: str, gold_number, started: float) -> Verdict:
    number = numeric.read_number(answer)
    if number is None and gold_number is not None:
        number = numeric.sole_number(answer)
    if gold_number is not None and number is not None:
        same = numeric.numbers_equal(gold_number, number)
        return Verdict(same, answer, "match_number" if same else "mismatch")
    if "".join(answer.split()) == "".join(gold.split()):
        return Verdict(True, answer, "match_text")

    gold_in, answer_in = math_check.latex_input(gold), math_check.latex_input(answer)
    if len(answer_in) > MAX_MATH_CHARS or len(gold_in) > MAX_MATH_CHARS:
        return Verdict(False, answer, "answer_too_long")
    if math_check.too_costly(answer_in) or math_check.too_costly(gold_in):
        return Verdict(False, answer, "unsafe_expression")
    try:
        same = math_check.equivalent(gold_in, answer_in, deadline=started + MATH_SECONDS)
    except math_check.TimedOut:
        return Verdict(False, answer, "timeout")
    if same:
        return Verdict(True, answer, "match_math")
    if not _MATH_HINT.search(gold) and readers.normalize_text(answer) == readers.normalize_text(gold):
        return Verdict(True, answer, "match_text")
    return Verdict(False, answer, "mismatch")
