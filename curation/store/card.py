"""The dataset card of a version: ``README.md`` with the Hugging Face YAML header, made from the manifest.

The header has one ``configs`` entry per table, each listing that table's shards (the manifest's paths,
not a glob, so nothing else in the folder is picked up), and the features of each table in the Hub's
YAML form, so ``datasets.load_dataset(version_dir, "sft")`` returns the table with PIL images. The body
says what a person who finds the folder needs: sources and their licences, teachers with prompt
versions, counts per stage and the accounting, splits, decontamination benchmarks, lineage, and how to
load and query it. The card is written inside the version before its manifest, which lists it with
its sha256 (``Staging.commit``); ``sightline data verify`` checks it.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from schemas import SCHEMAS
from curation.store.fs import sha256_of

CARD = "README.md"
# table -> (split name on the Hub, what it is)
TABLES: dict[str, tuple[str, str]] = {
    "sft": ("train", "verified reasoning traces as chat `messages` + `images` (TRL / LLaMA-Factory SFT)"),
    "rl": ("train", "RL prompts: `prompt`, `images`, gold `solution`, `answer_type`, `choices`, pass rate once scored"),
    "val": ("validation", "held-out prompts for choosing hyperparameters (rl layout)"),
    "test": ("test", "held-out prompts read only by final evaluation (rl layout)"),
    "examples": ("train", "every kept row of every split: images, question, gold answer, caption, hashes, split"),
    "traces": ("train", "every distilled trace with the verifier's verdict (wrong ones too) and why it was (not) selected"),
    "rejects": ("train", "every dropped row: stage, reason, detail, source id"),
}
TASK_CATEGORIES = ["visual-question-answering", "image-text-to-text"]


def yaml_features(table: str, hf: dict | None = None) -> list[dict]:
    """The table's features in the Hub's YAML form (what ``datasets.Features._to_yaml_list`` writes), from
    ``hf`` (the ``huggingface`` features of a shard's footer) or else from today's schema."""
    if hf is None:
        hf = json.loads(SCHEMAS[table].metadata[b"huggingface"])["info"]["features"]

    def inner(f: dict) -> dict:
        t = f.get("_type")
        if t == "Value":
            return {"dtype": f["dtype"]}
        if t == "Image":
            return {"dtype": "image"}
        if t == "List":
            sub = inner(f["feature"])
            if list(sub) == ["dtype"]:
                return {"list": sub["dtype"]}
            if list(sub) == ["struct"]:
                return {"list": sub["struct"]}
            return {"list": sub}
        assert t is None, f"feature type {t!r} has no YAML form here"
        return {"struct": [{"name": k, **inner(v)} for k, v in f.items()]}

    return [{"name": name, **inner(f)} for name, f in hf.items()]


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "n>10M"


def header(manifest: dict, features: dict | None = None) -> dict:
    features = features or {}
    files = manifest.get("files") or {}
    tables = [t for t in TABLES if t in files]
    configs = [{"config_name": t, "data_files": [{"split": TABLES[t][0], "path": [e["path"] for e in files[t]]}]}
               for t in tables]
    if configs:
        configs[0]["default"] = True  # sft: what most people load first
    examples = (manifest.get("tables") or {}).get("examples", 0)
    return {
        "pretty_name": f"{manifest.get('name', 'dataset')} (Sightline)",
        "language": ["en"],
        "task_categories": TASK_CATEGORIES,
        "tags": ["sightline", "reasoning", "chain-of-thought", "multimodal"]
                + (["synthetic"] if _synthetic(manifest) else []),
        "size_categories": [size_category(examples)],
        "configs": configs,
        "dataset_info": [{"config_name": t, "features": yaml_features(t, features.get(t))} for t in tables],
    }


def _synthetic(manifest: dict) -> bool:
    return bool(((manifest.get("config") or {}).get("synthetic") or {}).get("n"))


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(x: Any) -> str:
        return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _sources(manifest: dict) -> list[list[Any]]:
    cfg = manifest.get("config") or {}
    rows = []
    syn = cfg.get("synthetic") or {}
    if syn.get("n"):
        families = ", ".join(syn.get("families") or []) or "all families"
        rows.append(["synthetic", (f"{syn['n']} procedurally drawn problems (level {syn.get('level')}, "
                     f"{families}, seed {syn.get('seed')})"), "generated by Sightline's program: no third-party content"])
    for s in cfg.get("sources") or []:
        if isinstance(s, str):
            s = {"path": s}
        rows.append([s.get("name") or s.get("path"), f"{s.get('type', 'auto')}: `{s.get('path')}`",
                     s.get("license") or "not recorded in the recipe: check the source's terms before sharing"])
    return rows


def body(manifest: dict) -> str:
    name, cfg = manifest.get("name", "dataset"), manifest.get("config") or {}
    counts, tables = manifest.get("stage_counts") or {}, manifest.get("tables") or {}
    out = [f"# {name}", "",
           ("Reasoning data for vision-language models, curated by Sightline "
           "(Apache Beam pipeline: ingest, validate, dedup, decontaminate, caption, distill, verify, select). "
           "This folder is one immutable version: `manifest.json` lists every file with its row count and "
           "sha256, and `sightline data verify --data <dataset> --version <N>` re-checks them, this card included."),
           "", "## Tables", "",
           _md_table(["config", "split", "rows", "what it is"],
                     [[t, TABLES[t][0], tables.get(t, 0), TABLES[t][1]] for t in TABLES if t in tables]),
           "", "## Sources", ""]
    src = _sources(manifest)
    out += [_md_table(["source", "what", "licence"], src) if src else "No source recorded in the config.", ""]
    stage = cfg.get("stage") or "curate"
    out += ["## How this version was made", "",
            f"- made by: `{stage}`" + (f" from version {manifest['parent']}" if manifest.get("parent") is not None
                                       else " (no parent: a fresh curation run)"),
            (f"- created: {manifest.get('created_at')}, from git commit `{manifest.get('git_commit')}`,"
            f" schema version {manifest.get('schema_version')}"), ""]
    teachers = [[role, t.get("backend"), f"`{t.get('model')}`", t.get("prompt_version"),
                 f"`{json.dumps(t.get('sampling') or {}, sort_keys=True)}`"]
                for role, t in (manifest.get("teachers") or {}).items() if isinstance(t, dict)]
    if teachers:
        out += ["### Teachers", "", _md_table(["role", "backend", "model", "prompt version", "sampling"], teachers), ""]
    rows = [[s, c.get("in"), c.get("out"), c.get("rejected"), c.get("duplicates", 0)]
            for s, c in counts.items() if isinstance(c, dict) and "in" in c and "out" in c]
    if rows:
        out += ["### Counts per stage", "", _md_table(["stage", "in", "out", "rejected", "duplicates"], rows), ""]
    acc = manifest.get("accounting") or {}
    if "rows_in" in acc:
        out += [(f"Accounting: {acc['rows_in']} rows in = {acc['rows_written']} written + {acc['rows_rejected']} "
                f"rejected + {acc['rows_duplicate']} duplicates. Every dropped row is in `rejects` with its reason."), ""]
    split = counts.get("split") or {}
    if split:
        out += ["### Splits", "",
                "Rows are split by a hash of their split group (the first image's bytes, merged with confirmed "
                "near-copies), so one image never sits on two sides: "
                + ", ".join(f"{k} {v}" for k, v in split.items()) + ".", ""]
    evals = (cfg.get("decontam") or {}).get("eval_sets") or []
    names = [e.get("name") or e.get("path") if isinstance(e, dict) else str(e) for e in evals]
    out += ["### Decontamination", "",
            (f"Checked against: {', '.join(map(str, names))}; rows that match are in `rejects` (stage `decontam`)."
             if names else "No benchmark was given to decontaminate against (`decontam.eval_sets` is empty)."), ""]
    out += ["## Use it", "", "```python", "from datasets import load_dataset", "",
            'sft = load_dataset("path/to/this/folder", "sft", split="train")   # images decode to PIL',
            'rl = load_dataset("path/to/this/folder", "rl", split="train")',
            'test = load_dataset("path/to/this/folder", "test", split="test")', "```", "",
            "```bash", f"sightline audit --data path/to/{name} --version <N> summary      # or rejects, difficulty, SQL",
            f"sightline report --html --data path/to/{name} --version <N>         # a browsable datasheet",
            "```", ""]
    return "\n".join(out)


def render_card(manifest: dict, features: dict | None = None) -> str:
    """The whole ``README.md``: YAML header between ``---`` lines, then the body. ``features``: table ->
    the shards' own ``huggingface`` features, for a version written under an older schema."""
    head = yaml.safe_dump(header(manifest, features), sort_keys=False, allow_unicode=True, width=120)
    return f"---\n{head}---\n\n{body(manifest)}"


def card_entry(text: str) -> dict:
    """The manifest's ``card`` field for a card's text: path, sha256 and bytes, like a shard's entry."""
    import hashlib

    data = text.encode()
    return {"path": CARD, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def card_problems(version_dir, manifest: dict) -> list[str]:
    """What is wrong with the version's card where it lives (a local ``Path`` or an object-store path):
    missing, or not the bytes the manifest lists. A version written before cards has none to check."""
    card = manifest.get("card")
    if not card:
        return []
    f = version_dir / card["path"]
    if not f.is_file():
        return [f"{card['path']}: missing (the manifest lists the card)"]
    digest = sha256_of(f)
    if digest != card["sha256"]:
        return [f"{card['path']}: sha256 {digest[:12]}... does not match manifest {card['sha256'][:12]}..."]
    return []
