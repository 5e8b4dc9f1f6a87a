"""``sightline train``: tiny-model | sft | grpo | all, driven by one YAML recipe.

    sightline train tiny-model [--out models/tiny]
    sightline train sft  --config configs/train/mini.yaml [--set sft.max_steps=100]
    sightline train grpo --config configs/train/mini.yaml [--set grpo.sampler=vas]
    sightline train all  --config configs/train/mini.yaml

``all`` = build the tiny model if absent -> SFT on ``sft/`` -> difficulty (k rollouts of the SFT
model on ``rl/``, a new version) -> GRPO on that version (sampler ``grpo.sampler``) -> greedy
eval of base, SFT and GRPO on ``test/`` -> a summary table, ``runs/<name>/summary.json``,
``eval.png`` and ``curves.png``. Stages whose module is not installed are skipped with a message.
"""
from __future__ import annotations

import argparse
import inspect
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from training.config import ModelConfig, RunConfig, load_config, to_dataclass

DEFAULT_CONFIG = "configs/train/mini.yaml"
STAGES = ("sft", "difficulty", "grpo", "eval")


def _log(msg: str) -> None:
    print(f"[train] {msg}", flush=True)


# ---------------------------------------------------------------------------- recipes from a config


def _run_and_model(cfg: dict) -> tuple[RunConfig, ModelConfig]:
    return to_dataclass(RunConfig, cfg["run"], "run"), to_dataclass(ModelConfig, cfg["model"], "model")


def _set_threads(cfg: dict) -> None:
    run, _ = _run_and_model(cfg)
    if run.threads:
        import torch

        torch.set_num_threads(run.threads)


def sft_recipe(cfg: dict):
    from training.sft import SFTRecipe

    run, model = _run_and_model(cfg)
    return to_dataclass(SFTRecipe, cfg["sft"], "sft", model=model.path, data=run.data, version=run.version,
                        output_dir=str(run.folder / "sft"), seed=run.seed, dtype=model.dtype,
                        trust_remote_code=model.trust_remote_code)


def grpo_recipe(cfg: dict, *, version: Any = "latest"):
    from training.grpo import GRPORecipe

    run, model = _run_and_model(cfg)
    return to_dataclass(GRPORecipe, cfg["grpo"], "grpo", model=str(run.folder / "sft" / "final"), data=run.data,
                        version=str(version), output_dir=str(run.folder / "grpo"), seed=run.seed, dtype=model.dtype,
                        trust_remote_code=model.trust_remote_code)


def eval_config(cfg: dict):
    from training.evaluate import EvalConfig

    _, model = _run_and_model(cfg)
    return to_dataclass(EvalConfig, cfg["eval"], "eval", dtype=model.dtype)


def curated_version(store, version: Any = "latest") -> int:
    """``version`` resolved; a difficulty version stands for its parent (the curated one it scored)."""
    v = store.resolve(version)
    while (store.manifest(v).get("config") or {}).get("stage") == "difficulty" and store.manifest(v).get("parent"):
        v = int(store.manifest(v)["parent"])
    return v


def ensure_model(cfg: dict) -> tuple[str, float]:
    """The starting checkpoint's path, building the tiny model there first when allowed; seconds spent."""
    from training.tiny_model import build_tiny_model

    run, model = _run_and_model(cfg)
    path = Path(model.path)
    if (path / "config.json").is_file():
        return str(path), 0.0
    if not model.build_tiny:
        raise SightlineError(f"no model at {path} (set model.build_tiny=true to build the tiny one there)")
    t0 = time.monotonic()
    _log(f"building the tiny model at {path}")
    build_tiny_model(path, seed=run.seed, **cfg["tiny_model"])
    return str(path), time.monotonic() - t0


# ---------------------------------------------------------------------------- commands


