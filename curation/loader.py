"""One typed loader for every recipe (data, train, experiment): YAML + ``--set a.b=c`` -> dataclasses.

A recipe is a dataclass whose fields are values or nested dataclasses (sections). ``load(cls, path,
overrides)`` reads the YAML mapping, applies the overrides and builds the object, and refuses an
unknown key or a value of the wrong type with one line that names the key *before* anything is
read, written or deleted. Fields carry ``metadata={"help": ...}`` (as TRL's configs do), which
``describe`` prints for ``--help`` and the docs. TRL's ``SFTConfig`` / ``GRPOConfig`` subclasses are
dataclasses like any other, so the same loader fills them with TRL's own field names.

YAML 1.1 reads ``1e-3`` as a string; a float field still takes it (``--set sft.learning_rate=1e-3``).
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from curation.errors import SightlineError

# ---------------------------------------------------------------------------- reading


def read_yaml(path: str | Path | None) -> dict:
    """The YAML mapping in ``path`` ({} for None), or a one-line error."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise SightlineError(f"config file {p} does not exist")
    try:
        given = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SightlineError(f"{p}: invalid YAML{where}: {what}") from None
    if not isinstance(given, dict):
        raise SightlineError(f"{p}: a recipe must be a mapping of sections")
    return given


def parse_value(key: str, raw: str) -> Any:
    """An override's value, typed as YAML reads it ("3" -> 3, "[a, b]" -> list, "" -> "")."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise SightlineError(f"--set {key}: cannot parse value {raw!r}: {e}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise SightlineError(f"--set expects key=value (e.g. sft.learning_rate=1e-3), got {text!r}")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise SightlineError(f"--set expects dotted.key=value, got {text!r}")
    return parts, parse_value(key, raw)


def apply_overrides(values: dict, overrides: list[str] | None) -> dict:
    """``values`` with each ``a.b=c`` set (nested mappings created as needed); the input is not changed."""
    out = _deepcopy_mapping(values)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise SightlineError(f"--set {text}: {'.'.join(keys[:i + 1])} is a value, not a section")
            node = nxt
        node[keys[-1]] = value
    return out


def _deepcopy_mapping(d: dict) -> dict:
    return {k: _deepcopy_mapping(v) if isinstance(v, dict) else v for k, v in d.items()}


# ---------------------------------------------------------------------------- building


def load(cls: type, path: str | Path | None, overrides: list[str] | None = None, **given: Any):
    """``cls`` built from the YAML at ``path`` plus ``overrides`` (``given`` are defaults the file may override)."""
    return build(cls, apply_overrides(read_yaml(path), overrides), "", **given)


def init_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def build(cls: type, values: dict | None, where: str = "", **given: Any):
    """``cls(**given | values)``: unknown keys refused, values coerced to the field types, sections built."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SightlineError(f"{where or cls.__name__} must be a mapping, got {type(values).__name__}")
    fields = init_fields(cls)
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1, cutoff=0.6)
        hint = f"; did you mean {_join(where, close[0])!r}?" if close else ""
        raise SightlineError(f"unknown config key {_join(where, str(unknown[0]))}{hint} (known in "
                             f"{where or 'the recipe'}: {', '.join(sorted(fields))})")
    hints = _hints(cls)
    kwargs = {k: v for k, v in given.items() if k in fields}
    for k, v in values.items():
        kwargs[k] = coerce(v, hints.get(k, Any), _join(where, k))
    try:
        return cls(**kwargs)
    except SightlineError:
        raise
    except (ValueError, TypeError, AssertionError) as e:  # a config class's own __post_init__ check
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SightlineError(f"{where or cls.__name__}: {first}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _hints(cls: type) -> dict:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # unresolvable third-party annotations: no coercion, still checked
        return {}


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` where that is unambiguous; otherwise ``value`` unchanged or a one-line error."""
    # ~65 lines on purpose: one branch per kind of annotation a recipe field may carry, read as one table.
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except SightlineError as e:
                errors.append(e)
        raise errors[0] if errors else SightlineError(f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise SightlineError(f"{where}: expected one of {', '.join(map(str, typing.get_args(tp)))}, got {value!r}")
    if tp is Any or tp is object or isinstance(tp, (str, typing.TypeVar)):
        return value
    base = origin or tp
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        return value if isinstance(value, base) else build(base, value, where)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        try:
            return base(value)
        except ValueError:
            raise SightlineError(f"{where}: expected one of {', '.join(str(m.value) for m in base)}, "
                                 f"got {value!r}") from None
    if base is bool:
        if isinstance(value, bool):
            return value
        raise SightlineError(f"{where}: expected true or false, got {value!r}")
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
        raise SightlineError(f"{where}: expected a number, got {value!r}")
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise SightlineError(f"{where}: expected an integer, got {value!r}")
    if base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise SightlineError(f"{where}: expected a string, got {value!r}")
    if base in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SightlineError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        items = [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
        return items if base is list else tuple(items)
    if base is dict:
        if isinstance(value, dict):
            return value
        raise SightlineError(f"{where}: expected a mapping, got {value!r}")
    return value


# ---------------------------------------------------------------------------- describing


def to_dict(obj: Any) -> Any:
    """A recipe object as plain YAML-able values (for manifests, summaries and fingerprints)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    return obj


def describe(cls: type, where: str = "", own_only: type | None = None) -> str:
    """One line per field: ``section.key = default  help``; nested sections expanded.

    ``own_only``: list only the fields ``cls`` adds to that base class (a TRL config's Sightline fields).
    """
    lines = []
    base_fields = set(init_fields(own_only)) if own_only else set()
    for name, f in init_fields(cls).items():
        if name in base_fields:
            continue
        key = _join(where, name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if dataclasses.is_dataclass(default):
            lines.append(describe(type(default), key))
            continue
        lines.append(f"  {key} = {default!r}  {f.metadata.get('help', '')}".rstrip())
    return "\n".join(lines)
