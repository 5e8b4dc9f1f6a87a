"""The GRPO stage: load the policy and the rl prompts, build the hooked trainer, train (resuming), save, summarise."""
from __future__ import annotations

import json
import time
from pathlib import Path

from curation.loader import to_dict
from training.data import rl_dataset
from training.grpo.curves import CurvesCallback, plot_curves
from training.grpo.resume import (
    SAMPLER_STATE,
    SamplerStateCallback,
    prepare_output,
    read_sampler_state,
    start_fingerprint,
)
from training.grpo.settings import GRPOStageConfig
from training.grpo.trainer_hook import SamplerGRPOTrainer
from training.rewards import judge_record, judge_stats, reward_functions
from training.run_config import ModelConfig
from training.sampling import make_sampler


def prior_counts(dataset) -> dict[str, tuple[int, int]]:
    """id -> (n_correct, n_rollouts) for the rows the difficulty pipeline scored."""
    cols = dataset.select_columns(["id", "n_correct", "n_rollouts"]).to_dict()
    return {pid: (c, n) for pid, c, n in zip(cols["id"], cols["n_correct"], cols["n_rollouts"])
            if c is not None and n}


def build_trainer(cfg: GRPOStageConfig, model: ModelConfig, data: str | Path, version: str | int = "latest", *,
                  train_dataset=None, reward_funcs=None, resume_from: Path | None = None,
                  judge=None) -> SamplerGRPOTrainer:
    """A ``SamplerGRPOTrainer`` for ``cfg``; with ``resume_from``, its sampler is restored from that checkpoint.

    ``reward_funcs`` (callables) replaces the recipe's rewards; ``cfg.reward_weights`` must then match them
    (None: each weighs 1). ``judge`` (the recipe's ``judge:``, a ``JudgeSpec``): the ``accuracy`` reward
    judges the ``open`` rows (``training.rewards.make_judge_reward``).
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    from curation.generation.models import load_model_and_processor
    from training.callbacks import JsonlMetrics, TimeBudget

    out = Path(cfg.output_dir)
    policy, processor = load_model_and_processor(model.path, dtype=model.dtype, for_training=True,
                                                 trust_remote_code=model.trust_remote_code)
    # TRL left-pads prompt_ids itself but takes the image-token types from the processor's own
    # padding: right padding misaligns them, silently shifting positions or failing in Qwen2-VL's rope index.
    getattr(processor, "tokenizer", processor).padding_side = "left"
    if train_dataset is None:
        train_dataset = rl_dataset(data, version, limit=cfg.limit)
    sampler = make_sampler(cfg.sampler, list(train_dataset["id"]), seed=cfg.seed,
                           prior_counts=prior_counts(train_dataset) if cfg.use_prior else None, **cfg.sampler_params)
    saved = read_sampler_state(resume_from)
    if saved["sampler"] is not None:
        sampler.load_state_dict(saved["sampler"])
    tb = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=saved["global_step"] + 1)
    trainer = SamplerGRPOTrainer(
        model=policy, reward_funcs=reward_funcs or reward_functions(cfg.reward_funcs, length_stages=cfg.length_stages,
                                                                  length_soft=cfg.length_soft, judge=judge),
        args=cfg, train_dataset=train_dataset,
        processing_class=processor, prompt_sampler=sampler, pending=saved["pending"],
        rounds_generated=saved["rounds_generated"],
        callbacks=[JsonlMetrics(out / "metrics.jsonl"), TimeBudget(cfg.max_minutes),
                   TensorBoardCallback(tb_writer=tb), CurvesCallback(out / "metrics.jsonl", out / "curves.png")])
    trainer.add_callback(SamplerStateCallback(trainer))
    return trainer


def run(cfg: GRPOStageConfig, model: ModelConfig, data: str | Path, version: str | int = "latest", *,
        judge=None) -> dict:
    """Train ``model`` (resuming when a matching checkpoint exists), save ``<output_dir>/final``, return and
    write ``grpo_result.json``. With ``judge`` (a ``JudgeSpec``), open rows are judged and the result holds
    the judge's calls, calls per second and cache hit rate under ``judge``."""
    out = Path(cfg.output_dir)
    start = start_fingerprint(model.path, data, version, limit=cfg.limit, sampler=cfg.sampler)
    resume_from = prepare_output(out, start, resume=cfg.resume)
    (out / "recipe.json").write_text(json.dumps({"model": to_dict(model), "data": str(data), "version": str(version),
                                                 "grpo": to_dict(cfg),
                                                 "judge": to_dict(judge) if judge is not None else None},
                                                indent=2, default=str) + "\n")
    t0 = time.monotonic()
    trainer = build_trainer(cfg, model, data, version, resume_from=resume_from, judge=judge)
    print(f"grpo: {model.path} on {data} ({len(trainer.train_dataset)} prompts), sampler {cfg.sampler}, "
          f"{cfg.max_steps} steps x {cfg.prompts_per_round} prompts x {cfg.num_generations} completions, "
          f"lr {cfg.learning_rate}" + (f"; resuming from {resume_from}" if resume_from else ""), flush=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = out / "final"
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    (final / SAMPLER_STATE).write_text(json.dumps(trainer.sampler_checkpoint()))
    plot_curves(out / "metrics.jsonl", out / "curves.png")
    result = summarise(trainer, cfg, model, data, version, resume_from, time.monotonic() - t0)
    judged = [f for f in trainer.reward_funcs if hasattr(f, "stats")]
    if judged:
        result["judge"] = judge_record(judged[0])
    (out / "grpo_result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"grpo: {result['steps']} steps in {result['seconds'] / 60:.1f} min, reward {result['first_reward']} -> "
          f"{result['final_reward']}; model at {final}", flush=True)
    if judged:
        print(f"grpo: {judge_stats(judged[0])}", flush=True)
    return result


def summarise(trainer, cfg: GRPOStageConfig, model: ModelConfig, data, version, resume_from, seconds: float) -> dict:
    """``grpo_result.json``: what ran, the first and last reward, and the run's means of the per-step diagnostics."""
    logs = [h for h in trainer.state.log_history if "reward" in h]

    def mean(key: str) -> float | None:
        values = [h[key] for h in logs if h.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {
        "model": str(Path(cfg.output_dir) / "final"), "base_model": model.path, "data": str(data),
        "version": str(version), "sampler": cfg.sampler, "prompts": len(trainer.train_dataset),
        "steps": trainer.state.global_step, "resumed_from": str(resume_from) if resume_from else None,
        "first_reward": logs[0]["reward"] if logs else None, "final_reward": logs[-1]["reward"] if logs else None,
        "mean_effective_group_ratio": mean("sampler/effective_group_ratio"), "mean_kl": mean("kl"),
        "mean_entropy": mean("entropy"), "mean_clip_ratio": mean("clip_ratio/region_mean"),
        "seconds": round(seconds, 1),
    }
