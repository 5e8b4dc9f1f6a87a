"""Held-out evaluation: greedy accuracy on a version's ``test`` (or ``val``) table, overall and per task
family, and how much of it depends on the image.

Scored with ``curation.answers.verify.verify``, the same function as the GRPO reward and the curate
pipeline's verify stage. Rollouts come from ``curation.generation.models.generate_texts``, the code the
difficulty pass samples with; generation is batched (left padding) and greedy, so a checkpoint's
score is deterministic on a given machine.

Image probes (on by default): the same rows are answered twice more, once with every image
replaced by a white image of the same size and once with another row's images (a fixed, seeded
derangement that picks a row of the same family where the family has two rows or more). A model
that reads its images loses accuracy under both; one that answers from the question and the
answer prior does not. This is the "blind" control of the VQA literature (Goyal et al., 2017,
"Making the V in VQA Matter"; MMStar, Chen et al., 2024), as numbers beside every accuracy.

Selection hygiene: ``table="val"`` for every choice made while training (checkpoints, settings);
``test`` only for the final numbers.

    sightline eval --model models/tiny --model runs/mini/sft/final --data data/mini --limit 600
"""
from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from curation.answers.verify import extract_answer, format_ok, verify
from curation.errors import SightlineError
from curation.generation.judge import JUDGE_BACKENDS, Judge, JudgeItem, JudgeSpec, require_local_model
from curation.store.versions import Store
from schemas.tables import OPEN
from training.data import RL_COLUMNS, as_store, load_table
from training.eval_report import bar_chart, label, open_summary, probe_table, table
from training.rewards import prompt_question

HELD_OUT_TABLES = ("test", "val")
NOT_SCORED = "not scored (open, no judge)"


@dataclass
class EvalConfig:
    limit: int | None = field(default=None, metadata={"help": "score at most this many rows (None: all)"})
    batch_size: int = field(default=32, metadata={"help": "prompts per generate call"})
    max_new_tokens: int = field(default=160, metadata={"help": "generation budget per answer (greedy)"})
    dtype: str | None = field(default=None, metadata={
        "help": "weights dtype: None (float32), auto, bfloat16"})
    device: str | None = field(default="auto", metadata={"help": "cpu, cuda, or auto (cuda when present)"})
    samples: int = field(default=8, metadata={
        "help": "keep this many generated answers in the JSON, for reading"})
    table: Literal["test", "val"] = field(default="test", metadata={
        "help": "held-out table: val for choices made during training, test only for final numbers"})
    image_probes: bool = field(default=True, metadata={
        "help": "also score with blank images and with another row's images (3x the rollouts)"})
    probe_seed: int = field(default=0, metadata={"help": "seed of the swapped-image derangement"})

    def __post_init__(self):
        if self.table not in HELD_OUT_TABLES:
            raise ValueError(f"table must be one of {', '.join(HELD_OUT_TABLES)}, got {self.table!r}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError("limit must be a positive number of rows (or None for all)")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")


# ---------------------------------------------------------------------------- probes


def image_derangement(tasks: list[str | None], seed: int = 0) -> list[int]:
    """``donor[i] != i`` for every row: a seeded cycle through the rows of each family with two rows
    or more, one cycle through the rest; ``[]`` when there are fewer than two rows."""
    n = len(tasks)
    if n < 2:
        return []
    rng = random.Random(seed)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_task[t or ""].append(i)
    donor = list(range(n))
    alone: list[int] = []
    for t in sorted(by_task):
        if len(by_task[t]) < 2:
            alone += by_task[t]
            continue
        _cycle(by_task[t], donor, rng)
    if len(alone) >= 2:
        _cycle(alone, donor, rng)
    elif alone:  # one row is alone in its family: it borrows from any other row
        i = alone[0]
        donor[i] = rng.choice([j for j in range(n) if j != i])
    assert all(d != i for i, d in enumerate(donor)), "a derangement moves every row"
    return donor


def _cycle(rows: list[int], donor: list[int], rng: random.Random) -> None:
    order = list(rows)
    rng.shuffle(order)
    for a, b in zip(order, order[1:] + order[:1]):
        donor[a] = b


def blank_images(images: list) -> list:
    """White RGB images of the same sizes (same image-token count, no content)."""
    from PIL import Image

    return [Image.new("RGB", im.size, (255, 255, 255)) for im in images or []]


def donor_images(own: list, donor: list) -> list:
    """One image per slot of ``own``, taken from ``donor`` (cycled when it has fewer; blank when none)."""
    own = own or []
    if not donor:
        return blank_images(own)
    return [donor[k % len(donor)] for k in range(len(own))]


