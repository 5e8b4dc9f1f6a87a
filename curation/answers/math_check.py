"""math-verify behind a time bound that holds in any thread: pre-screens, then a watched worker.

math-verify's own timeouts use SIGALRM, which works only on the main thread, so they are off
(``parsing_timeout=None``, ``timeout_seconds=None``) and ``equivalent`` bounds the time itself:
  1. ``too_costly`` refuses, before anything runs, what Python cannot interrupt or what runs for
     minutes: a huge integer power or factorial (``10^{10^{10}}``, ``(10^{10})!``) is one C call
     holding the GIL, so not even the waiting thread could return on time; deep nesting makes
     the ANTLR parser slow (about 0.1 s per parenthesis level); big operators (``\\int``,
     ``\\sum``) and high symbolic powers can expand for minutes;
  2. the rest runs on a daemon thread joined with a deadline. Python cannot kill a thread: on
     timeout the worker is abandoned and finishes in the background, using CPU. To bound that
     leak, while ``MAX_ABANDONED`` abandoned workers are still running, further calls time out
     at once instead of starting another.
Trade-off: a worker process could be killed instead, but it needs a process per caller, cannot
be started from daemonic pool workers and pays a round trip per call. With threads, an input
that passes the screens and still runs long keeps a core busy until it ends, and after
``MAX_ABANDONED`` of those every math-verify comparison reads "timeout" (the fast readers in
``curation.answers.readers`` are unaffected). A wall-clock bound also means heavy contention (many
threads on few cores) can turn a slow but legitimate expression into a timeout.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from functools import lru_cache

MAX_ABANDONED = 4
MAX_EXPONENT = 20_000           # 2^{2023} is a fine answer; 10^{10^{10}} is not
MAX_SYMBOLIC_EXPONENT = 1_000   # (x+1)^{20000} expands for minutes
MAX_FACTORIAL = 2_000
MAX_CARETS = 40
MAX_PAREN_DEPTH = 6
MAX_DEPTH = 12
_BIG_OPERATOR = re.compile(r"\\(?:sum|prod|int|iint|iiint|oint|lim)(?![a-zA-Z])")
_FACTORIAL = re.compile(r"(?<![\\<>=])!(?!=)|\\binom|\\choose|\\Gamma|factorial")


class _WeBoundTheTime(logging.Filter):
    """Drop only math-verify's "Timeout is disabled" warning: the bound here is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_WeBoundTheTime())


class TimedOut(Exception):
    """math-verify did not finish before the deadline (or too many workers are still stuck)."""


# ----------------------------------------------------------------------------- pre-screens

_TOKEN = re.compile(r"\d+(?:\.\d+)?|\\[A-Za-z]+|\S")
_CLOSE = {"{": "}", "(": ")", "[": "]"}


def _tower(tokens: list[str], i: int, depth: int) -> tuple[float, int]:
    """Upper bound of log10|value| of the power tower starting at tokens[i], and where it ends.

    Numbers count with their size, symbols and operators as 1, a bracket group as the product
    of what it holds: a sum is under-counted by a factor 2 at most, a tower never.
    """
    if depth > 60:
        return math.inf, len(tokens)
    tok = tokens[i]
    if tok in _CLOSE:
        close, i, size = _CLOSE[tok], i + 1, 0.0
        while i < len(tokens) and tokens[i] != close:
            value, i = _tower(tokens, i, depth + 1)
            size += max(value, 0.0)
        i += 1
    else:
        size, i = (math.log10(max(float(tok), 1.0)) if tok[0].isdigit() else 0.0), i + 1
    if i < len(tokens) and tokens[i] == "^" and i + 1 < len(tokens):
        exponent, i = _tower(tokens, i + 1, depth + 1)
        size = 0.0 if size == 0 else size * 10 ** min(exponent, 400)
    return size, i


def _depths(text: str) -> tuple[int, int]:
    """Deepest nesting of parentheses, and of all brackets together."""
    paren = total = top_paren = top_total = 0
    for ch in text:
        if ch in "({[":
            paren += ch == "("
            total += 1
            top_paren, top_total = max(top_paren, paren), max(top_total, total)
        elif ch in ")}]":
            paren -= ch == ")"
            total -= 1
    return top_paren, top_total


