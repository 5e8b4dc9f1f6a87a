"""The two recipe sections every training stage reads: where the run is (``run``) and what it starts from (``model``).

They sit below the stage modules (``training.sft``, ``training.grpo``) so those can take them as
arguments, and below ``training.recipe``, which assembles the whole recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

STAGES = ("sft", "difficulty", "grpo", "eval")
Stage = Literal["sft", "difficulty", "grpo", "eval"]


@dataclass
class RunConfig:
    name: str = field(default="mini", metadata={"help": "run name: outputs go to <out_dir> (default runs/<name>)"})
    data: str = field(default="data/mini", metadata={"help": "dataset folder data/<name> (the versioned store)"})
    version: str = field(default="latest", metadata={"help": "curated dataset version to train on: N, vNNNN or latest"})
    out_dir: str | None = field(default=None, metadata={"help": "run folder (None: runs/<name>)"})
    seed: int = field(default=0, metadata={"help": "seed of every stage unless its section sets its own"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (None: torch's default); 1 is "
                                                         "faster on a shared 2-core machine, where threads oversubscribe"})
    stages: list[Stage] = field(default_factory=lambda: list(STAGES),
                                metadata={"help": "stages of `train all` after the model exists: sft, difficulty, grpo, eval"})

    def __post_init__(self):
        if "sft" not in self.stages:
            raise ValueError(f"stages must include sft (the others start from its checkpoint), got {self.stages}")

    @property
    def folder(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")


@dataclass
class ModelConfig:
    path: str = field(default="models/tiny", metadata={"help": "starting checkpoint folder (tiny or a real Qwen2(.5)-VL)"})
    build_tiny: bool = field(default=True, metadata={"help": "build the tiny model at `path` when it is absent"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype on load: None (float32), auto, bfloat16"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code shipped in the checkpoint folder"})