# ---------------------------------------------------------------------------- scoring


def score(responses: list[str], rows: list[dict], judge=None) -> dict:
    """Verify each response against its row; overall and per-task accuracy plus per-row verdicts.

    Rows whose ``answer_type`` is ``open`` (a sentence gold no rule decides) never enter ``n`` and
    ``accuracy``, which stay rule-verified: ``open`` reports them apart, judged by ``judge`` (a
    ``curation.generation.judge.Judge``) or counted as not scored (open, no judge). ``format_ok`` is over every row.
    """
    per_task: dict[str, dict] = {}
    per_level: dict[str, dict] = {}  # by the row's level ("None" for rows without one)
    verdicts = []
    open_rows: list[int] = []
    for text, row in zip(responses, rows, strict=True):
        fmt = bool(format_ok(text))
        if row.get("answer_type") == OPEN:
            open_rows.append(len(verdicts))
            verdicts.append({"id": row.get("id"), "task": row.get("task"), "solution": row["solution"],
                             "response": text, "extracted": extract_answer(text), "correct": None,
                             "format_ok": fmt, "reason": NOT_SCORED, "open": True})
            continue
        v = verify(text, row["solution"], choices=row.get("choices"), answer_type=row.get("answer_type"))
        verdicts.append({"id": row.get("id"), "task": row.get("task"), "solution": row["solution"],
                         "response": text, "extracted": v.extracted, "correct": bool(v.correct),
                         "format_ok": fmt, "reason": v.reason})
        for group, key in ((per_task, row.get("task") or "unknown"), (per_level, str(row.get("level")))):
            t = group.setdefault(key, {"n": 0, "correct": 0})
            t["n"] += 1
            t["correct"] += int(bool(v.correct))
    for t in [*per_task.values(), *per_level.values()]:
        t["accuracy"] = t["correct"] / t["n"]
    n = len(verdicts) - len(open_rows)
    correct = sum(bool(v["correct"]) for v in verdicts if not v.get("open"))
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0,
            "format_ok": sum(v["format_ok"] for v in verdicts) / len(verdicts) if verdicts else 0.0,
            "per_task": dict(sorted(per_task.items())), "per_level": dict(sorted(per_level.items())),
            "open": score_open([verdicts[i] for i in open_rows], [rows[i] for i in open_rows], judge),
            "verdicts": verdicts}


def score_open(verdicts: list[dict], rows: list[dict], judge=None) -> dict:
    """The open rows' block of a result: how many, and with a judge, its verdicts (filled into ``verdicts``).

    Batched through the judge once; ``judge_error`` counts as not correct and is reported as such."""
    if judge is None or not verdicts:
        return {"n": len(verdicts), "judge": None, "correct": None, "accuracy": None, "judge_errors": None,
                "note": NOT_SCORED if verdicts else None}

    items = [JudgeItem(str(r.get("id")), prompt_question(r.get("prompt")), str(r["solution"]), v["response"],
                       tuple(r["choices"]) if r.get("choices") else None) for v, r in zip(verdicts, rows)]
    for v, verdict in zip(verdicts, judge.judge(items), strict=True):
        v["correct"], v["reason"] = verdict == "judged_correct", verdict
    correct = sum(v["correct"] for v in verdicts)
    return {"n": len(verdicts), "judge": judge.spec.judge_id, "correct": correct, "accuracy": correct / len(verdicts),
            "judge_errors": sum(v["reason"] == "judge_error" for v in verdicts),
            "note": f"judge failure: {judge.last_error}" if judge.last_error else None}


# ---------------------------------------------------------------------------- evaluation


def eval_rows(store, version: int, table: str, limit: int | None):
    """The ``table`` rows of ``version`` in the rl layout (``datasets.Dataset``, images decoded lazily)."""
    if table not in HELD_OUT_TABLES:
        raise SightlineError(f"evaluation reads a held-out table ({', '.join(HELD_OUT_TABLES)}), not {table!r}")
    if not sum(e["rows"] for e in store.manifest(version).get("files", {}).get(table, [])):
        raise SightlineError(f"{store.root} v{version:04d} has no {table!r} rows: curate a new version "
                             f"(the curate pipeline writes val and test)")
    return load_table(store, table, version, columns=RL_COLUMNS, limit=limit)


