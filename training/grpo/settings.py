"""The GRPO stage's config: TRL's ``GRPOConfig`` (every field under TRL's name) plus Sightline's own.

Prompts per generation round = ``generation_batch_size / num_generations``, where TRL derives
``generation_batch_size = per_device_train_batch_size x processes x steps_per_generation``
(``steps_per_generation`` defaults to ``gradient_accumulation_steps``). So 8 prompts x 8
completions on one CPU is ``per_device_train_batch_size: 64``; 64 x 8 on 8 GPUs with 4
accumulation steps is ``per_device_train_batch_size: 16``.

Sightline adds the prompt sampler (``sampler``, ``sampler_params``, ``use_prior``), the rewards by
name (``reward_funcs``, weighed by TRL's own ``reward_weights``; ``length_stages`` and
``length_soft`` shape the length reward), ``limit``, ``max_minutes`` and ``resume``. All of them
are checked here, when the recipe loads: a mistyped sampler or reward fails before any model,
data or run folder is touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from training.rewards import LENGTH_REWARD, REWARD_NAMES
from training.trl_defaults import CpuFriendlyDefaults
from training.sampling import make_sampler


@dataclass
class GRPOStageConfig(CpuFriendlyDefaults, GRPOConfig):
    """TRL's ``GRPOConfig`` plus Sightline's prompt sampler, rewards by name, ``limit``, ``max_minutes``, ``resume``.

    ``output_dir`` is the stage folder (``runs/<name>/grpo``, filled from the run): ``checkpoint-N/``
    (each with ``sampler_state.json``), ``metrics.jsonl``, ``tensorboard/``, ``curves.png``, ``final/``.
    Do not ``dataclasses.replace`` an instance: TRL derives ``generation_batch_size`` and
    ``steps_per_generation`` in ``__post_init__`` and refuses both set; build a new one from values.
    """

    # TRL defaults changed for this project
    logging_steps: float = field(default=1, metadata={"help": "log rewards and sampler statistics every N steps"})
    save_steps: float = field(default=25, metadata={"help": "checkpoint (with sampler_state.json) every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "keep at most this many checkpoints"})
    # The prompt sampler restores its own position: the Trainer must not fast-forward the
    # dataloader on resume (that would draw, and so consume, rounds of a stateful sampler).
    ignore_data_skip: bool = field(default=True, metadata={
        "help": "true: on resume the prompt sampler restores its own position (never fast-forward the dataloader)"})
    reward_weights: list[float] | None = field(default_factory=lambda: [1.0, 0.1], metadata={
        "help": "one weight per reward in reward_funcs, in that order (TRL's field)"})
    # Sightline's own
    reward_funcs: list[str] = field(default_factory=lambda: ["accuracy", "format"], metadata={
        "help": "rewards by name: accuracy, format, length (the length reward needs length_stages)"})
    length_stages: Any = field(default=None, metadata={
        "help": "length reward's limit: tokens, or [[start_step, max_tokens], ...] (Vision-R1 PTST)"})
    length_soft: int = field(default=0, metadata={
        "help": "length reward: DAPO's soft band below the limit, in tokens (0: hard cut)"})
    sampler: str = field(default="vade", metadata={"help": "prompt sampler: uniform | vade | vas | mixed"})
    sampler_params: dict = field(default_factory=dict, metadata={
        "help": "the sampler's parameters (vade: l1, l2; vas: alpha, beta, lam, refresh_every, ...)"})
    use_prior: bool = field(default=True, metadata={
        "help": "start the sampler from the shard's n_correct / n_rollouts (the difficulty pass)"})
    limit: int | None = field(default=None, metadata={"help": "use at most this many rl prompts (None: all)"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop training after this many minutes"})
    resume: bool = field(default=True, metadata={
        "help": "resume from the newest complete checkpoint in output_dir when the run starts from the same model, "
                "data and sampler"})

    def __post_init__(self):
        check_rewards(self.reward_funcs, self.reward_weights, self.length_stages)
        check_sampler(self.sampler, self.sampler_params, self.seed)
        super().__post_init__()
        prompts = self.prompts_per_round
        if self.limit is not None and self.limit < prompts:
            raise ValueError(f"limit {self.limit} is below the {prompts} prompts of one generation round "
                             f"(generation_batch_size {self.generation_batch_size} / num_generations "
                             f"{self.num_generations})")

    @property
    def prompts_per_round(self) -> int:
        return self.generation_batch_size // self.num_generations


def check_rewards(names: list[str], weights: list[float] | None, length_stages: Any) -> None:
    unknown = [n for n in names if n not in REWARD_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown reward {unknown[0]!r}; known rewards: {', '.join(REWARD_NAMES)}" if unknown
                         else "reward_funcs is empty: GRPO needs at least one reward")
    if weights is not None and len(weights) != len(names):
        raise ValueError(f"reward_weights has {len(weights)} weight(s) for {len(names)} reward_funcs {names}")
    if LENGTH_REWARD in names and length_stages is None:
        raise ValueError("the length reward needs length_stages (a token limit or [[start_step, limit], ...])")


def check_sampler(name: str, params: dict, seed: int) -> None:
    """Build the sampler once over placeholder ids: the registry checks the name, the parameter names and
    their values exactly as the run will (``training.sampling.make_sampler``)."""
    batch = params.get("batch_size")
    n_ids = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 else 1
    make_sampler(name, [f"p{i}" for i in range(n_ids)], seed=seed, **params)
