"""``sightline train``: tiny-model | sft | grpo | all | show-config, driven by one YAML recipe.

    sightline train tiny-model [--out models/tiny]
    sightline train sft  --config configs/train/mini.yaml [--set sft.max_steps=100]
    sightline train grpo --config configs/train/mini.yaml [--set grpo.sampler=vas]
    sightline train all  --config configs/train/mini.yaml
    sightline train show-config --config configs/train/mini.yaml [--set ...]   the resolved recipe as YAML

``all`` = build the tiny model if absent -> SFT on ``sft/`` -> difficulty (k rollouts of the SFT
model on ``rl/``, a new version) -> GRPO on that version (sampler ``grpo.sampler``) -> greedy
eval of base, SFT and GRPO on ``test/`` -> a summary table, ``runs/<name>/summary.json``,
``eval.png`` and ``curves.png``. The whole recipe is read and checked first: a mistyped key, value,
sampler or reward stops the command with one line before any model, data or run folder is touched.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from curation.loader import describe, to_dict
from curation.store.versions import Store
from pipelines import difficulty
from pipelines.args import add_recipe_arguments, doc_parser
from training.eval_report import bar_chart, open_summary, probe_table, save_figure, table
from training.evaluate import evaluate, majority_baseline
from training.recipe import TrainRecipe, describe_sections, load_train_recipe

DEFAULT_CONFIG = "configs/train/mini.yaml"


def _log(msg: str) -> None:
    print(f"[train] {msg}", flush=True)


# ---------------------------------------------------------------------------- the stages' inputs


def curated_version(store, version: Any = "latest") -> int:
    """``version`` resolved; a difficulty version stands for its parent (the curated one it scored)."""
    v = store.resolve(version)
    while (store.manifest(v).get("config") or {}).get("stage") == "difficulty" and store.manifest(v).get("parent"):
        v = int(store.manifest(v)["parent"])
    return v


def sft_model(recipe: TrainRecipe) -> str:
    """Where SFT writes its final checkpoint (GRPO's and difficulty's starting point)."""
    return str(Path(recipe.sft.output_dir) / "final")


def ensure_model(recipe: TrainRecipe) -> tuple[str, float]:
    """The starting checkpoint's path, building the tiny model there first when allowed; seconds spent."""
    from training.tiny_model import build_tiny_model

    path = Path(recipe.model.path)
    if (path / "config.json").is_file():
        return str(path), 0.0
    if not recipe.model.build_tiny:
        raise SightlineError(f"no model at {path} (set model.build_tiny=true to build the tiny one there)")
    t0 = time.monotonic()
    _log(f"building the tiny model at {path}")
    build_tiny_model(path, recipe.tiny_model)
    return str(path), time.monotonic() - t0


def score_difficulty(recipe: TrainRecipe, version: int, model: str) -> int:
    """The difficulty pass of ``model`` (unless the recipe names its own policy) over ``version``: the new version."""
    cfg = recipe.difficulty if recipe.difficulty.model else dataclasses.replace(recipe.difficulty, model=model)
    return difficulty.run(recipe.run.data, version, cfg)


# ---------------------------------------------------------------------------- commands