def evaluate(model_path: str | Path, store, version: int | str | None = "latest",
             cfg: EvalConfig | None = None, *, progress: bool = True,
             trust_remote_code: bool = False, judge=None) -> dict:
    """Greedy accuracy of the checkpoint at ``model_path`` on ``store``'s ``cfg.table`` (``Store`` or its
    path), the image probes under ``probes``, the number of generated completions under ``rollouts``.

    ``accuracy`` is rule-verified; ``open`` rows are reported apart under ``open``, scored by ``judge``
    (a ``JudgeSpec``, the recipe's ``judge:``) when one is set, after the checkpoint is unloaded. The probes
    score rule-verified rows only."""
    from curation.generation import models

    cfg = cfg or EvalConfig()
    _load_judge(judge, [])  # a judge that cannot be made fails now, not after the generation
    store = as_store(store)
    v = store.resolve(version)
    ds = eval_rows(store, v, cfg.table, cfg.limit)
    rows = ds.select_columns(["id", "task", "level", "solution", "choices", "answer_type", "prompt"]).to_list()
    donors = image_derangement([r["task"] for r in rows], cfg.probe_seed) if cfg.image_probes else []
    conditions = ["image", *(["blank"] if cfg.image_probes else []), *(["swapped"] if donors else [])]
    t0 = time.monotonic()
    model, processor = models.load_model_and_processor(model_path, dtype=cfg.dtype, device=cfg.device,
                                                       trust_remote_code=trust_remote_code)
    from tqdm.auto import tqdm

    responses: dict[str, list[str]] = {c: [] for c in conditions}
    with tqdm(total=len(ds) * len(conditions), desc=f"eval {label(str(model_path))}", unit="ex",
              disable=not progress) as bar:
        for start in range(0, len(ds), cfg.batch_size):  # decode one batch of images at a time
            chunk = ds[start:start + cfg.batch_size]
            for c in conditions:
                images = _probe_images(c, ds, chunk["images"], donors, start)
                responses[c] += models.generate_texts(model, processor, chunk["prompt"], images,
                                                      max_new_tokens=cfg.max_new_tokens,
                                                      batch_size=cfg.batch_size, progress=False)
                bar.update(len(chunk["prompt"]))
    del model  # a model judge loads next
    result = score(responses["image"], rows, judge=_load_judge(judge, rows))
    verdicts = result.pop("verdicts")
    probes = {c: _probe_summary(score(responses[c], rows), result) for c in conditions[1:]}
    if "swapped" in probes:
        same = sum(rows[d]["task"] == rows[i]["task"] for i, d in enumerate(donors))
        probes["swapped"]["donor_same_task"] = same / len(rows)
    samples = [{**s, **{f"{c}_response": responses[c][i] for c in conditions[1:]}}
               for i, s in enumerate(verdicts[:cfg.samples])]
    return {"model": str(model_path), "data": str(store.root), "version": v, "table": cfg.table, **result,
            "probes": probes, "rollouts": sum(len(r) for r in responses.values()),
            "max_new_tokens": cfg.max_new_tokens, "seconds": round(time.monotonic() - t0, 1),
            "samples": samples}


def _load_judge(spec, rows: list[dict]):
    """A loaded ``Judge`` for ``spec`` when it is set and some row is open, else None (a spec whose judge
    cannot be made, e.g. a missing model folder, fails here whatever the rows)."""
    if spec is None or not spec.enabled:
        return None
    require_local_model(spec)
    judge = Judge(spec)
    return judge.load() if any(r.get("answer_type") == OPEN for r in rows) else None


def _probe_images(condition: str, ds, images: list[list], donors: list[int], start: int) -> list[list]:
    if condition == "image":
        return images
    if condition == "blank":
        return [blank_images(ims) for ims in images]
    donated = ds[[donors[start + i] for i in range(len(images))]]["images"]
    return [donor_images(own, d) for own, d in zip(images, donated)]


def _probe_summary(probe: dict, real: dict) -> dict:
    """A probe's accuracy, overall, per family and per level, and how far it sits below the real images'."""
    probe.pop("verdicts")
    probe.pop("open")  # the probes score rule-verified rows only
    probe["drop"] = real["accuracy"] - probe["accuracy"]
    for group in ("per_task", "per_level"):
        for key, t in probe[group].items():
            t["drop"] = real[group][key]["accuracy"] - t["accuracy"]
    return probe


