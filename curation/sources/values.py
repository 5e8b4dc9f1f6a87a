"""One source record -> one ``examples`` row, or a reject naming the first problem found.

Values are taken as datasets ship them: questions with a chat template's ``<image>`` token
(stripped) and with their options written inside ("(A) 3 (B) 5": parsed into ``choices`` when
the row has none, see ``curation.answers.options``); choices as strings or numbers; golds as text,
numbers, booleans, an option letter or several ("A, C": ``multi_choice``); images as a path,
an HF ``{bytes, path}`` struct, raw bytes, or a list of those (every image is kept, in order).
Images are read as bytes, bounded in size, and not decoded: the validate stage does that.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from curation.answers.options import options_from_question, strip_image_placeholder
from curation.sources.chat import ChatTurn, with_context
from curation.sources.image_values import images_of
from curation.sources.paths import MISSING, resolve
from curation.rejects import Refused, Reject, reject_row
from curation.sources.rowerrors import absent
from curation.sources.spec import REASONS, STAGE
from schemas.ids import row_id
from schemas.tables import ANSWER_TYPES, EXAMPLES
from curation.answers.verify import answer_type_for_gold

MAX_CHOICES = 26
_LETTER = re.compile(r"[(\[]?([A-Z])[)\]]?")
_LETTER_SEP = re.compile(r"\s*(?:[,;/&+]|\band\b)\s*|\s+")


def to_row(s: dict, columns: dict, source_id: str, record: dict, base: Path, root: Path,
           prefix: str = "", turn: ChatTurn | None = None) -> tuple[str, dict]:
    """``("example", row)``, or ``("reject", rejects row)`` naming the first problem found.

    ``columns`` maps our names to ``(their path, parsed steps)``; ``prefix`` names the file
    for sources of several files, so a mapped ``id`` stays unique across them. ``turn`` is one
    exchange of a chat-shaped row (``curation.sources.chat``): its question and answer replace
    the mapped columns, and only the images referenced up to it are kept.
    """
    def get(ours: str) -> Any:
        if turn is not None and ours in ("question", "answer"):
            return getattr(turn.exchange, ours)
        if turn is not None and ours == "image":
            value = resolve(record, *columns["image"])
            return turn.part_images if (value is MISSING and turn.part_images) else value
        theirs, steps = columns[ours]
        if isinstance(steps, list):  # several source columns into one list: choices: [A, B, C, D]
            values = [resolve(record, t, st) for t, st in steps]
            return [v for v in values if not _blank(v)]
        return resolve(record, theirs, steps)

    row_key = get("id")
    if row_key is not MISSING and row_key is not None and str(row_key).strip():
        source_id = f"{prefix}{row_key}"
    if turn is not None and turn.index:
        source_id = f"{source_id}#{turn.index + 1}"  # the exchange's number in the conversation
    raw_question = get("question")
    try:
        question = _question(raw_question, columns["question"][0], record)
        choices = _choices(get("choices"))
        answer = get("answer")
        if choices is None and s["parse_options"]:
            parsed = options_from_question(question)
            if parsed is not None and parsed[0].strip() and _names_an_option(answer, parsed[1], s):
                question, choices = parsed
        if answer is MISSING and not s["require_answer"]:
            answer = None
        if answer is not None or s["require_answer"]:
            answer = _answer(answer, choices, s["answer_is_index"], columns["answer"][0], record)
        hint = get("hint")
        if isinstance(hint, str) and hint.strip():  # VLMEvalKit's MCQ prompt puts the hint first
            question = f"Hint: {hint.strip()}\n{question}"
        if turn is not None:
            question = with_context(turn.earlier, question)
        several = _gold_letters_in_range(answer, choices) if answer is not None and choices else False
        answer_type = _answer_type(get("answer_type"), several, choices, s["answer_type"], answer, s["name"])
        task = get("task")
        task = str(task) if task is not None and task is not MISSING else s["task"]
        _check_encodable(question, answer, task, *(choices or ()))
        # Last: the only check that touches the disk.
        images = images_of(get("image"), base, root, s, columns["image"][0], record)
        if turn is not None and (keep := turn.image_limit(len(images))) is not None:
            images = images[:keep]
    except Refused as r:  # the boundary: a raised verdict becomes the rejects row
        return source_reject(s, source_id, r.reject, raw_question if isinstance(raw_question, str) else None)
    row = dict.fromkeys(EXAMPLES.names)
    row.update(id=row_id(_image_key(images), question), source=s["name"], source_id=source_id, task=task,
               images=images, question=question, choices=choices, answer=answer, answer_type=answer_type)
    return "example", row


def source_reject(s: dict, source_id: str, verdict: Reject, question: str | None = None) -> tuple[str, dict]:
    """``("reject", rejects row)`` of one source record at ingest; the reason is one of ``REASONS``."""
    assert verdict.reason in REASONS, verdict.reason
    return "reject", reject_row(STAGE, {"source": s["name"], "source_id": source_id, "question": question},
                                verdict.reason, verdict.detail)


def _names_an_option(answer: Any, options: list[str], s: dict) -> bool:
    """Options found in a question count only when the gold is a letter, an index or one of
    them: "Points (A) and (B) are where?" with the gold "on the line" lists no options."""
    if answer is MISSING or answer is None:
        return True  # an eval set without golds: nothing to cross-check
    if s["answer_is_index"]:
        return True
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = _number_text(answer)
    if not isinstance(answer, str) or not answer.strip():
        return False
    folded = answer.strip().casefold()
    return gold_letters(answer) is not None or any(o.strip().casefold() == folded for o in options)


def _image_key(images: list[dict]) -> bytes:
    """The bytes a row id hashes: the image itself, or the digests of several in order."""
    if len(images) == 1:
        return images[0]["bytes"]
    return b"".join(hashlib.sha256(im["bytes"]).digest() for im in images)


def _question(value: Any, theirs: str, record: dict) -> str:
    if value is MISSING or value is None:
        raise Refused("missing_question", absent("question", theirs, value, record))
    if not isinstance(value, str):
        raise Refused("bad_question", f"question is a {type(value).__name__}, not text")
    if not value.strip():
        raise Refused("empty_question", "empty question")
    text = strip_image_placeholder(value)
    if not text.strip():
        raise Refused("empty_question", "the question holds only an image placeholder")
    return text


def _number_text(value: float) -> str | None:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def _choices(value: Any) -> list[str] | None:
    if value is MISSING or value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if not isinstance(value, (list, tuple)):
        raise Refused("bad_choices", f"choices are a {type(value).__name__}, not a list of strings or numbers")
    out = []
    for i, c in enumerate(value):
        if isinstance(c, bool) or not isinstance(c, (str, int, float)):
            raise Refused("bad_choices", f"choice {i} is a {type(c).__name__}; choices are strings or numbers")
        text = c if isinstance(c, str) else _number_text(c)
        if not text or not text.strip():
            raise Refused("bad_choices", f"choice {i} is {'empty' if text is not None else c}; "
                                        "every choice must be a non-empty string or a finite number")
        out.append(text)
    if len(out) > MAX_CHOICES:
        raise Refused("bad_choices", f"{len(out)} choices; letters A-Z allow {MAX_CHOICES}")
    return out


def _answer(value: Any, choices: list[str] | None, is_index: bool, theirs: str, record: dict) -> str:
    if value is MISSING or value is None:
        raise Refused("missing_answer", absent("answer", theirs, value, record))
    if isinstance(value, str) and not value.strip():
        raise Refused("empty_answer", "empty answer")
    if is_index:
        if choices is None:
            raise Refused("bad_answer", "answer_is_index is set but the row has no choices")
        digits = isinstance(value, str) and value.isdigit()
        if isinstance(value, bool) or not (isinstance(value, int) or digits):
            raise Refused("bad_answer", f"answer {value!r} is not a choice index")
        if not 0 <= int(value) < len(choices):
            raise Refused("bad_answer", f"answer index {value} outside 0..{len(choices) - 1}")
        return chr(ord("A") + int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        text = _number_text(value)
        if text is None:
            raise Refused("bad_answer", f"answer is {value}")
        return text
    if isinstance(value, str):
        return value.strip()
    raise Refused("bad_answer", f"answer is a {type(value).__name__}, not text or a number")


def gold_letters(answer: str) -> list[str] | None:
    """The option letters a gold names: "B", "(B)", "A, C", "A and C", "AC"; None for other text."""
    text = answer.strip().rstrip(".").strip()
    if m := _LETTER.fullmatch(text):
        return [m.group(1)]
    parts = [p for p in _LETTER_SEP.split(text) if p]
    if len(parts) >= 2 and all(_LETTER.fullmatch(p) for p in parts):
        return [_LETTER.fullmatch(p).group(1) for p in parts]
    if re.fullmatch(r"[A-Z]{2,26}", text) and len(set(text)) == len(text):
        return list(text)
    return None


def _gold_letters_in_range(answer: str, choices: list[str]) -> bool:
    """True for a gold naming several options; a Reject when it names a letter past the choices."""
    if answer in choices or answer.strip() in (c.strip() for c in choices):
        return False  # the option's own text (which may look like letters: "AB" for a segment)
    letters = gold_letters(answer)
    if letters is None:
        return False
    outside = [x for x in letters if ord(x) - ord("A") >= len(choices)]
    if outside:
        compact = len(letters) > 1 and re.fullmatch(r"[A-Z]+", answer.strip())
        if compact:
            return False  # "AE" with four choices is more likely text than two options
        last = chr(ord("A") + len(choices) - 1)
        raise Refused("answer_letter_outside_choices",
                     f"gold {answer!r} names {', '.join(outside)} "
                     f"but the {len(choices)} choices are A-{last}")
    return len(set(letters)) > 1


def _blank(value: Any) -> bool:
    """No value: absent, null, an empty string, or the NaN pandas writes for an empty cell."""
    return (value is MISSING or value is None or (isinstance(value, str) and not value.strip())
            or (isinstance(value, float) and math.isnan(value)))


def _answer_type(value: Any, several: bool, choices: list[str] | None, default: str | None,
                 answer: str | None = None, source: str = "") -> str | None:
    """The row's answer type: the source's own (mapped from a known synonym), the entry's default,
    or the one its gold implies. A value no synonym covers is inferred from the gold with a
    warning (once per source and value), never a reject by itself."""
    given = None
    if not _blank(value):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise Refused("bad_answer_type", f"answer_type is a {type(value).__name__}, not text")
        given = map_answer_type(str(value))
        if given is UNKNOWN:
            _warn_unknown(source, str(value))
            given, default = None, None  # the row said something we do not know: its gold decides
    if given in ("multiple_choice", "multi_choice"):
        if several:
            return "multi_choice"
        if choices or given == "multi_choice":
            return given
        given = None  # "multiple choice" with the options out of reach (in an image): the gold decides
    if given is not None:
        return given
    if several:
        return "multi_choice"
    if choices:
        return "multiple_choice"
    if default is not None:
        return default
    if answer is None:
        return None

    return answer_type_for_gold(answer, choices)


UNKNOWN: Any = object()
INFER = None  # a synonym that says "free form": the gold decides between integer, number, math, text, open
ANSWER_TYPE_SYNONYMS = {
    **{k: k for k in ANSWER_TYPES},
    "float": "number", "decimal": "number", "real": "number", "numeric": "number", "numerical": "number",
    "float_number": "number", "decimal_number": "number", "percentage": "number", "percent": "number",
    "int": "integer", "integer_number": "integer", "count": "integer", "counting": "integer",
    "bool": "yes_no", "boolean": "yes_no", "yesno": "yes_no", "yes/no": "yes_no", "true_false": "yes_no",
    "binary": "yes_no", "multiple-choice": "multiple_choice", "multi_choice": "multiple_choice",
    "multi-choice": "multiple_choice", "multichoice": "multiple_choice", "mcq": "multiple_choice",
    "mc": "multiple_choice", "choice": "multiple_choice", "single_choice": "multiple_choice",
    "options": "multiple_choice", "multiple_answers": "multi_choice", "multi_select": "multi_choice",
    "multiple_select": "multi_choice", "expression": "math", "formula": "math", "latex": "math",
    "equation": "math", "string": "text", "str": "text", "word": "text", "short_answer": "text",
    "open_ended": "open", "open-ended": "open", "long_answer": "open", "sentence": "open", "free_text": "open",
    "free_form": INFER, "free-form": INFER, "freeform": INFER, "list": INFER, "other": INFER,
}


def map_answer_type(value: str):
    """Our answer type for a source's value (case and spaces ignored), None to infer it from
    the gold, or UNKNOWN."""
    key = value.strip().lower().replace(" ", "_")
    if key in ANSWER_TYPE_SYNONYMS:
        return ANSWER_TYPE_SYNONYMS[key]
    return ANSWER_TYPE_SYNONYMS.get(key.replace("_", "-"), UNKNOWN)


_WARNED: set[tuple[str, str]] = set()


def _warn_unknown(source: str, value: str) -> None:
    if (source, value) not in _WARNED and len(_WARNED) < 1000:
        _WARNED.add((source, value))
        import logging

        logging.getLogger("sightline.sources").warning(
            "source %r: answer_type %r is not one we know (%s); inferred from the gold", source, value,
            ", ".join(ANSWER_TYPES))


def _check_encodable(*texts: str | None) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``) that no UTF-8 file can store."""
    for text in texts:
        if text is not None:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise Refused("bad_text_encoding", f"unpaired surrogate at character {e.start}") from None
