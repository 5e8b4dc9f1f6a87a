"""YAML recipes with `--set a.b=c` overrides, checked against the defaults so typos fail loudly."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from curation.errors import SightlineError


def parse_value(key: str, raw: str) -> Any:
    """An override's value, typed as YAML reads it ("3" -> 3, "[a, b]" -> list, "" -> "")."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise SightlineError(f"--set {key}: cannot parse value {raw!r}: {e}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise SightlineError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip().split("."), parse_value(key, raw)


def read_recipe_file(path: str | Path | None) -> dict:
    """The YAML mapping in ``path`` ({} for None), or a one-line error."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise SightlineError(f"config file {p} does not exist")
    try:
        given = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise SightlineError(f"{p}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(given, dict):
        raise SightlineError(f"{p}: a recipe must be a mapping of sections")
    return given


def set_path(cfg: dict, path: list[str], value: Any, *, known: dict | None = None) -> None:
    """Set cfg[a][b][c] = value; with ``known`` (the defaults), refuse keys the recipe format lacks."""
    node, ref = cfg, known
    for i, part in enumerate(path[:-1]):
        if ref is not None:
            if not isinstance(ref, dict) or part not in ref:
                raise SightlineError(f"unknown config key {'.'.join(path[:i + 1])!r}")
            ref = ref[part]
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SightlineError(f"config key {'.'.join(path[:i + 1])!r} is not a section")
    if ref is not None and isinstance(ref, dict) and ref and path[-1] not in ref:
        raise SightlineError(f"unknown config key {'.'.join(path)!r}; known here: {', '.join(sorted(ref))}")
    node[path[-1]] = value


def merge_checked(defaults: dict, given: dict, where: str = "") -> dict:
    """Deep-merge ``given`` over ``defaults``; unknown keys are an error (open sections: empty dict defaults)."""
    out = copy.deepcopy(defaults)
    for k, v in (given or {}).items():
        name = f"{where}{k}"
        if defaults and k not in defaults:
            raise SightlineError(f"unknown config key {name!r}; known: {', '.join(sorted(defaults))}")
        if isinstance(defaults.get(k), dict) and defaults.get(k) and isinstance(v, dict):
            out[k] = merge_checked(defaults[k], v, name + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_recipe(path: str | Path | None, overrides: list[str] | None, defaults: dict) -> dict:
    cfg = merge_checked(defaults, read_recipe_file(path))
    for o in overrides or []:
        keys, value = parse_override(o)
        set_path(cfg, keys, value, known=defaults)
    return cfg
