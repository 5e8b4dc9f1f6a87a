"""Held-out evaluation: greedy accuracy on a version's ``test`` table, overall and per task family.

Scored with ``curation.verify.verify``, the same function as the GRPO reward and the curate
pipeline's verify stage. Generation is batched (left padding) and greedy, so a checkpoint's
score is deterministic on a given machine.

    sightline eval --model models/tiny --model runs/mini/sft/final --data data/mini --limit 600
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import SightlineError


@dataclass
class EvalConfig:
    limit: int | None = field(default=None, metadata={"help": "score at most this many test rows (None: all)"})
    batch_size: int = field(default=32, metadata={"help": "prompts per generate call"})
    max_new_tokens: int = field(default=160, metadata={"help": "generation budget per answer (greedy)"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype: None (float32), auto, bfloat16"})
    device: str | None = field(default="auto", metadata={"help": "cpu, cuda, or auto (cuda when present)"})
    samples: int = field(default=8, metadata={"help": "keep this many generated answers in the JSON, for reading"})


# ---------------------------------------------------------------------------- generation


# ---------------------------------------------------------------------------- scoring


def score(responses: list[str], rows: list[dict]) -> dict:
    """Verify each response against its row; overall and per-task accuracy plus per-row verdicts."""
    from curation.verify import format_ok, verify

    per_task: dict[str, dict] = {}
    verdicts = []
    for text, row in zip(responses, rows, strict=True):
        v = verify(text, row["solution"], choices=row.get("choices"), answer_type=row.get("answer_type"))
        fmt = bool(format_ok(text))
        verdicts.append({"id": row.get("id"), "task": row.get("task"), "solution": row["solution"],
                         "response": text, "extracted": v.extracted, "correct": bool(v.correct),
                         "format_ok": fmt, "reason": v.reason})
        t = per_task.setdefault(row.get("task") or "unknown", {"n": 0, "correct": 0})
        t["n"] += 1
        t["correct"] += int(bool(v.correct))
    for t in per_task.values():
        t["accuracy"] = t["correct"] / t["n"]
    n = len(verdicts)
    correct = sum(v["correct"] for v in verdicts)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0,
            "format_ok": sum(v["format_ok"] for v in verdicts) / n if n else 0.0,
            "per_task": dict(sorted(per_task.items())), "verdicts": verdicts}


def evaluate(model_path: str | Path, store, version: int | str | None = "latest", limit: int | None = None,
             batch_size: int = 32, *, max_new_tokens: int = 160, dtype: str | None = None, device: str | None = "auto",
             samples: int = 8, trust_remote_code: bool = False, progress: bool = True) -> dict:
    """Greedy accuracy of the checkpoint at ``model_path`` on ``store``'s test table (``Store`` or its path)."""
    from curation import models
    from training.data import as_store, rl_dataset

    store = as_store(store)
    v = store.resolve(version)
    ds = rl_dataset(store, v, table="test", limit=limit)
    t0 = time.monotonic()
    model, processor = models.load_model_and_processor(model_path, dtype=dtype, device=device,
                                                trust_remote_code=trust_remote_code)
    from tqdm.auto import tqdm

    rows = ds.select_columns(["id", "task", "solution", "choices", "answer_type"]).to_list()
    responses: list[str] = []
    with tqdm(total=len(ds), desc=f"eval {label(str(model_path))}", unit="ex", disable=not progress) as bar:
        for start in range(0, len(ds), batch_size):  # decode one batch of images at a time
            chunk = ds[start:start + batch_size]
            responses += models.generate_texts(model, processor, chunk["prompt"], chunk["images"],
                                        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False)
            bar.update(len(chunk["prompt"]))
    result = score(responses, rows)
    verdicts = result.pop("verdicts")
    result = {"model": str(model_path), "data": str(store.root), "version": v, **result,
              "max_new_tokens": max_new_tokens, "seconds": round(time.monotonic() - t0, 1),
              "samples": verdicts[:samples]}
    return result


