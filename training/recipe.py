"""The training recipe: one YAML file, one section per stage, ``--set section.key=value`` overrides.

    run:        RunConfig          where the data is, where the run goes, seed, threads, stages of `train all`
    model:      ModelConfig        the starting checkpoint (built as the tiny model when absent and allowed)
    tiny_model: TinyModelConfig    build_tiny_model's keyword arguments
    sft:        SFTStageConfig     trl.SFTConfig, TRL's field names, + limit, max_minutes
    difficulty: DifficultyConfig   k rollouts per rl prompt by the SFT policy -> pass rates (a new version)
    grpo:       GRPOStageConfig    trl.GRPOConfig, TRL's field names, + sampler, sampler_params, use_prior,
                                   reward_funcs, length_stages, length_soft, limit, max_minutes, resume
    eval:       EvalConfig         greedy held-out accuracy
    judge:      JudgeSpec          a judge for open (sentence) answers, the data recipe's ``judge:`` shape:
                                   GRPO's accuracy reward and eval score ``open`` rows with it (default: none)

``load_train_recipe`` reads and checks all of it with ``curation.loader`` (the loader every
recipe uses) before anything is read, written or deleted: an unknown key, a bad value, a mistyped
sampler or reward fails with one line. Values the run decides are given to the sections as
defaults a recipe may still override: ``output_dir`` (``<run folder>/sft`` and ``/grpo``) and the
seed, ``dtype`` for difficulty and eval, and the difficulty pass's ``k``, ``temperature``,
``max_new_tokens`` and ``limit`` from GRPO's ``num_generations``, ``temperature``,
``max_completion_length`` and ``limit`` (``rollouts_of``: set once, under ``grpo``). They are filled before TRL's configs are constructed,
because ``GRPOConfig.__post_init__`` derives ``generation_batch_size`` from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curation import loader as recipe_loader
from curation.difficulty.settings import DifficultyConfig
from curation.errors import SightlineError
from curation.generation.judge import JudgeSpec
from training.evaluate import EvalConfig
from training.grpo.settings import GRPOStageConfig
from training.run_config import ModelConfig, RunConfig
from training.sft import SFTStageConfig
from training.tiny_model import TinyModelConfig


@dataclass
class TrainRecipe:
    run: RunConfig = field(default_factory=RunConfig, metadata={
        "help": "where the data is (data, version) and where the run goes (runs/<name>); seed, threads, stages"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "help": "the starting checkpoint: path, build_tiny, dtype, trust_remote_code"})
    tiny_model: TinyModelConfig = field(default_factory=TinyModelConfig, metadata={
        "help": "sizes of the tiny Qwen2-VL built at model.path when it is absent"})
    sft: SFTStageConfig = field(default_factory=SFTStageConfig, metadata={
        "help": "trl.SFTConfig under TRL's field names, + limit, max_minutes"})
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig, metadata={
        "help": "pass rates of the SFT policy over k rollouts per rl prompt (a new data version)"})
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig, metadata={
        "help": "trl.GRPOConfig under TRL's field names, + sampler, sampler_params, use_prior, reward_funcs, "
                "length_stages, length_soft, limit, max_minutes, resume"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={
        "help": "greedy held-out accuracy of base, SFT and GRPO on the test table"})
    judge: JudgeSpec = field(default_factory=JudgeSpec, metadata={
        "help": "a judge for open (sentence) answers: backend none | program | transformers | vllm, model; GRPO's "
                "accuracy reward and eval score open rows with it, apart from rule-verified accuracy"})


SECTIONS = tuple(recipe_loader.init_fields(TrainRecipe))


def load_train_recipe(path: str | Path | None, overrides: list[str] | None = None) -> TrainRecipe:
    """The recipe at ``path`` with ``overrides`` (``section.key=value``), every section built and checked."""
    values = recipe_loader.apply_overrides(recipe_loader.read_yaml(path), overrides)
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise SightlineError(f"unknown config section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    run = recipe_loader.build(RunConfig, values.get("run"), "run")
    model = recipe_loader.build(ModelConfig, values.get("model"), "model")
    # Sections built from the run's values first; TrainRecipe then takes the built objects as they are.
    values["run"], values["model"] = run, model
    values["tiny_model"] = recipe_loader.build(TinyModelConfig, values.get("tiny_model"), "tiny_model", seed=run.seed)
    values["sft"] = recipe_loader.build(SFTStageConfig, values.get("sft"), "sft",
                                        output_dir=str(run.folder / "sft"), seed=run.seed)
    values["grpo"] = recipe_loader.build(GRPOStageConfig, values.get("grpo"), "grpo",
                                         output_dir=str(run.folder / "grpo"), seed=run.seed)
    values["judge"] = recipe_loader.build(JudgeSpec, values.get("judge"), "judge")
    values["difficulty"] = recipe_loader.build(DifficultyConfig, values.get("difficulty"), "difficulty",
                                               seed=run.seed, dtype=model.dtype, judge=values["judge"],
                                               **rollouts_of(values["grpo"]))
    values["eval"] = recipe_loader.build(EvalConfig, values.get("eval"), "eval", dtype=model.dtype)
    return recipe_loader.build(TrainRecipe, values)


def rollouts_of(grpo: GRPOStageConfig) -> dict:
    """The difficulty pass's rollout settings as GRPO samples them: the group size, the temperature, the
    completion length and the prompt limit are set once, under ``grpo``; a recipe may still override each
    under ``difficulty`` (e.g. more rollouts for a finer pass rate)."""
    out = {"k": grpo.num_generations, "temperature": grpo.temperature, "max_new_tokens": grpo.max_completion_length}
    return out | ({"limit": grpo.limit} if grpo.limit is not None else {})


def describe_sections() -> str:
    """One line per section (for ``sightline train --help``)."""
    width = max(map(len, SECTIONS))
    return "\n".join(f"  {name.ljust(width)}  {f.metadata['help']}"
                     for name, f in recipe_loader.init_fields(TrainRecipe).items())
