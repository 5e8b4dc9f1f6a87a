"""Read short answers the way people write them: option letters, yes/no, plain text.

Everything here is pure string work (no sympy), so it is fast and cannot hang; numbers are read
by ``curation.answers.numeric``. A reader returns ``None`` when it cannot read the answer with confidence:
hedges ("yes or no", "A and C") read as nothing rather than as the first candidate, so a reward
can never be earned by listing. An option letter counts only where it is stated as the answer
(the letter alone, "(C)", "option C", "answer: C", a label "C. 5 cm"), never as a capital that
happens to end a sentence ("... the smallest C"). A multi-answer gold ("A, C") is compared as a
set of letters: the stated set must be exactly the gold set.
"""
from __future__ import annotations

import re
import unicodedata

from curation.answers.numeric import (
    NEGATION,
    NUMBER_WORDS,
    WRAPPERS,
    numbers_equal,
    plain,
    read_number,
    unwrap_command,
    words_number,
)

# ----------------------------------------------------------------------------- text

TEXT_WRAPPERS = WRAPPERS + ("overline", "underline", "mathsf", "mathcal", "texttt", "textsf", "emph")
_ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]")


def normalize_text(text: str) -> str:
    """Lower case, no LaTeX wrappers, punctuation or articles, number words as digits."""
    s = text
    for name in TEXT_WRAPPERS:
        if "\\" + name in s:
            s = unwrap_command(s, name)
    s = unicodedata.normalize("NFKC", s.replace("$", " ")).lower()
    words = _PUNCT.sub(" ", s.replace("-", " ")).split()
    if len(words) > 1 and (spelled := words_number(" ".join(words))) and not spelled[1]:
        return str(spelled[0])
    return " ".join(str(NUMBER_WORDS[w]) if w in NUMBER_WORDS and w != "none" else w
                    for w in words if w not in _ARTICLES)


# "It is a triangle.": the gold is what a short final clause says the subject is
_CLAUSE_BREAK = re.compile(r"[.;:!?,]\s+|\n")
_COPULAS = {"is", "are", "was", "were", "be"}
_CONTRACTED = {"it", "that", "this", "there", "here", "what", "which", "he", "she", "answer"}  # "it's"
MAX_SENTENCE_EXTRA_WORDS = 6   # "the shape in the picture is": a short sentence, not a paragraph
MAX_SENTENCE_GOLD_WORDS = 5    # longer golds are sentences themselves (answer type ``open``)


def sentence_states(answer: str, gold: str) -> bool:
    """Does a short final sentence state ``gold`` as its predicate ("The shape is red." for "red")?

    Conservative: the gold must end the last clause right after a copula ("is", "are", "was",
    "'s", "be"), the clause has at most ``MAX_SENTENCE_EXTRA_WORDS`` other words, and any
    negation in it ("is not", "isn't", "no") fails the match. "It is a red triangle" does not
    state "triangle", and "It is red or blue" does not state "blue".
    """
    clause = _CLAUSE_BREAK.split(answer.strip())[-1]
    if "?" in clause or NEGATION.search(clause.lower()):   # an echoed question "Which shape is red?"
        return False
    gold_words = normalize_text(gold).split()
    if not gold_words or len(gold_words) > MAX_SENTENCE_GOLD_WORDS:
        return False
    words = normalize_text(clause).split()
    subject = words[:-len(gold_words)]
    if words[-len(gold_words):] != gold_words or len(subject) > MAX_SENTENCE_EXTRA_WORDS or len(subject) < 2:
        return False
    return subject[-1] in _COPULAS or (subject[-1] == "s" and subject[-2] in _CONTRACTED)


# ----------------------------------------------------------------------------- yes / no

_POLARITY = {"yes": True, "true": True, "no": False, "false": False}


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
    if polarity and NEGATION.search(" ".join(words)):
        return None
    return polarity


