"""Early stopping on held-out accuracy: SFT trained to its plateau, the best checkpoint kept.

The seeds' cold starts stop when the policy stops improving on held-out data (Vision-R1 and
OpenVLThinker pick the SFT checkpoint by validation accuracy before RL). Loss is the wrong signal
here: on a tiny model the loss keeps falling while the greedy answers stop changing. So every
``every`` optimizer steps the model being trained answers ``val`` rows greedily, scored by the
same verifier as the GRPO reward and the final evaluation (``training.evaluate.score``); the best
weights are saved to ``best_dir``; ``patience`` evaluations in a row without a gain larger than
``min_delta`` stop training. The curve (step, accuracy, seconds) and the plateau step (the best
one) are kept for the run's record.

This is ``transformers.EarlyStoppingCallback``'s rule, but on a generation metric: the Trainer's own
evaluation loop computes losses, not greedy answers.
"""
from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback
from training.evaluate import score


class Plateau:
    """The stopping rule on a series of scores: the best so far, and whether ``patience`` checks in a row
    failed to beat it by more than ``min_delta``."""

    def __init__(self, patience: int | None, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best: dict | None = None
        self.misses = 0

    def update(self, step: int, value: float) -> tuple[bool, bool]:
        """Record ``value`` at ``step``: (is it the new best, should training stop)."""
        improved = self.best is None or value > self.best["val_accuracy"] + self.min_delta
        if improved:
            self.best = {"step": step, "val_accuracy": value}
            self.misses = 0
        else:
            self.misses += 1
        return improved, self.patience is not None and self.misses >= self.patience


class ValAccuracyStopping(TrainerCallback):
    """Score greedy val accuracy every ``every`` steps; keep the best weights; stop after ``patience`` misses."""

    def __init__(self, rows, processor, best_dir: str | Path, *, every: int, patience: int | None,
                 min_delta: float = 0.0, max_new_tokens: int = 96, batch_size: int = 64):
        assert every >= 1, "every must be >= 1 step"
        self.rows = rows                      # datasets.Dataset in the rl layout (prompt, images, solution, ...)
        self.processor = processor
        self.best_dir = Path(best_dir)
        self.every, self.patience = every, patience
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.curve: list[dict] = []
        self.plateau = Plateau(patience, min_delta)
        self.stopped_at: int | None = None
        self.seconds = 0.0

    def accuracy(self, model) -> float:
        """Greedy accuracy of ``model`` on the rows (the model is put back in training mode after)."""
        from curation.generation.models import generate_texts

        was_training = model.training
        model.eval()
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            texts: list[str] = []
            for start in range(0, len(self.rows), self.batch_size):
                chunk = self.rows[start:start + self.batch_size]
                texts += generate_texts(model, self.processor, chunk["prompt"], chunk["images"],
                                        max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                        progress=False)
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        meta = self.rows.select_columns(["id", "task", "solution", "choices", "answer_type"]).to_list()
        return score(texts, meta)["accuracy"]

    def check(self, model, step: int) -> bool:
        """Score at ``step``; save when best; True when patience ran out."""
        t0 = time.monotonic()
        acc = self.accuracy(model)
        self.seconds += time.monotonic() - t0
        self.curve.append({"step": step, "val_accuracy": acc, "seconds": round(time.monotonic() - t0, 1)})
        improved, stop = self.plateau.update(step, acc)
        if improved:
            model.save_pretrained(str(self.best_dir))
            self.processor.save_pretrained(str(self.best_dir))
        print(f"sft: step {step} val accuracy {100 * acc:.1f}% (best {100 * self.best['val_accuracy']:.1f}% at "
              f"step {self.best['step']}; {self.plateau.misses} without gain)", flush=True)
        return stop

    @property
    def best(self) -> dict | None:
        return self.plateau.best

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 and self.check(model, state.global_step):
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # the last steps since the previous check count too: a schedule's final steps often help most
        if not self.curve or self.curve[-1]["step"] != state.global_step:
            self.check(model, state.global_step)

    def record(self) -> dict:
        return {"curve": self.curve, "plateau_step": self.best and self.best["step"],
                "best_val_accuracy": self.best and self.best["val_accuracy"], "stopped_at": self.stopped_at,
                "patience": self.patience, "every": self.every, "val_rows": len(self.rows),
                "val_seconds": round(self.seconds, 1)}
