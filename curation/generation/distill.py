"""After a text-only reasoner writes traces from a caption: rewrite, then select for SFT.

The reasoner never saw the image, so its traces talk about "the caption" or "the description".
A rule-based rewrite makes them speak about "the image" (Vision-R1 / VLAA-Thinking do the same
with a model); a trace that needed too many edits is dropped, not patched further.
Selection follows OpenVLThinker: correct and well-formed, length within limits, at most m per
example, shortest correct first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_NOUN = r"(?:caption|description)"
# Ordered alternatives of one regex: each phrase is rewritten once (no cascades), specific first.
_REWRITES: list[tuple[str, str]] = [
    (rf"according to the (?:given |provided )?{_NOUN}", "in the image"),
    (rf"(?:as )?(?:described|stated|mentioned|given) in the (?:given |provided )?{_NOUN}", "as shown in the image"),
    (rf"the (?:given |provided )?{_NOUN} (?:says|states|mentions|describes|notes|indicates|shows|lists)",
     "the image shows"),
    (rf"(?:the|this|that) (?:given |provided )?(?:image )?{_NOUN}", "the image"),
    (r"(?:captions|descriptions)", "images"),
    (_NOUN, "image"),
]
_PATTERN = re.compile("|".join(rf"(\b{pat}\b)" for pat, _ in _REWRITES), re.I)


def _replace(m: re.Match) -> str:
    repl = _REWRITES[m.lastindex - 1][1]
    return repl[0].upper() + repl[1:] if m.group(0)[0].isupper() else repl


def rewrite_trace(text: str) -> tuple[str, int]:
    """Replace talk of the caption/description with talk of the image; returns (text, edits)."""
    return _PATTERN.subn(_replace, text)


@dataclass(frozen=True)
class SelectConfig:
    max_per_example: int = 1
    min_chars: int = 20
    max_chars: int = 4000
    max_rewrite_edits: int = 3


def trace_status(t: dict, cfg: SelectConfig) -> str:
    """Why a trace can or cannot go to SFT: 'eligible' or a reason."""
    if t["rewrite_edits"] > cfg.max_rewrite_edits:
        return "too_many_edits"
    if not t["format_ok"]:
        return "bad_format"
    if not t["correct"]:
        return "incorrect"
    if t["length_chars"] < cfg.min_chars:
        return "too_short"
    if t["length_chars"] > cfg.max_chars:
        return "too_long"
    return "eligible"


def select_traces(traces: list[dict], cfg: SelectConfig) -> list[dict]:
    """Set ``selected`` and ``status`` on the traces of one example (shortest eligible first)."""
    for t in traces:
        t["status"] = trace_status(t, cfg)
        t["selected"] = False
    eligible = sorted((t for t in traces if t["status"] == "eligible"), key=lambda t: (t["length_chars"], t["trace_id"]))
    for i, t in enumerate(eligible):
        t["selected"] = i < cfg.max_per_example
        t["status"] = "selected" if t["selected"] else "not_shortest"
    return traces
