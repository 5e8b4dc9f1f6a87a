"""Answer options written inside the question text, and image placeholders left in it.

Many visual-QA sets ship multiple-choice items with the options only in the question
("Which is larger? (A) 3 (B) 5", "A. red\\nB. blue", "Options:\\nA. .."; the LLaVA evaluation
prompts end such lists with "Answer with the option's letter from the given choices directly.")
and with the chat template's ``<image>`` token still in the text (LLaVA ``conversations``,
verl/EasyR1 ``prompt``). ``options_from_question`` recovers the stem and the options so the
verifier and the prompts can treat the row as multiple choice; ``strip_image_placeholder``
removes the token, since our prompts add the image themselves.

Conservative by design: a list counts only when it has at least two consecutive labels
starting at A, each with a non-empty option, so a stray "A." in prose is never an option.
Pure string code, linear time.
"""
from __future__ import annotations

import re
import string

# "A. red", "A: red", "A) red", "(A) red", "[A] red" at the start of a line
_LINE_OPTION = re.compile(r"[ \t]*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[.:)])[ \t]*+(\S.*)")
# "(A) 3 (B) 5" on one line: only the parenthesised label is safe inside running text
_INLINE_LABEL = re.compile(r"\(([A-Z])\)")
# "Choices:", "Options:", "Answer choices:", "Select one:" just before the list
_HEADER = re.compile(r"(?:(?:answer\s+)?(?:choices|options)|select\s+one(?:\s+option)?)\s*:?\s*$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"[ \t]*<\s*(?:image|img)(?:[ _-]?\d+)?\s*/?>[ \t]*", re.IGNORECASE)


def options_from_question(question: str) -> tuple[str, list[str]] | None:
    """``(stem, options)`` when ``question`` lists >= 2 lettered options from A, else None.

    The stem is the question without the option list and without a "Choices:" header; text
    after the list (an instruction such as "Answer with the letter.") stays in the stem.
    """
    if not isinstance(question, str) or "A" not in question:
        return None
    lines = question.splitlines()
    found = _options_on_lines(lines)
    if found is None:
        found = _options_inline(lines)
    if found is None:
        return None
    before, options, after = found
    before = _HEADER.sub("", before.rstrip()).rstrip()
    stem = "\n".join(part for part in (before, after.strip()) if part)
    return stem, options


def _options_on_lines(lines: list[str]) -> tuple[str, list[str], str] | None:
    """The last run of lines labelled A, B, C, ... (blank lines between them allowed)."""
    best = None
    i = 0
    while i < len(lines):
        first = _line_label(lines[i])
        if first is None or first[0] != "A":
            i += 1
            continue
        options, j, last = [], i, i
        while j < len(lines):
            if not lines[j].strip():
                j += 1
                continue
            label = _line_label(lines[j])
            if label is None or label[0] != string.ascii_uppercase[len(options)]:
                break
            options.append(label[1])
            last = j
            j += 1
        if len(options) >= 2:
            best = ("\n".join(lines[:i]), options, "\n".join(lines[last + 1:]))
        i = max(j, i + 1)
    return best


def _line_label(line: str) -> tuple[str, str] | None:
    m = _LINE_OPTION.fullmatch(line)
    if m is None:
        return None
    letter = next(g for g in m.groups()[:3] if g)
    return letter, m.group(4).strip()


def _options_inline(lines: list[str]) -> tuple[str, list[str], str] | None:
    """"(A) 3 (B) 5 (C) 7" inside one line: consecutive labels from (A), the last run wins."""
    for n in range(len(lines) - 1, -1, -1):
        line = lines[n]
        labels = list(_INLINE_LABEL.finditer(line))
        starts = [k for k, m in enumerate(labels) if m.group(1) == "A"]
        for k in reversed(starts):
            run = [labels[k]]
            # contiguous labels only: "(A) x (C) y" is no list
            while (k + len(run) < len(labels) and len(run) < 26
                   and labels[k + len(run)].group(1) == string.ascii_uppercase[len(run)]):
                run.append(labels[k + len(run)])
            if len(run) < 2:
                continue
            ends = [m.start() for m in run[1:]] + [len(line)]
            options = [line[m.end():end].strip().rstrip(",;").strip() for m, end in zip(run, ends)]
            if all(options):
                before = "\n".join(lines[:n] + [line[:run[0].start()]])
                return before, options, "\n".join(lines[n + 1:])
    return None


def strip_image_placeholder(text: str) -> str:
    """Remove ``<image>``, ``<image 1>``, ``<img>`` tokens and the blank space they leave."""
    if not isinstance(text, str) or "<" not in text:
        return text
    kept = []
    for line in text.splitlines():
        if not _PLACEHOLDER.search(line):
            kept.append(line)
            continue
        cleaned = _PLACEHOLDER.sub(_gap, line).strip()
        if cleaned:           # a line that held only placeholders goes away entirely
            kept.append(cleaned)
    return "\n".join(kept).strip()


def _gap(m: re.Match) -> str:
    """One space between two words, none before punctuation: "See <image>." -> "See."."""
    after = m.string[m.end():m.end() + 1]
    return "" if not after or after in ".,;:?!)" else " "


__all__ = ["options_from_question", "strip_image_placeholder"]