def majority_baseline(store, version: int | str | None = "latest", limit: int | None = None, *,
                      table: str = "test", judge=None) -> dict:
    """The score of always giving each task family's most common ``rl`` answer: what a model that
    learned the format and the answer prior, but not the images, would get (its open rows scored by
    ``judge``, a ``JudgeSpec``, like a checkpoint's)."""
    from collections import Counter

    store = as_store(store)
    v = store.resolve(version)
    train = store.read_table("rl", v, columns=["task", "solution"]).to_pylist()
    counts: dict[str, Counter] = {}
    for r in train:
        counts.setdefault(r["task"], Counter())[r["solution"]] += 1
    rows = eval_rows(store, v, table, limit).select_columns(["id", "task", "level", "solution", "choices",
                                                             "answer_type", "prompt"]).to_list()
    guess = {t: c.most_common(1)[0][0] for t, c in counts.items()}
    responses = [f"<think></think><answer>{guess.get(r['task'], '')}</answer>" for r in rows]
    result = score(responses, rows, judge=_load_judge(judge, rows))
    result.pop("verdicts")
    return {"model": "majority answer per task", "data": str(store.root), "version": v, "table": table,
            **result,
            "rollouts": 0, "answers": dict(sorted(guess.items()))}


# ---------------------------------------------------------------------------- command line


def _help(name: str) -> str:
    """An ``EvalConfig`` field's help, with its default."""
    f = EvalConfig.__dataclass_fields__[name]
    return f"{f.metadata['help']} (default {f.default})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sightline eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="checkpoint folder; repeat to compare")
    ap.add_argument("--data", required=True, help="dataset folder data/<name>")
    ap.add_argument("--version", default="latest", help="dataset version: N, vNNNN or latest")
    d = EvalConfig()  # the defaults are the config's, written once
    ap.add_argument("--table", default=d.table, choices=HELD_OUT_TABLES, help=_help("table"))
    ap.add_argument("--limit", type=int, default=d.limit, help=_help("limit"))
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help=_help("batch_size"))
    ap.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=_help("max_new_tokens"))
    ap.add_argument("--no-image-probes", action="store_true",
                    help="skip the blank-image and swapped-image passes (a third of the time)")
    ap.add_argument("--device", default=d.device, help=_help("device"))
    ap.add_argument("--dtype", default=d.dtype, help=_help("dtype"))
    ap.add_argument("--out", default=None,
                    help="JSON file (default runs/eval/<data>-v<N>.json); a .png chart goes next to it")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--trust-remote-code", action="store_true")
    ap.add_argument("--judge", default="none", choices=JUDGE_BACKENDS,
                    help="a judge for open (sentence-gold) rows, reported apart from the rule-verified accuracy "
                         "(default none: they are counted as not scored)")
    ap.add_argument("--judge-model", default=None, help="the judge's local checkpoint (transformers, vllm)")
    args = ap.parse_args(argv)
    judge = JudgeSpec(backend=args.judge, model=args.judge_model)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        cfg = EvalConfig(limit=args.limit, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                         dtype=args.dtype, device=args.device, table=args.table,
                         image_probes=not args.no_image_probes)
    except ValueError as e:
        raise SightlineError(str(e)) from None

    store = Store(args.data)
    v = store.resolve(args.version)
    results = []
    for m in args.model:
        r = evaluate(m, store, v, cfg, trust_remote_code=args.trust_remote_code, judge=judge)
        probes = ", ".join(f"{p} {100 * q['accuracy']:.1f}%" for p, q in r["probes"].items())
        opened = open_summary(r)
        print(f"{m}: {100 * r['accuracy']:.1f}% of {r['n']} {cfg.table} rows"
              + (f" ({probes})" if probes else "") + (f"; {opened}" if opened else "")
              + f", {r['rollouts']} rollouts, {r['seconds']:.0f} s", flush=True)
        results.append(r)
    baseline = majority_baseline(store, v, args.limit, table=cfg.table, judge=judge)
    suffix = "" if cfg.table == "test" else f"-{cfg.table}"
    out = Path(args.out or f"runs/eval/{store.name}-v{v:04d}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(store.root), "version": v, "table": cfg.table, "results": results,
                               "majority": baseline}, indent=2) + "\n")
    labels = [label(r["model"]) for r in results] + ["majority"]
    chart = bar_chart(results + [baseline], out.with_suffix(".png"), labels=labels,
                      title=f"{store.name} v{v}: {cfg.table} greedy accuracy")
    print()
    print(table(results + [baseline], labels=labels))
    probes = probe_table(results, labels=labels[:-1])
    if probes:
        print()
        print(probes)
    print(f"\nwrote {out} and {chart}")
    return 0
