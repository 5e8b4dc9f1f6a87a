"""One source record -> one ``examples`` row, or a reject naming the first problem found.

Values are taken as datasets ship them: questions with a chat template's ``<image>`` token
(stripped) and with their options written inside ("(A) 3 (B) 5": parsed into ``choices`` when
the row has none, see ``curation.options``); choices as strings or numbers; golds as text,
numbers, booleans, an option letter or several ("A, C": ``multi_choice``); images as a path,
an HF ``{bytes, path}`` struct, raw bytes, or a list of those (every image is kept, in order).
Images are read as bytes, bounded in size, and not decoded: the validate stage does that.
"""
from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from curation.options import options_from_question, strip_image_placeholder
from curation.sources.paths import MISSING, flatten, resolve
from schemas.ids import row_id
from schemas.tables import EXAMPLES

ANSWER_TYPES = ("multiple_choice", "multi_choice", "yes_no", "integer", "number", "math", "text", "open")
MAX_CHOICES = 26
_LETTER = re.compile(r"[(\[]?([A-Z])[)\]]?")
_LETTER_SEP = re.compile(r"\s*(?:[,;/&+]|\band\b)\s*|\s+")


class Reject(Exception):
    """One row's failure; turned into a reject row, never raised to callers of ``read_source``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def to_row(s: dict, columns: dict, source_id: str, record: dict, base: Path, root: Path,
           prefix: str = "") -> tuple[str, dict] | Reject:
    """``("example", row)``; a ``Reject`` (with ``.source_id`` and ``.question``) otherwise.

    ``columns`` maps our names to ``(their path, parsed steps)``; ``prefix`` names the file
    for sources of several files, so a mapped ``id`` stays unique across them.
    """
    def get(ours: str) -> Any:
        return resolve(record, *columns[ours])

    row_key = get("id")
    if row_key is not MISSING and row_key is not None and str(row_key).strip():
        source_id = f"{prefix}{row_key}"
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
        several = _gold_letters_in_range(answer, choices) if answer is not None and choices else False
        answer_type = _answer_type(get("answer_type"), several, choices, s["answer_type"])
        task = get("task")
        task = str(task) if task is not None and task is not MISSING else s["task"]
        _check_encodable(question, answer, task, *(choices or ()))
        # Last: the only check that touches the disk.
        images = _images(get("image"), base, root, s, columns["image"][0], record)
    except Reject as r:
        r.source_id = source_id
        r.question = raw_question if isinstance(raw_question, str) else None
        return r
    row = dict.fromkeys(EXAMPLES.names)
    row.update(id=row_id(_image_key(images), question), source=s["name"], source_id=source_id, task=task,
               images=images, question=question, choices=choices, answer=answer, answer_type=answer_type)
    return "example", row


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


def _absent(field: str, theirs: str, value: Any, record: dict) -> str:
    """Why a field has no value, naming close field names of the row when the path is wrong."""
    if value is not MISSING:
        return f"{theirs!r} is null"
    names = list(flatten(record))
    close = difflib.get_close_matches(theirs, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"no {theirs!r} ({field}) in the row{hint} (row has: {shown or 'nothing'})"


def _question(value: Any, theirs: str, record: dict) -> str:
    if value is MISSING or value is None:
        raise Reject("missing_question", _absent("question", theirs, value, record))
    if not isinstance(value, str):
        raise Reject("bad_question", f"question is a {type(value).__name__}, not text")
    if not value.strip():
        raise Reject("empty_question", "empty question")
    text = strip_image_placeholder(value)
    if not text.strip():
        raise Reject("empty_question", "the question holds only an image placeholder")
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
        raise Reject("bad_choices", f"choices are a {type(value).__name__}, not a list of strings or numbers")
    out = []
    for i, c in enumerate(value):
        if isinstance(c, bool) or not isinstance(c, (str, int, float)):
            raise Reject("bad_choices", f"choice {i} is a {type(c).__name__}; choices are strings or numbers")
        text = c if isinstance(c, str) else _number_text(c)
        if not text or not text.strip():
            raise Reject("bad_choices", f"choice {i} is {'empty' if text is not None else c}; "
                                        "every choice must be a non-empty string or a finite number")
        out.append(text)
    if len(out) > MAX_CHOICES:
        raise Reject("bad_choices", f"{len(out)} choices; letters A-Z allow {MAX_CHOICES}")
    return out


def _answer(value: Any, choices: list[str] | None, is_index: bool, theirs: str, record: dict) -> str:
    if value is MISSING or value is None:
        raise Reject("missing_answer", _absent("answer", theirs, value, record))
    if isinstance(value, str) and not value.strip():
        raise Reject("empty_answer", "empty answer")
    if is_index:
        if choices is None:
            raise Reject("bad_answer", "answer_is_index is set but the row has no choices")
        digits = isinstance(value, str) and value.isdigit()
        if isinstance(value, bool) or not (isinstance(value, int) or digits):
            raise Reject("bad_answer", f"answer {value!r} is not a choice index")
        if not 0 <= int(value) < len(choices):
            raise Reject("bad_answer", f"answer index {value} outside 0..{len(choices) - 1}")
        return chr(ord("A") + int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        text = _number_text(value)
        if text is None:
            raise Reject("bad_answer", f"answer is {value}")
        return text
    if isinstance(value, str):
        return value.strip()
    raise Reject("bad_answer", f"answer is a {type(value).__name__}, not text or a number")


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
        raise Reject("answer_letter_outside_choices",
                     f"gold {answer!r} names {', '.join(outside)} "
                     f"but the {len(choices)} choices are A-{last}")
    return len(set(letters)) > 1


def _answer_type(value: Any, several: bool, choices: list[str] | None, default: str | None) -> str | None:
    if value is not MISSING and value is not None and value != "":
        if value not in ANSWER_TYPES:
            raise Reject("bad_answer_type", f"{value!r}; known: {', '.join(ANSWER_TYPES)}")
        return value
    if several:
        return "multi_choice"
    return "multiple_choice" if choices else default


def _check_encodable(*texts: str | None) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``) that no UTF-8 file can store."""
    for text in texts:
        if text is not None:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise Reject("bad_text_encoding", f"unpaired surrogate at character {e.start}") from None


