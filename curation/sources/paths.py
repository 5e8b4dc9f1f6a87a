"""Column paths: ``extra_info.question``, ``images[0]``, ``prompt[-1].content``.

A ``columns`` value in a source spec names where a field sits inside a nested row (JSON
objects, Parquet structs and lists, Hugging Face features): keys joined by dots, list
positions in brackets (negative counts from the end). A name that is itself a key of the
row (a flat column literally called ``a.b``) wins over the nested reading.
"""
from __future__ import annotations

import re
from typing import Any

Step = str | int


class _Missing:
    """The value of a path that does not exist in a row (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
IMAGE_KEYS = frozenset({"bytes", "path"})
MAX_DEPTH = 6        # nesting shown by ``flatten``
SHOWN_ITEMS = 3      # list positions shown by ``flatten`` before jumping to [-1]


def parse_path(text: str) -> tuple[Step, ...]:
    """``"prompt[-1].content"`` -> ``("prompt", -1, "content")``; ValueError for a malformed path."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise ValueError(f"bad column path {text!r}")
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        if steps and text[pos] == ".":
            pos += 1
            if pos == len(text) or text[pos] in ".[":
                raise ValueError(f"bad column path {text!r}: empty key after '.'")
        m = _STEP.match(text, pos)
        if m is None or (m.group(1) is not None and steps and text[pos - 1] not in "."):
            raise ValueError(f"bad column path {text!r} at character {pos}")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if isinstance(steps[0], int):  # a malformed path, not a wrong type: ValueError like the others
        raise ValueError(f"bad column path {text!r}: it starts with a position")  # noqa: TRY004
    return tuple(steps)


def column_of(text: str, names) -> str:
    """The top-level column a path reads (the whole text when it is a column name itself)."""
    return text if text in names else str(parse_path(text)[0])


def resolve(row: dict, text: str, steps: tuple[Step, ...] | None = None) -> Any:
    """The value at ``text`` in ``row``, or MISSING when a key or a list position is absent."""
    if text in row:
        return row[text]
    value: Any = row
    for step in steps if steps is not None else parse_path(text):
        if isinstance(step, int):
            if not isinstance(value, (list, tuple)) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return MISSING
    return value


def is_image_like(value: Any) -> bool:
    """An HF ``Image`` struct (``{bytes, path}``, either may be null)."""
    return isinstance(value, dict) and bool(value) and set(value) <= IMAGE_KEYS


def _is_leaf_list(value: list) -> bool:
    """Only lists of objects (chat turns, records) are opened; scalars, images, lists stay whole."""
    return not all(isinstance(v, dict) and not is_image_like(v) for v in value)


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None,
            depth: int = 0) -> dict[str, Any]:
    """``{dotted path: value}`` of the leaves of one row: scalars, bytes, image structs, and lists
    of those; lists of objects are opened at their first positions and at ``[-1]``."""
    out = {} if out is None else out
    if isinstance(value, dict) and not is_image_like(value) and depth < MAX_DEPTH and (value or not prefix):
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flatten(item, name, out, depth + 1)
    elif isinstance(value, (list, tuple)) and value and not _is_leaf_list(value) and depth < MAX_DEPTH:
        positions = list(range(min(len(value), SHOWN_ITEMS)))
        if len(value) > SHOWN_ITEMS:
            positions.append(-1)
        for i in positions:
            flatten(value[i], f"{prefix}[{i}]", out, depth + 1)
    elif prefix:
        out.setdefault(prefix, value)
    return out


def flatten_type(name: str, arrow_type, out: dict[str, str] | None = None, depth: int = 0) -> dict[str, str]:
    """The same dotted leaf paths, from an Arrow type (Parquet / HF schemas) instead of values."""
    import pyarrow as pa

    out = {} if out is None else out
    if pa.types.is_struct(arrow_type) and depth < MAX_DEPTH:
        names = {arrow_type.field(i).name for i in range(arrow_type.num_fields)}
        if names and not names <= IMAGE_KEYS:
            for i in range(arrow_type.num_fields):
                f = arrow_type.field(i)
                flatten_type(f"{name}.{f.name}", f.type, out, depth + 1)
            return out
    if (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) and depth < MAX_DEPTH:
        inner = arrow_type.value_type
        if pa.types.is_struct(inner) and not {f.name for f in inner} <= IMAGE_KEYS:
            return flatten_type(f"{name}[0]", inner, out, depth + 1)
    out[name] = str(arrow_type)
    return out


def type_has_path(arrow_type, steps: tuple[Step, ...]) -> bool:
    """Whether ``steps`` (after the column name) can exist in a value of ``arrow_type``."""
    import pyarrow as pa

    for step in steps:
        if isinstance(step, int):
            if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
                    or pa.types.is_fixed_size_list(arrow_type)):
                return False
            arrow_type = arrow_type.value_type
        else:
            if not pa.types.is_struct(arrow_type) or arrow_type.get_field_index(step) < 0:
                return False
            arrow_type = arrow_type.field(step).type
    return True
