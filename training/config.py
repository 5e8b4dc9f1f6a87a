"""Training recipes: one YAML file, one mapping per section, ``--set section.key=value`` overrides.

    run:        {name, data, version, out_dir, seed}        where the data is and where runs go
    model:      {path, build_tiny, dtype, trust_remote_code} the starting checkpoint
    tiny_model: keyword arguments of training.tiny_model.build_tiny_model (used when model.path is absent)
    sft:        fields of training.sft.SFTRecipe
    difficulty: fields of training.difficulty.DifficultyConfig
    grpo:       fields of the GRPO recipe (training.grpo)
    eval:       fields of training.evaluate.EvalConfig

A section is checked against the dataclass that consumes it: an unknown key is an error that
names the known ones, and values are coerced to the field's type (YAML 1.1 reads ``1e-3`` as a
string; ``--set sft.learning_rate=1e-3`` must still mean a float). Sections owned by a module
that is not installed yet (difficulty, grpo) are kept as plain dicts.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from curation.errors import SightlineError
from curation.config import parse_value, read_yaml as read_recipe_file

SECTIONS = ("run", "model", "tiny_model", "sft", "difficulty", "grpo", "eval")


@dataclass
class RunConfig:
    name: str = field(default="mini", metadata={"help": "run name: outputs go to <out_dir> (default runs/<name>)"})
    data: str = field(default="data/mini", metadata={"help": "dataset folder data/<name>"})
    version: str = field(default="latest", metadata={"help": "curated dataset version to train on: N, vNNNN or latest"})
    out_dir: str | None = field(default=None, metadata={"help": "run folder (None: runs/<name>)"})
    seed: int = field(default=0, metadata={"help": "seed shared by every stage unless a section sets its own"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (None: torch's default); 1 is "
                                                         "faster on a shared 2-core machine, where threads oversubscribe"})
    stages: list = field(default_factory=lambda: ["sft", "difficulty", "grpo", "eval"],
                         metadata={"help": "stages of `train all` after the model exists: sft, difficulty, grpo, eval"})

    @property
    def folder(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")


@dataclass
class ModelConfig:
    path: str = field(default="models/tiny", metadata={"help": "starting checkpoint folder (tiny or a real Qwen2(.5)-VL)"})
    build_tiny: bool = field(default=True, metadata={"help": "build the tiny model at `path` when it is absent"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype on load: None (float32), auto, bfloat16"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code shipped in the checkpoint folder"})


def _tiny_model_defaults() -> dict:
    from training.tiny_model import build_tiny_model

    sig = inspect.signature(build_tiny_model)
    return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and k != "texts"}


# Where each section's dataclass lives. ``None``: a plain dict with known defaults (tiny_model).
SECTION_CLASSES: dict[str, tuple[str, str] | None] = {
    "run": ("training.config", "RunConfig"),
    "model": ("training.config", "ModelConfig"),
    "tiny_model": None,
    "sft": ("training.sft", "SFTRecipe"),
    "difficulty": ("training.difficulty", "DifficultyConfig"),
    "grpo": ("training.grpo", "GRPORecipe"),
    "eval": ("training.evaluate", "EvalConfig"),
}


def section_class(section: str) -> type | None:
    """The dataclass of ``section``, or None when its module (or class) is not there."""
    where = SECTION_CLASSES.get(section)
    if where is None:
        return None
    try:
        cls = getattr(importlib.import_module(where[0]), where[1], None)
    except ImportError:
        return None
    return cls if cls is not None and dataclasses.is_dataclass(cls) else None


# ---------------------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, value parsed as YAML)."""
    if "=" not in text:
        raise SightlineError(f"--set expects section.key=value, got {text!r}")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise SightlineError(f"--set expects section.key=value (e.g. sft.learning_rate=1e-3), got {text!r}")
    return parts[0], parts[1], parse_value(key, raw)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, dict]:
    """Read a recipe into ``{section: {key: value}}`` (every section present), apply overrides, check keys."""
    given = read_recipe_file(path)
    cfg: dict[str, dict] = {s: {} for s in SECTIONS}
    for section, values in given.items():
        if section not in SECTIONS:
            raise SightlineError(f"unknown config section {section!r}; known: {', '.join(SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise SightlineError(f"config section {section!r} must be a mapping, got {type(values).__name__}")
        cfg[section] = copy.deepcopy(values)
    for o in overrides or []:
        section, key, value = parse_override(o)
        if section not in SECTIONS:
            raise SightlineError(f"--set {o}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
        cfg[section][key] = value
    check_config(cfg)
    return cfg


def check_config(cfg: dict[str, dict]) -> None:
    """Fail on an unknown key in any section whose consumer can be found (before any stage runs)."""
    for section, values in cfg.items():
        if section == "tiny_model":
            _check_keys("tiny_model", values, _tiny_model_defaults())
            continue
        cls = section_class(section)
        if cls is not None:
            to_dataclass(cls, values, section)


def _check_keys(section: str, values: dict, known: dict | list) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SightlineError(f"unknown config key {section}.{unknown[0]}; known in {section}: {', '.join(sorted(known))}")


# ---------------------------------------------------------------------------- typing


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` where that is unambiguous; otherwise ``value`` unchanged or an error."""
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
                return _coerce(value, a, where)
            except SightlineError as e:
                errors.append(e)
        raise errors[0] if errors else SightlineError(f"{where}: bad value {value!r}")
    if tp is Any or tp is object:
        return value
    base = origin or tp
    if base is bool:
        if isinstance(value, bool):
            return value
        raise SightlineError(f"{where}: expected true or false, got {value!r}")
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value.strip()):
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
        if isinstance(value, (list, tuple)):
            return list(value) if base is list else tuple(value)
        raise SightlineError(f"{where}: expected a list, got {value!r}")
    if base is dict:
        if isinstance(value, dict):
            return value
        raise SightlineError(f"{where}: expected a mapping, got {value!r}")
    return value


def to_dataclass(cls: type, values: dict | None, section: str, **defaults: Any):
    """``cls(**defaults | values)`` with unknown keys refused and values coerced to the field types."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(section, values, list(fields))
    hints = typing.get_type_hints(cls)
    kwargs = {k: v for k, v in defaults.items() if k in fields}
    for k, v in values.items():
        kwargs[k] = _coerce(v, hints.get(k, Any), f"{section}.{k}")
    obj = cls(**kwargs)
    if cls is RunConfig:
        unknown = sorted(set(obj.stages) - {"sft", "difficulty", "grpo", "eval"})
        if unknown or "sft" not in obj.stages:
            raise SightlineError(f"run.stages must include sft and name only sft, difficulty, grpo, eval; got {obj.stages}")
    return obj


def help_text(cls: type) -> str:
    """One line per field: name, default, help (for ``--help`` and the docs)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        lines.append(f"  {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)