def too_costly(text: str) -> bool:
    """Whether math-verify must not be given this expression (see the module docstring)."""
    s = text.replace("**", "^")
    if s.count("^") > MAX_CARETS or _BIG_OPERATOR.search(s):  # the caret cap keeps the scan cheap
        return True
    paren, total = _depths(s)
    if paren > MAX_PAREN_DEPTH or total > MAX_DEPTH:
        return True
    has_variable = re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", s)) is not None
    limit = math.log10(MAX_SYMBOLIC_EXPONENT if has_variable else MAX_EXPONENT)
    tokens = _TOKEN.findall(s)
    for j, tok in enumerate(tokens):
        if tok == "^" and j + 1 < len(tokens) and _tower(tokens, j + 1, 0)[0] > limit:
            return True
    if _FACTORIAL.search(s):  # (10^{10})!: no power next to a factorial, and small literals only
        return "^" in s or any(float(x) > MAX_FACTORIAL for x in re.findall(r"\d{1,30}", s))
    return False


# ----------------------------------------------------------------------------- input

_UNICODE_MATH = str.maketrans({"−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ",
                               "π": "\\pi ", "∞": "\\infty ", "²": "^2", "³": "^3", "°": "^\\circ"})
_ROOT = re.compile(r"(?:√|(?<![\\\w])sqrt)\s*(?:\{([^{}]*)\}|\(([^()]*)\)|([\d.]+|[a-zA-Z]))")


def latex_input(text: str) -> str:
    """An answer as one ``$...$`` LaTeX span for math-verify: √/sqrt() as \\sqrt{}, unicode as LaTeX."""
    s = text.translate(_UNICODE_MATH).replace("**", "^")
    s = _ROOT.sub(lambda m: "\\sqrt{" + next(g for g in m.groups() if g is not None) + "}", s)
    s = re.sub(r"\\[()\[\]]", " ", s).replace("$", " ").strip()
    return f"${s}$"


# ----------------------------------------------------------------------------- bounded run

_abandoned = 0
_abandoned_lock = threading.Lock()


def _forget_abandoned() -> None:
    """A forked child (a Beam or DataLoader worker) inherits the count but none of the threads."""
    global _abandoned, _abandoned_lock
    _abandoned, _abandoned_lock = 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_abandoned)


def run_bounded(fn, seconds: float):
    """fn() on a daemon thread; TimedOut if it has not finished within ``seconds``."""
    global _abandoned
    with _abandoned_lock:
        if _abandoned >= MAX_ABANDONED or seconds <= 0:
            raise TimedOut
    box: dict = {}

    def work():
        global _abandoned
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = e
        finally:
            with _abandoned_lock:
                box["finished"] = True
                if box.get("abandoned"):
                    _abandoned -= 1

    worker = threading.Thread(target=work, name="sightline-math-verify", daemon=True)
    worker.start()
    worker.join(seconds)
    with _abandoned_lock:
        if not box.get("finished"):
            box["abandoned"] = True
            _abandoned += 1
            raise TimedOut
    if "error" in box:
        raise box["error"]
    return box["value"]


@lru_cache(maxsize=4096)
def _parse_gold(text: str) -> list:
    """Gold answers repeat (one per GRPO generation); sympy results are immutable, so share them."""
    from math_verify import parse
    return parse(text, parsing_timeout=None)


def _math_verify(gold: str, answer: str) -> bool:
    from math_verify import parse, verify

    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return False
    return verify(gold_parsed, parse(answer, parsing_timeout=None), timeout_seconds=None)


def equivalent(gold: str, answer: str, deadline: float) -> bool:
    """math-verify's verdict on two ``latex_input`` strings, by ``deadline`` (time.monotonic())."""
    import math_verify  # noqa: F401 - the first import (sympy, ANTLR) happens outside the worker

    return bool(run_bounded(lambda: _math_verify(gold, answer), deadline - time.monotonic()))
