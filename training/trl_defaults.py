"""Sightline's defaults for TRL's trainer configs, where TRL's (chosen for GPU clusters) are wrong here.

``SFTStageConfig`` and ``GRPOStageConfig`` subclass TRL's ``SFTConfig`` / ``GRPOConfig`` with this
mixin first, so every TRL field keeps its name, type and documentation and only these defaults
change (a recipe sets any of them back, as the GPU recipes do):

- ``bf16``: TRL turns it on; on CPU both trainers then refuse to start, and bf16 autocast made
  GRPO ~4x slower (FINDINGS: TRL on CPU).
- ``gradient_checkpointing``: TRL turns it on, which only costs time on a tiny model; back to
  transformers' default (off). Recipes set ``activation_checkpointing``, its current name.
- ``use_cpu``: None means "CPU exactly when no GPU is present" (transformers would try the GPU).
- ``report_to``: none; TensorBoard goes through Sightline's own callback into ``<output_dir>/tensorboard``.
- ``remove_unused_columns``: off, so the shard columns (images, what rewards and samplers read) survive.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CpuFriendlyDefaults:
    """Mixin: list it before TRL's config class (``class X(CpuFriendlyDefaults, SFTConfig)``)."""

    bf16: bool | None = field(default=False, metadata={
        "help": "bf16 mixed precision (GPU); on CPU it is refused or ~4x slower: keep false there"})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "deprecated alias of activation_checkpointing (TRL's default turned it on; here it is off)"})
    use_cpu: bool | None = field(default=None, metadata={
        "help": "train on CPU; None: exactly when no GPU is present"})
    report_to: None | str | list[str] = field(default="none", metadata={
        "help": "trainer integrations; TensorBoard is written by Sightline into <output_dir>/tensorboard"})
    remove_unused_columns: bool | None = field(default=False, metadata={
        "help": "drop dataset columns the model does not take (off: images and reward columns are needed)"})

    def __post_init__(self):
        if self.use_cpu is None:
            import torch

            self.use_cpu = not torch.cuda.is_available()
        super().__post_init__()
