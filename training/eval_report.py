"""Reading evaluation results: the fixed-width tables (overall, format, image probes, per family) and the bar
chart that ``sightline eval`` and ``sightline train all`` print and save (``training.evaluate`` computes them)."""
from __future__ import annotations

from pathlib import Path

PROBES = ("blank", "swapped")  # the image probes, in the order they are reported


def label(model_path: str) -> str:
    """A short name for a checkpoint: ``runs/mini/sft/final`` -> ``sft``, ``models/tiny`` -> ``tiny``."""
    p = Path(model_path)
    return p.parent.name if p.name in ("final", "checkpoint") and p.parent.name else p.name


def _pct(x: float | None, width: int) -> str:
    return f"{100 * x:{width - 1}.1f}%" if x is not None else f"{'-':>{width}}"


def open_summary(r: dict) -> str | None:
    """The open rows of a result in words (None when it has none): judged apart from ``overall``."""
    o = r.get("open") or {}
    if not o.get("n"):
        return None
    if o.get("judge") is None:
        return f"{o['n']} open rows not scored (open, no judge)"
    errors = (f", {o['judge_errors']} judge errors" + (f" ({o['note']})" if o.get("note") else "")
              if o.get("judge_errors") else "")
    return f"{o['correct']}/{o['n']} open rows judged correct by {o['judge']}{errors}"


def table(results: list[dict], labels: list[str] | None = None) -> str:
    """A fixed-width table: one row per checkpoint, overall (rule-verified), format, the open rows' judged
    accuracy in its own column (when any result has open rows; ``n/a``: no judge), the image probes' overall
    accuracy (when any result has them), then per-task accuracy in percent; the open rows in words below."""
    labels = labels or [label(r["model"]) for r in results]
    tasks = sorted({t for r in results for t in r["per_task"]})
    probes = [p for p in PROBES if any(p in r.get("probes", {}) for r in results)]
    has_open = any((r.get("open") or {}).get("n") for r in results)
    w = max(10, *(len(x) for x in labels))
    head = (f"{'model'.ljust(w)}  {'n':>5}  {'overall':>7}  {'format':>6}  " + (f"{'open':>6}  " if has_open else "")
            + "".join(f"{p:>8}  " for p in probes) + "  ".join(f"{t[:10]:>10}" for t in tasks))
    lines = [head, "-" * len(head)]
    for name, r in zip(labels, results):
        o = r.get("open") or {}
        open_cell = ((_pct(o["accuracy"], 6) if o.get("accuracy") is not None else f"{'n/a':>6}") + "  "
                     if has_open else "")
        probe_cells = "".join(_pct(r.get("probes", {}).get(p, {}).get("accuracy"), 8) + "  " for p in probes)
        cells = [_pct(r["per_task"][t]["accuracy"], 10) if t in r["per_task"] else f"{'-':>10}"
                 for t in tasks]
        lines.append(f"{name.ljust(w)}  {r['n']:>5}  {_pct(r['accuracy'], 7)}  {_pct(r['format_ok'], 6)}  "
                     + open_cell + probe_cells + "  ".join(cells))
    notes = [f"{name}: {open_summary(r)}" for name, r in zip(labels, results) if open_summary(r)]
    if notes:
        lines += ["", "open rows (sentence golds), apart from overall: " + "; ".join(notes)]
    return "\n".join(lines)


def probe_table(results: list[dict], labels: list[str] | None = None) -> str:
    """Per family: accuracy with the real / a blank / another row's image (``real/blank/swapped``, %)."""
    labels = labels or [label(r["model"]) for r in results]
    kept = [(n, r) for n, r in zip(labels, results) if r.get("probes")]
    if not kept:
        return ""
    tasks = sorted({t for _, r in kept for t in r["per_task"]})
    w = max(10, *(len(n) for n, _ in kept))
    head = f"{'image probes'.ljust(w)}  " + "  ".join(f"{g[:14]:>14}" for g in ["overall", *tasks])
    lines = [head + "   (real / blank / another row's image, %)", "-" * len(head)]
    for name, r in kept:
        cells = [_triple(r, None)] + [_triple(r, t) for t in tasks]
        lines.append(f"{name.ljust(w)}  " + "  ".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def _triple(r: dict, task: str | None) -> str:
    def acc(x: dict) -> str:
        if task is None:
            return f"{100 * x['accuracy']:.0f}"
        return f"{100 * x['per_task'][task]['accuracy']:.0f}" if task in x.get("per_task", {}) else "-"

    return "/".join([acc(r)] + [acc(r["probes"][p]) if p in r["probes"] else "-" for p in PROBES])


def bar_chart(results: list[dict], path: str | Path, labels: list[str] | None = None,
              title: str | None = None) -> Path:
    """Grouped bars (overall + each task family), one colour per checkpoint, as a PNG; with the image
    probes, a second panel shows overall accuracy with real, blank and swapped images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [label(r["model"]) for r in results]
    tasks = sorted({t for r in results for t in r["per_task"]})
    groups = ["overall", *tasks]
    probed = [(n, r) for n, r in zip(labels, results) if r.get("probes")]
    width = 0.8 / max(1, len(results))
    width_in = max(6, 1.3 * len(groups) + 2) + (4 if probed else 0)
    fig, axes = plt.subplots(1, 2 if probed else 1, figsize=(width_in, 4), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]} if probed else None)
    ax = axes[0][0]
    for k, (name, r) in enumerate(zip(labels, results)):
        vals = [100 * r["accuracy"]] + [100 * r["per_task"].get(t, {}).get("accuracy", 0.0) for t in tasks]
        xs = [g + (k - (len(results) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, vals, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_ylim(0, 105)
    n = results[0]["n"] if results else 0
    ax.set_title(title or f"held-out accuracy ({n} rows)")
    ax.legend(fontsize=8)
    if probed:
        _probe_panel(axes[0][1], probed)
    return save_figure(fig, path, dpi=120)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay ``fig`` out, write it to ``path`` (its folder made) and free it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _probe_panel(ax, probed: list[tuple[str, dict]]) -> None:
    conditions = ["image", *PROBES]
    width = 0.8 / len(conditions)
    for k, c in enumerate(conditions):
        vals = [100 * (r["accuracy"] if c == "image" else r["probes"].get(c, {}).get("accuracy", 0.0))
                for _, r in probed]
        xs = [g + (k - (len(conditions) - 1) / 2) * width for g in range(len(probed))]
        ax.bar(xs, vals, width, label={"image": "own image", "blank": "blank", "swapped": "another row's"}[c])
    ax.set_xticks(range(len(probed)), [n for n, _ in probed], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_title("image probes (overall)")
    ax.legend(fontsize=7)


