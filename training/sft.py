"""SFT cold start: TRL's SFTTrainer on a version's ``sft`` table, loss on the assistant turn only.

The textbook recipe (Vision-R1, LLaVA-CoT, R1-OneVision) fine-tunes on verified reasoning traces
before RL so the policy already writes ``<think>..</think><answer>..</answer>``. What differs:

- Rows are TRL's conversational VLM format (``messages`` + ``images``) read lazily from the
  shards; TRL's vision collator renders the chat template and processes images per batch.
- ``assistant_only_loss``: TRL swaps in the training variant of the Qwen2-VL template, whose
  ``{% generation %}`` markers cover the assistant content and its ``<|im_end|>``, so the
  prompt, the system turn and the image tokens carry no labels.
- A wall-clock budget (``max_minutes``) guards the CPU recipe's 30-minute total.
- The stage's config is TRL's own ``SFTConfig`` (``SFTStageConfig`` subclasses it): recipes use
  TRL's field names, and only ``limit`` and ``max_minutes`` are Sightline's.

One CPU (the mini recipe, a tiny Qwen2-VL):
    sightline train sft --config configs/train/mini.yaml
8 GPUs (a real checkpoint, DeepSpeed ZeRO-3 through accelerate):
    accelerate launch --config_file configs/accelerate/zero3.yaml -m pipelines.train_cmd sft \\
        --config configs/train/qwen2_5_vl_7b.yaml
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from trl import SFTConfig

from curation.loader import to_dict
from training.callbacks import TimeBudget
from training.early_stopping import ValAccuracyStopping
from training.run_config import ModelConfig
from training.trl_defaults import CpuFriendlyDefaults
from training.data import rl_dataset, sft_dataset

# ---------------------------------------------------------------------------- config


@dataclass
class SFTStageConfig(CpuFriendlyDefaults, SFTConfig):
    """TRL's ``SFTConfig``, every field under TRL's name, plus Sightline's ``limit`` and ``max_minutes``.

    ``output_dir`` is the stage folder (``runs/<name>/sft``, filled from the run): checkpoints,
    ``metrics.jsonl``, ``tensorboard/`` and ``final/`` go there. Defaults changed from TRL's: those of
    ``CpuFriendlyDefaults``, the assistant-only loss and no intermediate checkpoints.
    """

    assistant_only_loss: bool = field(default=True, metadata={
        "help": "labels on the assistant turn only: the prompt, system turn and image tokens carry none"})
    save_strategy: str = field(default="no", metadata={
        "help": "no: only final/ is saved (set steps and save_steps for intermediate checkpoints)"})
    limit: int | None = field(default=None, metadata={"help": "use at most this many sft rows (None: all)"})
    levels: list[int] | None = field(default=None, metadata={
        "help": "train only on sft rows of these levels (a cold start on a slice; None: every level)"})
    teachers: list[str] | None = field(default=None, metadata={
        "help": "train only on sft rows whose teacher starts with one of these (e.g. [policy] for a loop "
                "round's own verified answers; None: every teacher)"})
    val_every: int | None = field(default=None, metadata={
        "help": "score greedy accuracy on `val` every this many steps, keep the best weights as final/ "
                "(None: no val checks, final/ = the last step)"})
    val_limit: int | None = field(default=300, metadata={"help": "val rows per check (None: all)"})
    val_max_new_tokens: int = field(default=96, metadata={"help": "generation budget of a val answer (greedy)"})
    early_stopping_patience: int | None = field(default=None, metadata={
        "help": "stop after this many val checks in a row without a gain (None: run the whole schedule)"})
    early_stopping_min_delta: float = field(default=0.0, metadata={
        "help": "a val gain must exceed this (accuracy, 0..1) to count"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop training after this many minutes of wall time (the schedule still follows max_steps)"})

    def __post_init__(self):
        super().__post_init__()
        if self.early_stopping_patience is not None and self.val_every is None:
            raise ValueError("early_stopping_patience needs val_every (steps between val checks)")
        if self.val_every is not None and self.val_every < 1:
            raise ValueError(f"val_every must be >= 1 step, got {self.val_every}")
        if self.levels is not None and not self.levels:
            raise ValueError("levels must name at least one level (or be null for all)")


# ---------------------------------------------------------------------------- setup


def build_trainer(cfg: SFTStageConfig, model: ModelConfig, data: str | Path, version: str | int = "latest", *,
                  train_dataset=None):
    """An ``SFTTrainer`` training ``model`` on ``data``'s sft table (loaded here unless passed in)."""
    from trl import SFTTrainer

    from curation.generation.models import load_model_and_processor
    from training.callbacks import JsonlMetrics, tensorboard_callback

    out = Path(cfg.output_dir)
    policy, processor = load_model_and_processor(model.path, dtype=model.dtype, for_training=True,
                                                 trust_remote_code=model.trust_remote_code)
    if train_dataset is None:
        train_dataset = sft_dataset(data, version, limit=cfg.limit, levels=cfg.levels, teachers=cfg.teachers)
    callbacks = [JsonlMetrics(out / "metrics.jsonl"), TimeBudget(cfg.max_minutes),
                 tensorboard_callback(out / "tensorboard")]
    if cfg.val_every:
        val = rl_dataset(data, version, table="val", limit=cfg.val_limit)
        callbacks.append(ValAccuracyStopping(val, processor, out / "best", every=cfg.val_every,
                                             patience=cfg.early_stopping_patience,
                                             min_delta=cfg.early_stopping_min_delta,
                                             max_new_tokens=cfg.val_max_new_tokens))
    return SFTTrainer(model=policy, args=cfg, train_dataset=train_dataset, processing_class=processor,
                      callbacks=callbacks)