def gold_yes_no(gold: str) -> bool | None:
    """A gold answer counts as yes/no only when it is exactly one of the four words."""
    return _POLARITY.get(normalize_text(gold))


# ----------------------------------------------------------------------------- option letters

_LONE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\].:]?")
# "(B) 5 cm", "B. 5 cm", "B: 5 cm", "b) 5 cm"; a lower-case letter only before ")" ("a. m." is not A)
_LABELLED = re.compile(r"(?:\(([A-Za-z])\)|([A-Za-z])\)|([A-Z])\s*[.:\]])\s*(\S.*)", re.DOTALL)
_KEYWORD = re.compile(r"\b(?:option|choice|answer)\b(?:\s++(?:is|was|would\s+be|should\s+be|will\s+be))?"
                      r"\s*+[:\-]?\s*+(?:\*\*)?\s*+[(\[]?([A-Za-z])[)\]]?(?![\w'])", re.IGNORECASE)
_IS_LETTER = re.compile(r"(?:\b(?:is|be)|['’]s)\s+[(\[]?([A-Z])[)\]]?(?![\w'])")
_BRACKETED = re.compile(r"(?<![\w'])[(\[]([A-Z])[)\]](?![\w'])")   # "(C)" anywhere is a stated pick
MAX_BRACKETED_CHARS = 200


def _label(text: str) -> str | None:
    m = _LABELLED.match(text)
    return next(g for g in m.groups() if g).upper() if m else None


def strip_choice_labels(choices: list[str]) -> list[str]:
    """["A. 3 cm", "B. 5 cm"] -> ["3 cm", "5 cm"]; left alone unless every option is labelled."""
    stripped = []
    for i, choice in enumerate(choices):
        m = re.match(rf"\s*(?:\({chr(65 + i)}\)|{chr(65 + i)}\s*[.:)])\s*(.*)", choice, re.DOTALL)
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
        same = [i for i, c in enumerate(choices)
                if (n := read_number(c)) is not None and numbers_equal(n, number)]
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
    inside = [i for i in inside
              if not any(options[i] != options[j] and options[i] in options[j] for j in inside)]
    return inside[0] if len(inside) == 1 else None


def read_choice(text: str, choices: list[str] | None, letters: str, *, stated: bool = True) -> str | None:
    """The option letter an answer picks, from its letter or (given choices) its text.

    A letter wins over option text when both are written ("B: 3 cm" reads as B). ``stated``
    says the text was given as the final answer (answer tag, ``\\boxed``, "answer is"); when
    False (the last line of an untagged response) "... is C" no longer counts, only a lone
    letter, "(C)", "option C", "answer: C" or a label. A bare capital in running text never counts.
    """
    s = plain(text).strip("*_` ").strip()
    if (m := _LONE.fullmatch(s)) and m.group(1).upper() in letters:
        return m.group(1).upper()
    if choices and (i := _choice_by_value(s, choices)) is not None:
        return letters[i]
    if (letter := _label(s)) and letter in letters:
        others = {h.group(1) for h in _BRACKETED.finditer(s) if h.group(1) in letters} - {letter}
        return None if others else letter   # "(A) green or (C) orange" is a hedge
    if NEGATION.search(s.lower()):   # "Option C is not right", "it is not (B)": no pick
        return None
    for pattern in (_KEYWORD, _IS_LETTER) if stated else (_KEYWORD,):
        hits = [h for h in pattern.finditer(s) if h.group(1).isupper() or _lone_after(s, h.group(1))]
        hits = [h.group(1).upper() for h in hits if not _is_article(s, h)]
        if hits and hits[-1] in letters:
            return hits[-1]
    if len(s) <= MAX_BRACKETED_CHARS:
        hits = {h.group(1) for h in _BRACKETED.finditer(s) if h.group(1) in letters}
        if len(hits) == 1:
            return hits.pop()
    if choices and (i := _choice_inside(s, choices)) is not None:
        return letters[i]
    return None


