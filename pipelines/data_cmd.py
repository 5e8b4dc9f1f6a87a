"""`sightline data`: build a dataset version, or check one.

    sightline data                                   # configs/data/mini.yaml -> data/mini/vNNNN
    sightline data --config configs/data/mini.yaml --set synthetic.n=500 --workers 2
    sightline data inspect data/raw/train.json        # or a recipe: every source in it
    sightline data verify --data data/mini [--version N]
    sightline data versions --data data/mini
    sightline data export --data data/mini [--version N] --to hub/mini-v1   # a plain Hub folder, nothing pushed
    sightline data gc --data data/mini [--dry-run]    # what killed runs left behind
"""
from __future__ import annotations

import argparse
import os
import sys

from curation.loader import describe, to_dict
from curation.errors import SightlineError
from curation.recipe import DataRecipe, load_data_recipe
from curation.store.versions import Store, version_dirname
from pipelines.curate import run
from pipelines.profile import format_pass
from pipelines.args import add_recipe_arguments
from curation.answers.learnable import exclusion
from curation.sources.inspection import format_inspection, inspect_source
from curation.split import split_leaks
from curation.store.card import card_problems
from curation.store.export import export_version
from curation.loader import apply_overrides, read_yaml


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"sightline data {command}", description=description)


def _split_problems(store: Store, version: int) -> list[str]:
    """An image (or a near-copy group) with rows on two sides of the train/val/test split is a leak."""
    t = store.read_table("examples", version, columns=["image_key", "split_group", "split"]).to_pylist()
    problems = []
    for column in ("image_key", "split_group"):
        leaks = split_leaks((r[column], r["split"]) for r in t if r[column] is not None)
        problems += [f"examples: {column} {k} has rows in more than one split" for k in leaks[:20]]
    return problems


def _learnable_problems(store: Store, version: int) -> list[str]:
    """Every row of rl / val / test must be learnable (``curation.answers.learnable``): a type, a gold
    that verifies against itself, open only with a judge or ``rl.keep_open`` in the version's recipe."""
    from collections import Counter

    m = store.manifest(version)
    config = m.get("config") or {}
    judge = ((config.get("judge") or {}).get("backend") or "none") != "none"
    keep_open = bool((config.get("rl") or {}).get("keep_open"))
    problems: list[str] = []
    counts: Counter = Counter()
    for table in ("rl", "val", "test"):
        if table not in m.get("tables", {}):
            continue
        rows = store.read_table(table, version, columns=["id", "solution", "answer_type", "choices"]).to_pylist()
        for r in rows:
            found = exclusion({"answer": r["solution"], "answer_type": r["answer_type"], "choices": r["choices"]},
                              judge=judge, keep_open=keep_open)
            if found is not None:
                counts[(table, found[0])] += 1
                if len(problems) < 20:
                    problems.append(f"{table}: row {r['id']} is not learnable: {found[0]} ({found[1]})")
    if sum(counts.values()) > len(problems):
        problems.append("not learnable in all: " + ", ".join(f"{t}/{why} x{n}" for (t, why), n in sorted(counts.items())))
    return problems


def _verify(argv: list[str]) -> int:
    p = _parser("verify", "Re-check every shard's sha256 and row count, and the card's sha256, against "
                                            "the manifest; that no "
                                            "image has rows on two sides of the split, and that every rl / val / "
                                            "test row is learnable (an answer type, a gold that verifies against "
                                            "itself, open only with a judge or rl.keep_open).")
    p.add_argument("--data", required=True, help="dataset folder, e.g. data/mini")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    a = p.parse_args(argv)
    store = Store(a.data)
    v = store.resolve(a.version)

    problems = store.verify(v) + card_problems(store.root / version_dirname(v), store.manifest(v)) + _split_problems(store, v)
    problems += _learnable_problems(store, v)
    n_files = sum(len(es) for es in store.manifest(v)["files"].values()) + bool(store.manifest(v).get("card"))
    if problems:
        for prob in problems:
            print(f"FAIL {prob}", file=sys.stderr)
        print(f"{store.root} v{v:04d}: {len(problems)} problem(s) in {n_files} files", file=sys.stderr)
        return 1
    print(f"{store.root} v{v:04d}: OK, {n_files} files match the manifest")
    return 0


def _inspect(argv: list[str]) -> int:
    p = _parser("inspect", "Show how a source would be read: detected format, files, the fields of the first rows as "
                    "dotted paths, the column mapping it would use, and 3 parsed rows. Give a file, a folder, a "
                    "glob, or a data recipe (every source in it).")
    p.add_argument("source", help="a JSON / JSONL / Parquet file, a folder, a glob, an HF save_to_disk folder, "
                                  "or a recipe .yaml")
    p.add_argument("--rows", type=int, default=3, help="parsed rows to show (default %(default)s)")
    a = p.parse_args(argv)

    if a.source.endswith((".yaml", ".yml")):
        specs = (apply_overrides(read_yaml(a.source), []).get("sources") or [])
        if not specs:
            raise SightlineError(f"{a.source}: the recipe lists no `sources:`")
    else:
        specs = [a.source]
    for spec in specs:
        print(format_inspection(inspect_source(spec, n=a.rows)))
    return 0


def _versions(argv: list[str]) -> int:
    p = _parser("versions", "List the complete versions.")
    p.add_argument("--data", required=True)
    a = p.parse_args(argv)
    store = Store(a.data)
    store.resolve("latest")  # clear error when empty or missing
    for v in store.versions():
        m = store.manifest(v)
        tables = ", ".join(f"{k}={n}" for k, n in m["tables"].items())
        print(f"v{v:04d}  parent={m['parent']}  {m['created_at']}  {tables}")
    return 0


