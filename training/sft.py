"""SFT cold start: TRL's SFTTrainer on a version's ``sft`` table, loss on the assistant turn only.

The textbook recipe (Vision-R1, LLaVA-CoT, R1-OneVision) fine-tunes on verified reasoning traces
before RL so the policy already writes ``<think>..</think><answer>..</answer>``. What differs:

- Rows are TRL's conversational VLM format (``messages`` + ``images``) read lazily from the
  shards; TRL's vision collator renders the chat template and processes images per batch.
- ``assistant_only_loss``: TRL swaps in the training variant of the Qwen2-VL template, whose
  ``{% generation %}`` markers cover the assistant content and its ``<|im_end|>``, so the
  prompt, the system turn and the image tokens carry no labels.
- A wall-clock budget (``max_minutes``) guards the CPU recipe's 30-minute total.

One CPU (the mini recipe, a tiny Qwen2-VL):
    sightline train sft --config configs/train/mini.yaml
8 GPUs (a real checkpoint, DeepSpeed ZeRO-3 through accelerate):
    accelerate launch --config_file configs/accelerate/zero3.yaml -m pipelines.train_cmd sft \\
        --config configs/train/qwen2_5_vl_7b.yaml
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------- recipe


@dataclass
class SFTRecipe:
    model: str = field(default="models/tiny", metadata={"help": "checkpoint folder to start from (tiny or a real Qwen2(.5)-VL)"})
    data: str = field(default="data/mini", metadata={"help": "dataset folder data/<name> (the versioned store)"})
    version: str = field(default="latest", metadata={"help": "dataset version: N, vNNNN or latest"})
    output_dir: str = field(default="runs/mini/sft", metadata={"help": "run folder: checkpoints, metrics.jsonl, tensorboard/, final/"})
    limit: int | None = field(default=None, metadata={"help": "use at most this many sft rows (None: all)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the sft rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; > 0 overrides epochs"})
    batch_size: int = field(default=32, metadata={"help": "rows per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name: cosine, linear, constant_with_warmup, ..."})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    max_length: int | None = field(default=1024, metadata={"help": "truncate rendered samples to this many tokens (keep_start)"})
    assistant_only_loss: bool = field(default=True, metadata={"help": "labels on the assistant turn only (prompt and image tokens masked)"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype on load: None (float32), auto, bfloat16"})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU); on CPU it is slower, keep False"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (real models on GPU)"})
    use_cpu: bool | None = field(default=None, metadata={"help": "force CPU; None: CPU exactly when no GPU is present"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code shipped in the checkpoint folder"})
    seed: int = field(default=0, metadata={"help": "seed for weights init order, shuffling and dropout"})
    logging_steps: int = field(default=10, metadata={"help": "log loss / lr / grad norm every N steps"})
    save_steps: int = field(default=0, metadata={"help": "save a checkpoint every N steps (0: only the final model)"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop training after this many minutes of wall time"})
    num_workers: int = field(default=0, metadata={"help": "dataloader worker processes (image decoding)"})
    trainer: dict = field(default_factory=dict, metadata={"help": "any other SFTConfig field, passed as is (deepspeed, fsdp, optim, ...)"})


# ---------------------------------------------------------------------------- setup


def sft_config(recipe: SFTRecipe):
    """The TRL ``SFTConfig`` a recipe stands for."""
    import torch
    from trl import SFTConfig

    out = Path(recipe.output_dir)
    use_cpu = (not torch.cuda.is_available()) if recipe.use_cpu is None else recipe.use_cpu
    kwargs: dict[str, Any] = {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": recipe.epochs,
        "max_steps": recipe.max_steps,
        "per_device_train_batch_size": recipe.batch_size,
        "gradient_accumulation_steps": recipe.grad_accum,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler,
        "warmup_steps": recipe.warmup_steps,
        "weight_decay": recipe.weight_decay,
        "max_grad_norm": recipe.max_grad_norm,
        "max_length": recipe.max_length,
        "assistant_only_loss": recipe.assistant_only_loss,
        "bf16": recipe.bf16,
        "use_cpu": use_cpu,
        "activation_checkpointing": recipe.gradient_checkpointing,  # TRL's default would turn it on
        "seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "save_strategy": "steps" if recipe.save_steps else "no",
        "save_steps": recipe.save_steps or 500,
        "report_to": "none",  # TensorBoard through our callback, into <run>/tensorboard
        "dataloader_num_workers": recipe.num_workers,
        "remove_unused_columns": False,
    }
    kwargs.update(recipe.trainer)
    return SFTConfig(**kwargs)


def build_trainer(recipe: SFTRecipe, *, model=None, processor=None, train_dataset=None):
    """An ``SFTTrainer`` for ``recipe`` (model, processor and data loaded unless passed in)."""
    from trl import SFTTrainer

    from training.callbacks import JsonlMetrics, TimeBudget, tensorboard_callback
    from training.data import sft_dataset
    from curation.models import load_model_and_processor

    out = Path(recipe.output_dir)
    if model is None or processor is None:
        model, processor = load_model_and_processor(recipe.model, dtype=recipe.dtype, for_training=True,
                                                     trust_remote_code=recipe.trust_remote_code)
    if train_dataset is None:
        train_dataset = sft_dataset(recipe.data, recipe.version, limit=recipe.limit)
    callbacks = [JsonlMetrics(out / "metrics.jsonl"), TimeBudget(recipe.max_minutes),
                 tensorboard_callback(out / "tensorboard")]
    return SFTTrainer(model=model, args=sft_config(recipe), train_dataset=train_dataset,
                      processing_class=processor, callbacks=callbacks)


# ---------------------------------------------------------------------------- run


def run(recipe: SFTRecipe) -> dict:
    """Train, save ``<output_dir>/final`` (model + processor), return and write ``sft_result.json``."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a re-run starts a fresh curve
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2, default=str) + "\n")
    t0 = time.monotonic()
    trainer = build_trainer(recipe)
    n_rows = len(trainer.train_dataset)
    print(f"sft: {recipe.model} on {recipe.data} ({n_rows} rows), {trainer.args.max_steps if trainer.args.max_steps > 0 else f'{recipe.epochs} epoch(s)'}"
          f" x batch {recipe.batch_size * recipe.grad_accum}, lr {recipe.learning_rate}", flush=True)
    train_out = trainer.train()
    final = out / "final"
    from curation.models import clear_saved_truncation

    clear_saved_truncation(trainer.processing_class.tokenizer)
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    result = {
        "model": str(final),
        "base_model": recipe.model,
        "data": recipe.data,
        "version": recipe.version,
        "rows": n_rows,
        "steps": state.global_step,
        "examples_seen": state.global_step * recipe.batch_size * recipe.grad_accum * max(1, trainer.args.world_size),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": train_out.training_loss,
        "seconds": round(time.monotonic() - t0, 1),
        "stopped_by_time_budget": any(getattr(c, "stopped_at", None) is not None
                                      for c in trainer.callback_handler.callbacks),
    }
    (out / "sft_result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"sft: {result['steps']} steps in {result['seconds'] / 60:.1f} min, loss {result['first_loss']} -> "
          f"{result['final_loss']}; model at {final}", flush=True)
    return result
