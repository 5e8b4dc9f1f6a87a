"""YAML recipes with `--set a.b=c` overrides, checked against the defaults so typos fail loudly."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from curation.config import parse_override, read_yaml as read_recipe_file
from curation.errors import SightlineError


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