# ---------------------------------------------------------------- images


def _images(value: Any, base: Path, root: Path, s: dict, theirs: str, record: dict) -> list[dict]:
    if value is MISSING or value is None:
        why = "no image" if value is None else _absent("image", theirs, value, record)
        raise Reject("missing_image", why)
    many = isinstance(value, (list, tuple))
    values = list(value) if many else [value]
    if not values:
        raise Reject("missing_image", "the image list is empty")
    images = []
    for i, item in enumerate(values):
        try:
            data, path = _image(item, base, root, s)
        except Reject as r:
            if many and len(values) > 1:
                r.detail = f"image {i} of {len(values)}: {r.detail}"
            raise
        images.append({"bytes": data, "path": path})
    return images


def _image(value: Any, base: Path, root: Path, s: dict) -> tuple[bytes, str | None]:
    """One image's bytes and a path hint, from bytes, an HF ``{bytes, path}`` struct or a path."""
    if value is None:
        raise Reject("missing_image", "no image")
    path = None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data and not isinstance(data, (bytes, bytearray, memoryview)):
            raise Reject("bad_image_value", f"image bytes are a {type(data).__name__}")
        if data:
            return _bounded(bytes(data), s), _path_hint(path)
        if not path:
            raise Reject("missing_image", "image struct has neither bytes nor path")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if not value:
            raise Reject("missing_image", "image bytes are empty")
        return _bounded(bytes(value), s), None
    elif isinstance(value, str):
        path = value
    else:
        raise Reject("bad_image_value", f"image is a {type(value).__name__}; expected a path, "
                                        "{bytes, path}, bytes or a list of those")
    if not isinstance(path, str) or not path.strip() or "\x00" in path or _path_hint(path) is None:
        raise Reject("bad_image_value", f"image path {path!r}")
    return _read_file(path, base, root, s), path


def _path_hint(path: Any) -> str | None:
    """The struct's ``path`` kept as a name hint when it is text a Parquet file can store."""
    if not isinstance(path, str):
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return path


def _bounded(data: bytes, s: dict) -> bytes:
    if len(data) > s["max_image_bytes"]:
        raise Reject("image_too_large_bytes", f"{len(data)} bytes > max_image_bytes={s['max_image_bytes']}")
    return data


def _read_file(path: str, base: Path, root: Path, s: dict) -> bytes:
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(os.path.normpath(base / p))
        inside = os.path.commonpath([str(p), os.path.normpath(root)]) == os.path.normpath(root)
        if not inside and not s["allow_outside"]:
            raise Reject("image_path_outside",
                         f"{path} resolves outside {root} (set image_root or allow_outside)")
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise Reject("image_missing", f"no file {p}") from None
    except OSError as e:
        raise Reject("image_unreadable", f"{p}: {e}") from None
    if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO (which would block), a device
        raise Reject("image_unreadable", f"{p} is not a regular file")
    limit = s["max_image_bytes"]
    if st.st_size > limit:
        raise Reject("image_too_large_bytes", f"{p}: {st.st_size} bytes > max_image_bytes={limit}")
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise Reject("image_unreadable", f"{p}: {e}") from None
    return _bounded(data, s)
