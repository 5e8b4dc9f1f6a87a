"""GRPO's training curves, drawn from ``metrics.jsonl``: reward, mixed groups, KL, entropy, clipping.

Every panel reads keys that reach ``metrics.jsonl`` at each logged step: TRL's ``reward``,
``rewards/<name>/mean``, ``kl`` (only when ``beta > 0``: no reference model otherwise),
``entropy`` (mean per-token entropy of the completions) and ``clip_ratio/region_mean`` (share of
tokens whose probability ratio left the PPO clip region), and the sampler hook's
``sampler/effective_group_ratio`` (share of groups whose rewards differ: the only ones with a
gradient). A panel whose key was never logged says so instead of drawing nothing.
"""
from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from training.eval_report import save_figure

# (metrics key, panel title, y label)
PANELS = (
    ("sampler/effective_group_ratio", "effective-group ratio", "share of mixed groups"),
    ("kl", "KL to the reference policy", "per-token KL"),
    ("entropy", "entropy", "per-token entropy (nats)"),
    ("clip_ratio/region_mean", "clip ratio", "share of clipped tokens"),
)


def reward_panel(ax, rows: list[dict], title: str = "reward") -> None:
    """Draw TRL's weighted ``reward`` and each reward function's ``rewards/<name>/mean`` against steps on ``ax``."""
    if rows:
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["reward"] for r in rows], label="reward (weighted)")
        for key in sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
            ax.plot(steps, [r.get(key) for r in rows], label=key.split("/")[1], alpha=0.7)
        ax.legend(fontsize=7)
    ax.set(xlabel="step", ylabel="mean reward", title=title)


def plot_curves(metrics: str | Path, out: str | Path) -> Path | None:
    """``out`` (a PNG) with one panel for the rewards and one per ``PANELS`` key; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.callbacks import read_jsonl

    rows = [r for r in read_jsonl(metrics) if "reward" in r]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 1 + len(PANELS), figsize=(4 * (1 + len(PANELS)), 3.4))
    reward_panel(axes[0], rows)
    for ax, (key, title, ylabel) in zip(axes[1:], PANELS):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points))
        else:
            ax.text(0.5, 0.5, "not logged" + (" (beta = 0)" if key == "kl" else ""), ha="center",
                    transform=ax.transAxes, color="gray")
        ax.set(xlabel="step", ylabel=ylabel, title=title)
    return save_figure(fig, out, dpi=80)


class CurvesCallback(TrainerCallback):
    """Redraws ``curves.png`` from the metrics file at each save and at the end."""

    def __init__(self, metrics: Path, out: Path):
        self.metrics, self.out = metrics, out

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_curves(self.metrics, self.out)

    on_train_end = on_save