def cmd_tiny_model(cfg: dict, out: str | None) -> int:
    from training.tiny_model import TINY_INFO, build_tiny_model

    run, model = _run_and_model(cfg)
    path = Path(out or model.path)
    t0 = time.monotonic()
    build_tiny_model(path, seed=run.seed, **cfg["tiny_model"])
    info = json.loads((path / TINY_INFO).read_text())
    print(f"wrote {path}: tiny Qwen2-VL, {info['parameters']:,} parameters, vocabulary {info['vocab_size']}, "
          f"{info['image_size']}px images -> {(info['image_size'] // 28) ** 2} image tokens "
          f"({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_sft(cfg: dict) -> int:
    from training.sft import run

    ensure_model(cfg)
    run(sft_recipe(cfg))
    return 0


def cmd_grpo(cfg: dict) -> int:
    try:
        from training.grpo import run
    except ImportError as e:
        raise SightlineError(f"GRPO is not available here ({e})") from None
    run(grpo_recipe(cfg, version=cfg["run"].get("version", "latest")))
    return 0


def _difficulty(cfg: dict, store, version: int, model: str) -> int | None:
    try:
        from pipelines import difficulty
    except ImportError as e:
        _log(f"difficulty pipeline not available ({e}); skipping it")
        return None
    run, model_cfg = _run_and_model(cfg)
    dc = to_dataclass(difficulty.DifficultyConfig, cfg["difficulty"], "difficulty", model=model, seed=run.seed,
                      dtype=model_cfg.dtype)
    kwargs = {k: v for k, v in asdict(dc).items() if k not in ("model", "k")}
    accepted = inspect.signature(difficulty.run).parameters
    return difficulty.run(str(store.root), version, dc.model, dc.k,
                          **{k: v for k, v in kwargs.items() if k in accepted})


def cmd_all(cfg: dict) -> int:
    from curation.store import Store
    from training.evaluate import bar_chart, evaluate, majority_baseline, table
    from training.sft import run as run_sft

    t_start = time.monotonic()
    run, model_cfg = _run_and_model(cfg)
    stages = run.stages
    store = Store(run.data)
    version = curated_version(store, run.version)
    folder = run.folder
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    summary: dict[str, Any] = {"name": run.name, "data": run.data, "version": version, "config": cfg}
    _log(f"run {run.name}: data {store.root} v{version:04d}, outputs in {folder}")

    base, seconds["tiny_model"] = ensure_model(cfg)
    summary["model"] = {"path": base, **_model_info(base)}
    checkpoints = {"base": base}

    t0 = time.monotonic()
    sft = run_sft(sft_recipe(cfg))
    seconds["sft"] = time.monotonic() - t0
    summary["sft"] = sft
    checkpoints["sft"] = sft["model"]

    rl_version = version
    if "difficulty" in stages:
        t0 = time.monotonic()
        scored = _difficulty(cfg, store, version, sft["model"])
        if scored is not None:
            seconds["difficulty"] = time.monotonic() - t0
            rl_version = scored
            summary["difficulty_version"] = scored
            summary["difficulty"] = store.manifest(scored).get("stage_counts", {}).get("difficulty")
    if "grpo" in stages:
        try:
            from training.grpo import run as run_grpo
        except ImportError as e:
            _log(f"GRPO not available ({e}); stopping after SFT and eval")
        else:
            t0 = time.monotonic()
            grpo = run_grpo(grpo_recipe(cfg, version=rl_version))
            seconds["grpo"] = time.monotonic() - t0
            summary["grpo"] = grpo
            checkpoints["grpo"] = grpo["model"]

    results = []
    if "eval" in stages:
        ec = eval_config(cfg)
        t0 = time.monotonic()
        for name, path in checkpoints.items():
            r = evaluate(path, store, version, ec.limit, ec.batch_size, max_new_tokens=ec.max_new_tokens,
                         dtype=ec.dtype, device=ec.device, samples=ec.samples,
                         trust_remote_code=model_cfg.trust_remote_code)
            _log(f"eval {name}: {100 * r['accuracy']:.1f}% of {r['n']} test rows ({r['seconds']:.0f} s)")
            results.append(r)
        seconds["eval"] = time.monotonic() - t0
        results.append(majority_baseline(store, version, ec.limit))  # the answer prior, no image needed
        names = [*checkpoints, "majority"]
        (folder / "eval.json").write_text(json.dumps(dict(zip(names, results)), indent=2) + "\n")
        bar_chart(results, folder / "eval.png", labels=names,
                  title=f"{run.name}: held-out greedy accuracy ({results[0]['n']} rows of {store.name} v{version})")
        summary["eval"] = {name: {k: r[k] for k in ("model", "n", "accuracy", "format_ok")} |
                           {"per_task": {t: v["accuracy"] for t, v in r["per_task"].items()}}
                           for name, r in zip(names, results)}
    curves = plot_run_curves(folder)
    seconds["total"] = time.monotonic() - t_start
    summary["minutes"] = {k: round(v / 60, 2) for k, v in seconds.items()}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")

    print()
    if results:
        print(table(results, labels=names))
        print()
    print("minutes: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()))
    written = [folder / "summary.json"] + ([folder / "eval.png"] if results else []) + ([curves] if curves else [])
    print("wrote " + ", ".join(map(str, written)))
    return 0


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
    if grpo:
        steps = [r["step"] for r in grpo]
        axes[1].plot(steps, [r["reward"] for r in grpo], label="reward (weighted)")
        for key in sorted({k for r in grpo for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
            axes[1].plot(steps, [r.get(key) for r in grpo], label=key.split("/")[1], alpha=0.7)
        axes[1].legend(fontsize=7)
    axes[1].set(xlabel="step", ylabel="mean reward", title="GRPO")
    fig.tight_layout()
    out = folder / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    import warnings

    # transformers 5.23 warns about its own deprecated name once per GRPO step; it says nothing to users
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    ap = argparse.ArgumentParser(prog="sightline train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", metavar="{tiny-model,sft,grpo,all}")
    helps = {"tiny-model": "build the tiny local Qwen2-VL (model + tokenizer + processor)",
             "sft": "SFT cold start on the sft table", "grpo": "GRPO on the rl table with a prompt sampler",
             "all": "tiny model -> SFT -> difficulty -> GRPO -> eval -> summary"}
    for name, h in helps.items():
        p = sub.add_parser(name, help=h, description=h)
        p.add_argument("--config", default=None, help=f"YAML recipe (default {DEFAULT_CONFIG} when present)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one recipe value (repeatable), e.g. --set sft.max_steps=50")
        if name == "tiny-model":
            p.add_argument("--out", default=None, help="folder to write (default: the recipe's model.path)")
    args = ap.parse_args(argv)
    if not args.command:
        ap.print_help()
        return 2
    config = args.config
    if config is None and Path(DEFAULT_CONFIG).is_file():
        config = DEFAULT_CONFIG
    cfg = load_config(config, args.overrides)
    _set_threads(cfg)
    if args.command == "tiny-model":
        return cmd_tiny_model(cfg, args.out)
    if args.command == "sft":
        return cmd_sft(cfg)
    if args.command == "grpo":
        return cmd_grpo(cfg)
    return cmd_all(cfg)


if __name__ == "__main__":  # `accelerate launch -m pipelines.train_cmd sft ...`: errors print as one line
    import sys

    from pipelines.cli import main as sightline

    sys.exit(sightline(["train", *sys.argv[1:]]))