def _lone_after(text: str, letter: str) -> bool:
    """A lower-case letter counts only at the end of the answer ("option b."), not "is a dog"."""
    return re.search(rf"[(\[]?{letter}[)\]]?\s*[.!]?\s*$", text) is not None


_AFTER_LETTER = {"and", "or", "nor", "but", "vs", "versus", "is", "was", "seems", "looks", "fits", "matches",
                 "could", "would", "might", "should", "must", "can", "because", "since"}


def _is_article(text: str, hit: re.Match) -> bool:
    """"A" before a lower-case word is the article ("a triangle"), unless that word is "and", "is"..."""
    if hit.group(1) != "A" or not hit.group(0).endswith("A"):
        return False
    following = re.match(r"\s+([a-z]+)", text[hit.end():])
    return following is not None and following.group(1) not in _AFTER_LETTER


def gold_choice(gold: str, choices: list[str] | None, letters: str) -> str | None:
    """The gold option letter: "B", "(B)", "B. 5 cm", or the option's text itself."""
    s = plain(gold)
    if (m := _LONE.fullmatch(s)) and m.group(1).upper() in letters:
        return m.group(1).upper()
    if (letter := _label(s)) and letter in letters:
        return letter
    if choices and (i := _choice_by_value(s, choices)) is not None:
        return letters[i]
    return None


# ----------------------------------------------------------------------------- several letters

_ITEM = r"[(\[]?[A-Z][)\]]?"
_SEP = r"(?:\s*+[,;/&+]\s*+(?:and\s++)?|\s++and\s++|\s*+)"   # nothing between: "AC", "(A)(C)"
_LETTER_LIST = re.compile(rf"{_ITEM}(?:{_SEP}{_ITEM})+")
_COMPACT = re.compile(r"[A-Z]{2,26}")
_LIST_AFTER_KEYWORD = re.compile(
    rf"(?i:\b(?:answers?|options?|choices?)(?:\s+(?:are|is|would\s+be|should\s+be))?)\s*:?\s*({_ITEM}(?:{_SEP}{_ITEM})*)$")
# possessive, and starting only where a whitespace run starts: linear on long blank runs
_TEXT_SEP = re.compile(r"(?<!\s)\s*+[,;&]\s*+(?:and\s++)?|(?<!\s)\s++and\s++")


def _letters_of_list(text: str, letters: str, *, compact: bool) -> frozenset[str] | None:
    if _LETTER_LIST.fullmatch(text):
        found = re.findall(r"[A-Z]", text)
    elif compact and _COMPACT.fullmatch(text):
        found = list(text)
    else:
        return None
    if len(set(found)) != len(found) or not set(found) <= set(letters):
        return None   # "A, A" or a letter past the options: not a clean set
    return frozenset(found)


def gold_letter_set(gold: str, letters: str) -> frozenset[str] | None:
    """The letters of a multi-answer gold ("A, C", "AC", "A and C", "(A)(C)"), two or more, else None."""
    return _letters_of_list(plain(gold).strip("*_` ").strip().rstrip("."), letters, compact=True)


def read_letter_set(text: str, choices: list[str] | None, letters: str, *, stated: bool = True) -> frozenset | None:
    """The set of options an answer picks: a letter list, "the answers are A and C", option texts, or one pick."""
    s = plain(text).strip("*_` ").strip().rstrip(".")
    found = _letters_of_list(s, letters, compact=True)
    if found is None and not NEGATION.search(s.lower()) and (m := _LIST_AFTER_KEYWORD.search(s)):
        found = _letters_of_list(m.group(1), letters, compact=False)
    if found is None and choices:
        picks = [_choice_by_value(part, choices) for part in _TEXT_SEP.split(s)]
        if len(picks) > 1 and None not in picks and len(set(picks)) == len(picks):
            found = frozenset(letters[i] for i in picks)
    if found is None and (one := read_choice(text, choices, letters, stated=stated)) is not None:
        found = frozenset(one)
    return found