def _export(argv: list[str]) -> int:
    p = _parser("export", "Copy a version as a plain Hugging Face Hub folder (README.md card + Parquet + manifest.json), "
                    "every file checked against its sha256. Nothing is pushed: upload the folder yourself.")
    p.add_argument("--data", required=True, help="dataset folder, e.g. data/mini")
    p.add_argument("--version", default="latest", help="version number or latest (default)")
    p.add_argument("--to", required=True, help="the new folder (must not exist, or be empty)")
    a = p.parse_args(argv)

    store = Store(a.data)
    r = export_version(store, a.version, a.to)
    made = " (card made from the manifest: this version predates cards)" if r["card_made"] else ""
    print(f"exported {store.root} v{r['version']:04d} to {r['path']}: {r['files']} files, "
          f"{r['bytes'] / 1e6:.1f} MB{made}")
    print(f"load:   datasets.load_dataset({str(r['path'])!r}, \"sft\")")
    return 0


def _gc(argv: list[str]) -> int:
    p = _parser("gc", "Remove what killed runs left behind: staging folders (local), claimed but unpublished version "
                    "folders (object storage) and local spool folders whose writer is gone (its process is dead, or "
                    "its heartbeat is older than --stale-after). A folder whose writer is alive is never touched; "
                    "every `sightline data` run does the same before it starts.")
    p.add_argument("--data", required=True, help="dataset folder or URL, e.g. data/mini or gs://bucket/data/mini")
    p.add_argument("--stale-after", type=float, default=None, metavar="SECONDS",
                   help="a writer on another machine whose heartbeat is older than this is gone "
                        "(default: the store's, 10 minutes)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    a = p.parse_args(argv)
    if a.stale_after is not None and a.stale_after <= 0:
        raise SightlineError("--stale-after must be > 0 seconds")
    store = Store(a.data)
    if not store.root.is_dir():
        raise SightlineError(f"no data folder at {store.root}")
    report = store.collect_garbage(stale_s=a.stale_after, dry_run=a.dry_run)
    verb = "would remove" if a.dry_run else "removed"
    for path in report.removed:
        print(f"{verb} {path}")
    for path in report.kept:
        print(f"kept {path} (its writer is alive)")
    print(f"{store.root}: {verb} {len(report.removed)}, kept {len(report.kept)} in use")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    if argv and argv[0] == "verify":
        return _verify(argv[1:])
    if argv and argv[0] == "inspect":
        return _inspect(argv[1:])
    if argv and argv[0] == "versions":
        return _versions(argv[1:])
    if argv and argv[0] == "export":
        return _export(argv[1:])
    if argv and argv[0] == "gc":
        return _gc(argv[1:])
    return _build(argv)


# ---------------------------------------------------------------------------- building a version (the default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sightline data",
        description="Build a new version of a dataset with the Beam curate pipeline "
                    "(also: `sightline data inspect SOURCE`, `data verify --data DIR`, `data versions --data DIR`, "
                    "`data gc --data DIR`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  sightline data --config configs/data/mini.yaml --set synthetic.n=500 --workers 2\n\n"
               "recipe keys (--set KEY=VALUE):\n" + _recipe_help())
    add_recipe_arguments(p, "configs/data/mini.yaml", "data", "distill.n=4")
    p.add_argument("--workers", type=workers_arg, default=None, metavar="N|auto",
                   help="local worker processes (default: recipe's runner.workers; 1 = in-process; auto = one per "
                        f"CPU core this process may use, at most {AUTO_WORKERS_MAX}: `make data` uses it). Workers are "
                        "forked from a warm copy of this process: one starts in ~0.02 s instead of ~1-2 s of imports")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.add_argument("--profile", action="store_true",
                   help="after the run, print per pass its wall time and peak RSS (worker processes included) and "
                        "per step the elements in/out, seconds and rows/s, from Beam's metrics")
    p.add_argument("beam_args", nargs="*", metavar="-- BEAM_ARGS",
                   help="after `--`: Beam pipeline options, e.g. -- --runner=DataflowRunner --project=P "
                        "(see docs/dataflow.md; default: in-process local runner)")
    return p


AUTO_WORKERS_MAX = 4  # past a few, a machine's memory bandwidth and the passes' fixed costs gain little locally


def auto_workers(cap: int = AUTO_WORKERS_MAX) -> int:
    """One worker per CPU core this process may run on (its affinity, e.g. a container's share), at most ``cap``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cap, cores))


def workers_arg(text: str) -> int:
    """``--workers``: a count >= 1, or ``auto`` (:func:`auto_workers`)."""
    if text.strip().lower() == "auto":
        return auto_workers()
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or auto, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (1 = in-process), got {n}")
    return n


def _recipe_help() -> str:
    return describe(DataRecipe)


def _build(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    recipe = load_data_recipe(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(recipe), sort_keys=False))
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    profiles = [] if args.profile else None
    run(recipe, workers=args.workers, beam_args=args.beam_args, profiles=profiles)
    if profiles:
        print("\nprofile (seconds: Beam's execution-time metric per step; rows/s = elements in / seconds; a reader's:"
              " rows out; a step taking row groups: the rows in them)")
        for prof in profiles:
            print(format_pass(prof))
    return 0
