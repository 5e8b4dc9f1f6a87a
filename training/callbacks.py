"""Trainer callbacks shared by the SFT and GRPO entry points: metrics files and a time budget."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback


class JsonlMetrics(TrainerCallback):
    """Append every ``on_log`` dict as one JSON line ``{"step", "epoch", "time_s", ...metrics}``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time_s": round(time.monotonic() - self.start, 2)}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str)) and
                    not (isinstance(v, float) and math.isnan(v))})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


class TimeBudget(TrainerCallback):
    """Stop training cleanly once ``minutes`` of wall time have passed (checked after each step).

    The learning-rate schedule still follows ``max_steps``: pick steps that fit, and treat the
    budget as the guard that keeps a slow machine inside the total time of a recipe.
    """

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else 60.0 * float(minutes)
        self.start = time.monotonic()
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.monotonic() - self.start > self.seconds:
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control


def tensorboard_callback(log_dir: str | Path):
    """TensorBoard logging into ``log_dir`` (Trainer's default would pick a dated folder)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def read_jsonl(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
