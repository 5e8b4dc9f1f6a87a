"""Resuming GRPO after kill -9: checkpoint discovery, the sampler's state, and what a fresh start clears.

Each checkpoint folder (``<output_dir>/checkpoint-N``, TRL's layout) gets ``sampler_state.json``
last: the sampler's state, the rounds generated, and the rounds drawn but not yet trained on (the
dataloader runs one round ahead). Its presence marks a complete checkpoint. A run resumes from the
newest complete one only when it starts from the same thing (``start.json``: model weights, data
version, prompt limit, sampler); otherwise it starts afresh and clears the stale curves and
checkpoints. Both decisions come after the recipe was checked, so a typo never gets this far.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import TrainerCallback
from curation.store.versions import Store

SAMPLER_STATE = "sampler_state.json"
START = "start.json"


def checkpoint_step(folder: Path) -> int:
    tail = folder.name.split("-")[-1]
    return int(tail) if tail.isdigit() else -1


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` that is complete (trainer state and sampler state both written)."""
    folders = sorted(Path(output_dir).glob("checkpoint-*"), key=checkpoint_step)
    done = [p for p in folders if (p / "trainer_state.json").is_file() and (p / SAMPLER_STATE).is_file()]
    return done[-1] if done else None


def start_fingerprint(model_path: str | Path, data: str | Path, version: str | int, *, limit: int | None,
                      sampler: str) -> dict:
    """What a run starts from: resuming is only right when this is unchanged (a re-run of
    ``train all`` retrains SFT into the same folder and may score a new data version)."""
    weights = sorted(p for p in Path(model_path).glob("*") if p.suffix in (".safetensors", ".bin", ".pt"))
    return {"model": str(Path(model_path).resolve()), "data": str(Path(data).resolve()),
            "version": Store(data).resolve(version), "limit": limit, "sampler": sampler,
            "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights]}


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric rows logged after ``last_step`` (by a run that died before its next checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the half line a kill -9 can leave
            continue
        if row.get("step", 0) <= last_step:
            kept.append(line + "\n")
    path.write_text("".join(kept))


def prepare_output(out: Path, start: dict, *, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None after clearing a stale run's curves and checkpoints in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(out) if resume else None
    started = json.loads((out / START).read_text()) if (out / START).is_file() else None
    if resume_from is not None and started != start:
        print(f"grpo: {out} started from another model, data version or sampler; starting afresh", flush=True)
        resume_from = None
    if resume_from is not None:
        truncate_metrics(out / "metrics.jsonl", checkpoint_step(resume_from))
        return resume_from
    for stale in (out / "metrics.jsonl", out / "curves.png"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(out / "tensorboard", ignore_errors=True)
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    (out / START).write_text(json.dumps(start, indent=2) + "\n")
    return None


def read_sampler_state(checkpoint: Path | None) -> dict:
    """The sampler state saved in ``checkpoint`` (a fresh start's when None)."""
    if checkpoint is None:
        return {"pending": [], "rounds_generated": 0, "global_step": 0, "sampler": None}
    return json.loads((checkpoint / SAMPLER_STATE).read_text())


class SamplerStateCallback(TrainerCallback):
    """Writes ``sampler_state.json`` into each checkpoint folder (last, so its presence marks a complete one).

    ``trainer`` is a ``SamplerGRPOTrainer`` (its ``sampler_checkpoint()`` is what is saved).
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            tmp = folder / (SAMPLER_STATE + ".tmp")
            tmp.write_text(json.dumps(self.trainer.sampler_checkpoint()))
            tmp.replace(folder / SAMPLER_STATE)
