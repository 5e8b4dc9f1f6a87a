"""The experiment's report: per-arm mean +- standard error over seeds, ``results.md`` and the curves PNG.

Input: one record per (arm, seed) as ``pipelines.experiment`` writes it to ``seed<k>/arms/<arm>.json``:

    {"arm", "seed", "kind": base|sft|sft_continued|grpo, "test": <training.evaluate result>,
     "rollouts": training rollouts charged to the arm, "minutes": training minutes beyond the shared
     SFT checkpoint, "sft_minutes", "curve": [{"rollouts", "minutes", "val_accuracy", "step"}, ...]}

The standard error is the sample standard deviation over seeds (n - 1) over sqrt(n): it measures
seed-to-seed spread only, not the sampling error of the finite test set.
"""
from __future__ import annotations

import math
from pathlib import Path

from training.eval_report import save_figure

PROBE_LABELS = {"blank": "blank img", "swapped": "other img"}


# ---------------------------------------------------------------------------- statistics


def mean_se(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean of the values that are not None (SE None for fewer than two)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def _metrics(record: dict) -> dict[str, float | None]:
    """The numbers of one (arm, seed) that the report averages, flat: overall, probes, families, cost."""
    test = record.get("test") or {}
    out: dict[str, float | None] = {"overall": test.get("accuracy"), "format": test.get("format_ok")}
    for p, q in (test.get("probes") or {}).items():
        out[f"probe/{p}"] = q.get("accuracy")
        for t, v in (q.get("per_task") or {}).items():
            out[f"probe/{p}/{t}"] = v.get("accuracy")
    for t, v in (test.get("per_task") or {}).items():
        out[f"task/{t}"] = v.get("accuracy")
    for lv, v in (test.get("per_level") or {}).items():
        out[f"level/{lv}"] = v.get("accuracy")
        for p, q in (test.get("probes") or {}).items():
            out[f"probe/{p}/level/{lv}"] = ((q.get("per_level") or {}).get(lv) or {}).get("accuracy")
    out["rollouts"] = record.get("rollouts")
    out["minutes"] = record.get("minutes")
    out["eval_rollouts"] = test.get("rollouts")
    return out


def summarize_arm(records: list[dict]) -> dict:
    """``{"seeds": [...], "mean": {metric: x}, "se": {metric: x}}`` over the seeds' records of one arm."""
    flat = [_metrics(r) for r in records]
    keys = sorted({k for f in flat for k in f})
    stats = {k: mean_se([f.get(k) for f in flat]) for k in keys}
    return {"seeds": [r["seed"] for r in records], "n": [(r.get("test") or {}).get("n") for r in records],
            "mean": {k: m for k, (m, _) in stats.items()}, "se": {k: s for k, (_, s) in stats.items()},
            "curve": mean_curve([r.get("curve") or [] for r in records])}


def paired_delta(records: list[dict], reference: list[dict]) -> dict:
    """Overall test accuracy minus the reference arm's, seed by seed (paired: the seed's SFT checkpoint and
    data are shared, so this is tighter than comparing two means): mean, SE and the seeds that paired."""
    ref = {r["seed"]: r["test"]["accuracy"] for r in reference if r.get("test")}
    diffs = [r["test"]["accuracy"] - ref[r["seed"]] for r in records if r.get("test") and r["seed"] in ref]
    m, se = mean_se(diffs)
    return {"mean": m, "se": se, "n": len(diffs)}


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Point-by-point mean over seeds (points aligned by index; a point counts the seeds that reached it)."""
    out = []
    for i in range(max((len(c) for c in curves), default=0)):
        pts = [c[i] for c in curves if len(c) > i]
        acc, se = mean_se([p.get("val_accuracy") for p in pts])
        out.append({"rollouts": mean_se([p.get("rollouts") for p in pts])[0],
                    "minutes": mean_se([p.get("minutes") for p in pts])[0],
                    "val_accuracy": acc, "val_se": se, "seeds": len(pts)})
    return out


# ---------------------------------------------------------------------------- markdown


def _cell(m: float | None, s: float | None, scale: float = 100.0, digits: int = 1) -> str:
    if m is None:
        return "-"
    return f"{scale * m:.{digits}f}" + (f" ± {scale * s:.{digits}f}" if s is not None else "")


def markdown(results: dict) -> str:
    """``results.md``: one row per arm (mean ± SE over seeds, in percent), skipped arms with their reason."""
    arms = results["arms"]
    done = {a: s for a, s in arms.items() if s.get("status") == "done"}
    tasks = sorted({k.split("/", 1)[1] for s in done.values() for k in s["mean"] if k.startswith("task/")})
    probes = [p for p in PROBE_LABELS if any(f"probe/{p}" in s["mean"] for s in done.values())]
    head = (["arm", "seeds", "overall", "vs sft"] + [PROBE_LABELS[p] for p in probes] + tasks
            + ["rollouts", "minutes"])
    intro = " ".join([
        f"Data {results['data']} v{results['version']}, test rows per seed: {results.get('test_rows')};",
        f"seeds {', '.join(map(str, results['seeds']))}.",
        "Accuracy in percent, mean ± standard error over seeds;",
        "*vs sft*: the difference to the sft arm, paired by seed;",
        "*blank img* / *other img*: the same rows answered with a white image / another row's image",
        "(per family below). *rollouts*: completions generated in training (the difficulty pass charged",
        "to the arms whose sampler reads it); *minutes*: training-loop time beyond the shared SFT checkpoint",
        "(loading and saving aside; the difficulty pass charged as for rollouts)."])
    lines = [f"# Experiment {results['name']}", "", intro, "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for arm, s in done.items():
        m, e = s["mean"], s["se"]
        delta = s.get("vs_sft") or {}
        row = [arm, str(len(s["seeds"])), _cell(m.get("overall"), e.get("overall")),
               _cell(delta.get("mean"), delta.get("se")) if arm != "sft" else "-"]
        row += [_cell(m.get(f"probe/{p}"), e.get(f"probe/{p}")) for p in probes]
        row += [_cell(m.get(f"task/{t}"), e.get(f"task/{t}")) for t in tasks]
        row += [_cell(m.get("rollouts"), e.get("rollouts"), 1.0, 0),
                _cell(m.get("minutes"), e.get("minutes"), 1.0, 2)]
        lines.append("| " + " | ".join(row) + " |")
    majority = results.get("majority")
    if majority:
        row = ["majority answer", "-", _cell(majority["accuracy"], None), "-"] + ["-"] * len(probes)
        row += [_cell(majority["per_task"].get(t, {}).get("accuracy"), None) for t in tasks] + ["0", "0"]
        lines.append("| " + " | ".join(row) + " |")
    pairs = [f"- `{arm}` vs `{key[3:]}`: {_cell(d.get('mean'), d.get('se'))} points ({d.get('n')} seeds)"
             for arm, s in done.items() for key, d in s.items()
             if key.startswith("vs_") and key != "vs_sft" and d.get("n")]
    if pairs:
        lines += ["", "Paired by seed (test accuracy, mean ± SE of the per-seed differences):", ""] + pairs
    lines += level_lines(done, results)
    lines += probe_lines(done, tasks, probes)
    skipped = {a: s for a, s in arms.items() if s.get("status") != "done"}
    if skipped:
        lines += ["", "Skipped arms:", ""] + [f"- `{a}`: {s.get('reason')}" for a, s in skipped.items()]
    lines += ["", f"Curves: {Path(results.get('plot') or 'curves.png').name} (validation accuracy along the "
              "GRPO runs, final test accuracy as markers). Command: `" + results.get("command", "") + "`", ""]
    return "\n".join(lines)


def level_lines(done: dict, results: dict) -> list[str]:
    """Test accuracy per level (mean ± SE over seeds, %), the SFT slice's levels marked: the others had no
    trace in the cold start, so what an arm gains there came from RL prompts or the policy's own traces."""
    levels = sorted({k.split("/", 1)[1] for s in done.values() for k in s["mean"] if k.startswith("level/")})
    if len(levels) < 2:
        return []
    traced = results.get("sft_levels")
    names = [f"level {lv}" + (" (SFT traces)" if traced and int(lv) in traced else
                              " (no SFT traces)" if traced else "") for lv in levels]
    lines = ["", "Test accuracy per level (mean ± SE over seeds, %; *vs sft*: paired by seed):", "",
             "| arm | " + " | ".join(names) + " | " + " | ".join(f"{n} vs sft" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(levels))]
    sft = done.get("sft")
    for arm, s in done.items():
        cells = [_cell(s["mean"].get(f"level/{lv}"), s["se"].get(f"level/{lv}")) for lv in levels]
        deltas = [_cell(*(s.get("level_vs_sft") or {}).get(lv, (None, None))) if sft and arm != "sft" else "-"
                  for lv in levels]
        lines.append(f"| {arm} | " + " | ".join(cells + deltas) + " |")
    majority = results.get("majority") or {}
    if majority.get("per_level"):
        cells = [_cell(majority["per_level"].get(lv, {}).get("accuracy"), None) for lv in levels]
        lines.append("| majority answer | " + " | ".join(cells + ["-"] * len(levels)) + " |")
    return lines


def paired_level_deltas(records: list[dict], reference: list[dict]) -> dict:
    """Per level: (mean, SE) over seeds of this arm's test accuracy minus the reference arm's, paired by seed."""
    ref = {r["seed"]: (r.get("test") or {}).get("per_level") or {} for r in reference}
    levels = sorted({lv for r in records for lv in ((r.get("test") or {}).get("per_level") or {})})
    out = {}
    for lv in levels:
        diffs = [r["test"]["per_level"][lv]["accuracy"] - ref[r["seed"]][lv]["accuracy"]
                 for r in records if r["seed"] in ref and lv in ref[r["seed"]] and lv in r["test"]["per_level"]]
        out[lv] = mean_se(diffs)
    return out


def probe_lines(done: dict, tasks: list[str], probes: list[str]) -> list[str]:
    """The image probes per family: own / blank / another row's image, means over seeds in percent."""
    if not probes:
        return []
    names = " / ".join(PROBE_LABELS[p].replace(" img", " image") for p in probes)
    title = f"Image probes per family (test accuracy with the row's own image / {names}, mean over seeds, %):"
    lines = ["", title, "",
             "| arm | " + " | ".join(["overall", *tasks]) + " |", "|---|" + "---:|" * (len(tasks) + 1)]
    for arm, s in done.items():
        m = s["mean"]
        cells = []
        for key in ["", *(f"/{t}" for t in tasks)]:
            own = m.get("overall" if not key else f"task{key}")
            vals = [own] + [m.get(f"probe/{p}{key}") for p in probes]
            cells.append(" / ".join("-" if v is None else f"{100 * v:.0f}" for v in vals))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------- plot


def plot(results: dict, path: str | Path) -> Path:
    """Two panels, held-out accuracy against training rollouts and against minutes: one line per arm along
    its validation checkpoints (band: ± SE over seeds), the final test accuracy as a marker with error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = {a: s for a, s in results["arms"].items() if s.get("status") == "done"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (arm, s) in enumerate(done.items()):
        color = colors[k % len(colors)]
        for ax, x in zip(axes, ("rollouts", "minutes")):
            _plot_arm(ax, s, x, arm, color)
    majority = results.get("majority")
    for ax, x in zip(axes, ("rollouts", "minutes")):
        if majority:
            ax.axhline(100 * majority["accuracy"], color="gray", lw=0.8, ls=":", label="majority answer")
        ax.set_xlabel("training rollouts" if x == "rollouts" else "training minutes beyond SFT")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_title("lines: val checkpoints; markers: final test")
    axes[1].set_title(f"{results['name']}: mean ± SE over {len(results['seeds'])} seed(s)")
    axes[1].legend(fontsize=7, loc="best")
    return save_figure(fig, path, dpi=110)


def _plot_arm(ax, s: dict, x: str, arm: str, color: str) -> None:
    curve = [p for p in s.get("curve") or [] if p.get("val_accuracy") is not None and p.get(x) is not None]
    if curve:
        xs = [p[x] for p in curve]
        ys = [100 * p["val_accuracy"] for p in curve]
        se = [100 * (p.get("val_se") or 0.0) for p in curve]
        ax.plot(xs, ys, color=color, ls="--", marker="o", ms=3, label=f"{arm} (val)")
        ax.fill_between(xs, [y - e for y, e in zip(ys, se)], [y + e for y, e in zip(ys, se)], color=color,
                        alpha=0.15)
    m, e = s["mean"], s["se"]
    if m.get("overall") is not None:
        ax.errorbar([m.get(x) or 0.0], [100 * m["overall"]], yerr=[100 * (e.get("overall") or 0.0)],
                    xerr=[e.get(x) or 0.0], color=color, marker="s", ms=6, capsize=3, ls="none",
                    label=f"{arm} (test)")
