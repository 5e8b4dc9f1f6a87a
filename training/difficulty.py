"""The difficulty pass's settings: k rollouts of a policy per rl prompt -> pass rate (the Beam graph is
``pipelines.difficulty``; rollouts use ``curation.models.generate_texts``, as evaluation does).

The one place its defaults are written: the recipe's ``difficulty`` section, ``sightline difficulty``'s
flags and ``pipelines.difficulty.run`` all go through this class, which refuses a bad value when built.
"""
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

    def __post_init__(self):
        if min(self.k, self.batch_size, self.max_new_tokens, self.workers) < 1:
            raise ValueError("k, batch_size, max_new_tokens and workers must be >= 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0 (or None for all), got {self.limit}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
