"""The difficulty pass's settings: k rollouts of a policy per rl prompt -> pass rate (the Beam graph is
``pipelines.difficulty``; rollouts use ``curation.models.generate_texts``, as evaluation does)."""
from __future__ import annotations

from dataclasses import dataclass, field

STAGE = "difficulty"


@dataclass
class DifficultyConfig:
    model: str | None = field(default=None, metadata={"help": "policy checkpoint (None: the run's SFT model)"})
    k: int = field(default=8, metadata={"help": "sampled rollouts per rl prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (GRPO's rollout temperature)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=64, metadata={"help": "new tokens per rollout (GRPO's max_completion_length)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate call (each with k samples)"})
    limit: int | None = field(default=None, metadata={"help": "score only the first N rl prompts; the rest are carried unscored"})
    seed: int = field(default=0, metadata={"help": "sampling seed (per batch: seed + hash of its first id)"})
    workers: int = field(default=1, metadata={"help": "local Beam worker processes (1: in-process)"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype: None (float32), auto, bfloat16"})
    device: str | None = field(default="auto", metadata={"help": "cpu, cuda or auto"})