def cmd_tiny_model(recipe: TrainRecipe, out: str | None) -> int:
    from training.tiny_model import TINY_INFO, build_tiny_model

    path = Path(out or recipe.model.path)
    t0 = time.monotonic()
    build_tiny_model(path, recipe.tiny_model)
    info = json.loads((path / TINY_INFO).read_text())
    print(f"wrote {path}: tiny Qwen2-VL, {info['parameters']:,} parameters, vocabulary {info['vocab_size']}, "
          f"{info['image_size']}px images -> {info['image_tokens']} image tokens "
          f"({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_sft(recipe: TrainRecipe) -> int:
    from training.sft import run

    ensure_model(recipe)
    run(recipe.sft, recipe.model, recipe.run.data, recipe.run.version)
    return 0


def cmd_grpo(recipe: TrainRecipe) -> int:
    from training.grpo import run

    run(recipe.grpo, dataclasses.replace(recipe.model, path=sft_model(recipe)), recipe.run.data, recipe.run.version,
        judge=recipe.judge)
    return 0


def cmd_show_config(recipe: TrainRecipe) -> int:
    import yaml

    print(yaml.safe_dump(to_dict(recipe), sort_keys=False, width=110), end="")
    return 0


def cmd_all(recipe: TrainRecipe) -> int:
    from training.grpo import run as run_grpo
    from training.sft import run as run_sft

    t_start = time.monotonic()
    run = recipe.run
    store = Store(run.data)
    version = curated_version(store, run.version)
    folder = run.folder
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    summary: dict[str, Any] = {"name": run.name, "data": run.data, "version": version, "config": to_dict(recipe)}
    _log(f"run {run.name}: data {store.root} v{version:04d}, outputs in {folder}")

    base, seconds["tiny_model"] = ensure_model(recipe)
    summary["model"] = {"path": base, **_model_info(base)}
    checkpoints = {"base": base}

    t0 = time.monotonic()
    sft = run_sft(recipe.sft, recipe.model, run.data, version)
    seconds["sft"] = time.monotonic() - t0
    summary["sft"] = sft
    checkpoints["sft"] = sft["model"]

    rl_version = version
    if "difficulty" in run.stages:
        t0 = time.monotonic()
        rl_version = score_difficulty(recipe, version, sft["model"])
        seconds["difficulty"] = time.monotonic() - t0
        summary["difficulty_version"] = rl_version
        summary["difficulty"] = store.manifest(rl_version).get("stage_counts", {}).get("difficulty")
    if "grpo" in run.stages:
        t0 = time.monotonic()
        grpo = run_grpo(recipe.grpo, dataclasses.replace(recipe.model, path=sft["model"]), run.data, rl_version,
                        judge=recipe.judge)
        seconds["grpo"] = time.monotonic() - t0
        summary["grpo"] = grpo
        checkpoints["grpo"] = grpo["model"]
    if "eval" in run.stages:
        t0 = time.monotonic()
        summary["eval"] = evaluate_checkpoints(recipe, store, version, checkpoints)
        seconds["eval"] = time.monotonic() - t0
    curves = plot_run_curves(folder)
    seconds["total"] = time.monotonic() - t_start
    summary["minutes"] = {k: round(v / 60, 2) for k, v in seconds.items()}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print("minutes: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()))
    written = [folder / "summary.json"] + ([folder / "eval.png"] if "eval" in summary else []) + ([curves] if curves else [])
    print("wrote " + ", ".join(map(str, written)))
    return 0


def evaluate_checkpoints(recipe: TrainRecipe, store, version: int, checkpoints: dict[str, str]) -> dict:
    """Greedy held-out accuracy of each checkpoint and of the answer prior: ``eval.json``, ``eval.png``, a table."""
    folder, cfg = recipe.run.folder, recipe.eval
    results = []
    for name, path in checkpoints.items():
        r = evaluate(path, store, version, cfg, trust_remote_code=recipe.model.trust_remote_code, judge=recipe.judge)
        opened = open_summary(r)
        _log(f"eval {name}: {100 * r['accuracy']:.1f}% of {r['n']} {cfg.table} rows" + (f"; {opened}" if opened else "")
             + f" ({r['seconds']:.0f} s)")
        results.append(r)
    results.append(majority_baseline(store, version, cfg.limit, table=cfg.table,  # the answer prior, no image
                                     judge=recipe.judge))
    names = [*checkpoints, "majority"]
    (folder / "eval.json").write_text(json.dumps(dict(zip(names, results)), indent=2) + "\n")
    bar_chart(results, folder / "eval.png", labels=names,
              title=f"{recipe.run.name}: held-out greedy accuracy ({results[0]['n']} rows of {store.name} v{version})")
    print()
    print(table(results, labels=names))
    probes = probe_table(results[:-1], labels=names[:-1])
    print(f"\n{probes}\n" if probes else "")
    return {name: {k: r[k] for k in ("model", "n", "accuracy", "format_ok", "open")} |
            {"per_task": {t: v["accuracy"] for t, v in r["per_task"].items()}} |
            ({"probes": {p: q["accuracy"] for p, q in r["probes"].items()}} if r.get("probes") else {})
            for name, r in zip(names, results)}


def _model_info(path: str) -> dict:
    info = Path(path) / "sightline_tiny.json"
    if info.is_file():
        d = json.loads(info.read_text())
        return {"parameters": d["parameters"], "tiny": d}
    return {}


def plot_run_curves(folder: Path) -> Path | None:
    """``curves.png``: SFT loss and GRPO rewards against steps, from the stages' metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.callbacks import read_jsonl
    from training.grpo.curves import reward_panel

    sft = [r for r in read_jsonl(folder / "sft" / "metrics.jsonl") if "loss" in r]
    grpo = [r for r in read_jsonl(folder / "grpo" / "metrics.jsonl") if "reward" in r]
    if not sft and not grpo:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if sft:
        axes[0].plot([r["step"] for r in sft], [r["loss"] for r in sft], label="loss")
        if any("mean_token_accuracy" in r for r in sft):
            ax = axes[0].twinx()
            ax.plot([r["step"] for r in sft], [r.get("mean_token_accuracy") for r in sft], color="tab:orange",
                    alpha=0.7, label="token accuracy")
            ax.set_ylabel("token accuracy")
    axes[0].set(xlabel="step", ylabel="loss (assistant tokens)", title="SFT")
    reward_panel(axes[1], grpo, title="GRPO")
    out = save_figure(fig, folder / "curves.png", dpi=100)
    return out


# ---------------------------------------------------------------------------- entry point

COMMANDS = {  # name -> (help, the recipe sections it reads)
    "tiny-model": ("build the tiny local Qwen2-VL (model + tokenizer + processor)", ("model", "tiny_model")),
    "sft": ("SFT cold start on the sft table", ("run", "model", "tiny_model", "sft")),
    "grpo": ("GRPO on the rl table with a prompt sampler, from the run's SFT checkpoint",
             ("run", "model", "grpo", "judge")),
    "all": ("tiny model -> SFT -> difficulty -> GRPO -> eval -> summary",
            ("run", "model", "tiny_model", "sft", "difficulty", "grpo", "eval", "judge")),
    "show-config": ("print the resolved recipe (file + --set + the run's defaults) as YAML", ()),
}


def _section_keys(sections: tuple[str, ...]) -> str:
    """The keys a subcommand reads: every field of Sightline's sections, Sightline's own fields of TRL's."""
    import typing

    from trl import GRPOConfig, SFTConfig

    trl_base = {"sft": SFTConfig, "grpo": GRPOConfig}
    classes = typing.get_type_hints(TrainRecipe)
    lines = []
    for name in sections:
        if name in trl_base:
            changed = ", ".join(f"{k}={v!r}" for k, v in _changed_defaults(classes[name], trl_base[name]).items())
            lines.append(f"  {name}.* = any trl.{trl_base[name].__name__} field, by TRL's name; defaults changed "
                         f"here: {changed}; Sightline adds:")
            lines.append(describe(classes[name], name, own_only=trl_base[name]))
        else:
            lines.append(describe(classes[name], name))
    return "\n".join(lines)


def _changed_defaults(cls: type, base: type) -> dict:
    """The fields whose default ``cls`` changes from TRL's ``base`` (output_dir and seed come from the run)."""
    def default(f):
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    theirs = {f.name: f for f in dataclasses.fields(base)}
    return {f.name: default(f) for f in dataclasses.fields(cls)
            if f.name in theirs and default(f) != default(theirs[f.name])}


def _parser(argv: list[str] | None) -> argparse.ArgumentParser:
    epilog = (__doc__.split("\n\n", 1)[1] + "\nrecipe sections (sightline train show-config prints every value):\n"
              + describe_sections())
    ap = doc_parser("sightline train", __doc__, epilog=epilog)
    sub = ap.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    wants_help = any(a in ("-h", "--help") for a in argv or [])
    for name, (h, sections) in COMMANDS.items():
        keys = _section_keys(sections) if wants_help and sections and name in (argv or []) else ""
        p = sub.add_parser(name, help=h, description=h, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=f"recipe sections read: {', '.join(sections)}\n{keys}" if sections else None)
        add_recipe_arguments(p, None, f"train ({DEFAULT_CONFIG} when present)", "sft.max_steps=50",
                             metavar="SECTION.KEY=VALUE")
        if name == "tiny-model":
            p.add_argument("--out", default=None, help="folder to write (default: the recipe's model.path)")
    return ap


def main(argv: list[str] | None = None) -> int:
    import warnings

    # transformers 5.23 warns about its own deprecated name once per GRPO step; it says nothing to users
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    ap = _parser(argv)
    args = ap.parse_args(argv)
    if not args.command:
        ap.print_help()
        return 2
    config = args.config
    if config is None and Path(DEFAULT_CONFIG).is_file():
        config = DEFAULT_CONFIG
    recipe = load_train_recipe(config, args.overrides)  # every key and value checked: nothing touched yet
    if args.command == "show-config":
        return cmd_show_config(recipe)
    if recipe.run.threads:
        import torch

        torch.set_num_threads(recipe.run.threads)
    if args.command == "tiny-model":
        return cmd_tiny_model(recipe, args.out)
    if args.command == "sft":
        return cmd_sft(recipe)
    if args.command == "grpo":
        return cmd_grpo(recipe)
    return cmd_all(recipe)


if __name__ == "__main__":  # `accelerate launch -m pipelines.train_cmd sft ...`: errors print as one line
    import sys

    from pipelines.cli import main as sightline

    sys.exit(sightline(["train", *sys.argv[1:]]))