# ---------------------------------------------------------------------------- run


def run(cfg: SFTStageConfig, model: ModelConfig, data: str | Path, version: str | int = "latest") -> dict:
    """Train, save ``<output_dir>/final`` (model + processor), return and write ``sft_result.json``."""
    from curation.generation.models import clear_saved_truncation

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a re-run starts a fresh curve
    (out / "recipe.json").write_text(json.dumps({"model": to_dict(model), "data": str(data), "version": str(version),
                                                 "sft": to_dict(cfg)}, indent=2, default=str) + "\n")
    t0 = time.monotonic()
    trainer = build_trainer(cfg, model, data, version)
    n_rows = len(trainer.train_dataset)
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * max(1, cfg.world_size)
    length = f"{cfg.max_steps} steps" if cfg.max_steps > 0 else f"{cfg.num_train_epochs} epoch(s)"
    print(f"sft: {model.path} on {data} ({n_rows} rows), {length} x batch {per_step}, lr {cfg.learning_rate}",
          flush=True)
    train_out = trainer.train()
    final = out / "final"
    clear_saved_truncation(trainer.processing_class.tokenizer)
    stopping = next((c for c in trainer.callback_handler.callbacks if isinstance(c, ValAccuracyStopping)), None)
    if stopping is not None and stopping.best is not None:  # final/ = the best val checkpoint, not the last step
        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(stopping.best_dir, final)
        clear_saved_truncation(trainer.processing_class.tokenizer)
        trainer.processing_class.save_pretrained(str(final))
    else:
        trainer.save_model(str(final))
        trainer.processing_class.save_pretrained(str(final))
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    result = {
        "model": str(final),
        "base_model": model.path,
        "data": str(data),
        "version": str(version),
        "rows": n_rows,
        "steps": state.global_step,
        "examples_seen": state.global_step * per_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": train_out.training_loss,
        "seconds": round(time.monotonic() - t0, 1),
        "stopped_by_time_budget": any(isinstance(c, TimeBudget) and c.stopped_at is not None
                                      for c in trainer.callback_handler.callbacks),
        "levels": cfg.levels,
        "teachers": cfg.teachers,
        "early_stopping": stopping.record() if stopping is not None else None,
    }
    (out / "sft_result.json").write_text(json.dumps(result, indent=2) + "\n")
    if stopping is not None and stopping.best is not None:
        print(f"sft: best val accuracy {100 * stopping.best['val_accuracy']:.1f}% at step {stopping.best['step']} "
              f"(final/ holds it){'; stopped early at step ' + str(stopping.stopped_at) if stopping.stopped_at else ''}",
              flush=True)
    print(f"sft: {result['steps']} steps in {result['seconds'] / 60:.1f} min, loss {result['first_loss']} -> "
          f"{result['final_loss']}; model at {final}", flush=True)
    return result