def majority_baseline(store, version: int | str | None = "latest", limit: int | None = None) -> dict:
    """The score of always giving each task family's most common ``rl`` answer: what a model that
    learned the format and the answer prior, but not the images, would get."""
    from collections import Counter

    from training.data import as_store

    store = as_store(store)
    v = store.resolve(version)
    train = store.read_table("rl", v, columns=["task", "solution"]).to_pylist()
    counts: dict[str, Counter] = {}
    for r in train:
        counts.setdefault(r["task"], Counter())[r["solution"]] += 1
    rows = store.read_table("test", v, columns=["id", "task", "solution", "choices", "answer_type"]).to_pylist()
    rows = rows[:limit] if limit is not None else rows
    guess = {t: c.most_common(1)[0][0] for t, c in counts.items()}
    responses = [f"<think></think><answer>{guess.get(r['task'], '')}</answer>" for r in rows]
    result = score(responses, rows)
    result.pop("verdicts")
    return {"model": "majority answer per task", "data": str(store.root), "version": v, **result,
            "answers": dict(sorted(guess.items()))}


# ---------------------------------------------------------------------------- reporting


def label(model_path: str) -> str:
    """A short name for a checkpoint: ``runs/mini/sft/final`` -> ``sft``, ``models/tiny`` -> ``tiny``."""
    p = Path(model_path)
    return p.parent.name if p.name in ("final", "checkpoint") and p.parent.name else p.name


def table(results: list[dict], labels: list[str] | None = None) -> str:
    """A fixed-width table: one row per checkpoint, overall then per-task accuracy in percent."""
    labels = labels or [label(r["model"]) for r in results]
    tasks = sorted({t for r in results for t in r["per_task"]})
    w = max(10, *(len(x) for x in labels))
    head = f"{'model'.ljust(w)}  {'n':>5}  {'overall':>7}  {'format':>6}  " + "  ".join(f"{t[:10]:>10}" for t in tasks)
    lines = [head, "-" * len(head)]
    for name, r in zip(labels, results):
        cells = [f"{100 * r['per_task'][t]['accuracy']:9.1f}%" if t in r["per_task"] else f"{'-':>10}" for t in tasks]
        lines.append(f"{name.ljust(w)}  {r['n']:>5}  {100 * r['accuracy']:6.1f}%  {100 * r['format_ok']:5.1f}%  "
                     + "  ".join(cells))
    return "\n".join(lines)


def bar_chart(results: list[dict], path: str | Path, labels: list[str] | None = None, title: str | None = None) -> Path:
    """Grouped bars (overall + each task family), one colour per checkpoint, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [label(r["model"]) for r in results]
    tasks = sorted({t for r in results for t in r["per_task"]})
    groups = ["overall", *tasks]
    width = 0.8 / max(1, len(results))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups) + 2), 4))
    for k, (name, r) in enumerate(zip(labels, results)):
        vals = [100 * r["accuracy"]] + [100 * r["per_task"].get(t, {}).get("accuracy", 0.0) for t in tasks]
        xs = [g + (k - (len(results) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, vals, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_ylim(0, 105)
    n = results[0]["n"] if results else 0
    ax.set_title(title or f"held-out accuracy ({n} test rows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sightline eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="checkpoint folder; repeat to compare")
    ap.add_argument("--data", required=True, help="dataset folder data/<name>")
    ap.add_argument("--version", default="latest", help="dataset version: N, vNNNN or latest")
    ap.add_argument("--limit", type=int, default=None, help="score at most N test rows")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--dtype", default=None, help="auto, bfloat16, float32 (default float32)")
    ap.add_argument("--out", default=None, help="JSON file (default runs/eval/<data>-v<N>.json); a .png chart goes next to it")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--trust-remote-code", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit <= 0:
        raise SightlineError("--limit must be a positive number of rows")

    from curation.store import Store

    store = Store(args.data)
    v = store.resolve(args.version)
    results = []
    for m in args.model:
        r = evaluate(m, store, v, args.limit, args.batch_size, max_new_tokens=args.max_new_tokens,
                     dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
        print(f"{m}: {100 * r['accuracy']:.1f}% of {r['n']} ({r['seconds']:.0f} s)", flush=True)
        results.append(r)
    baseline = majority_baseline(store, v, args.limit)
    out = Path(args.out or f"runs/eval/{store.name}-v{v:04d}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(store.root), "version": v, "results": results, "majority": baseline},
                              indent=2) + "\n")
    labels = [label(r["model"]) for r in results] + ["majority"]
    chart = bar_chart(results + [baseline], out.with_suffix(".png"), labels=labels,
                      title=f"{store.name} v{v}: held-out greedy accuracy")
    print()
    print(table(results + [baseline], labels=labels))
    print(f"\nwrote {out} and {chart}")
    return 0
