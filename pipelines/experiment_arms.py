"""The arms of ``sightline experiment`` for one seed: what each trains (through the training stages' own
``run`` functions), how it is scored, and the record it leaves in ``<out>/seed<k>/arms/<arm>.json``.

``exp`` below is a ``pipelines.experiment.ExperimentRecipe`` (its ``folder``, ``train_config``,
``overrides``, ``grpo_checkpoints``, ``val_limit`` and ``test_limit`` are read). A record's file is
written last, atomically: its presence marks the arm done, so a re-run skips it. Skipped arms (an
unknown sampler, no GRPO minutes to match) leave no file and are re-tried on the next run.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from pipelines.loop import evaluate_checkpoint as _eval, LoopRecipe, Round, round_recipe, run_round
from curation.store.versions import Store
from training.sampling import SAMPLERS


def _log(msg: str) -> None:
    print(f"[experiment] {msg}", flush=True)


# ---------------------------------------------------------------------------- the training stages' own API


def train_recipe(exp, seed: int, extra: list[str] = ()):
    """One seed's train recipe: the file, the experiment's overrides, the seed's folder, then ``extra``."""
    from training.recipe import load_train_recipe

    seed_dir = exp.folder / f"seed{seed}"
    return load_train_recipe(exp.train_config, [*exp.overrides, f"run.seed={seed}", f"run.out_dir={seed_dir}",
                                                *extra])


def grpo_recipe(exp, seed: int, sampler: str):
    """One GRPO arm's train recipe: its sampler, its own folder, a checkpoint at each val curve point."""
    base = train_recipe(exp, seed)
    every = max(1, int(base.grpo.max_steps) // (exp.grpo_checkpoints + 1)) if exp.grpo_checkpoints else 0
    # every checkpoint kept: each is a point of the val curve (and the newest one is GRPO's resume point)
    saves = [f"grpo.save_steps={every or base.grpo.max_steps}", "grpo.save_total_limit=null"]
    out = exp.folder / f"seed{seed}" / f"grpo_{sampler}"
    return train_recipe(exp, seed, [f"grpo.sampler={sampler}", f"grpo.output_dir={out}", *saves])


def _base_model(recipe) -> str:
    """The starting checkpoint (the tiny model is built there first when absent and allowed)."""
    from pipelines.train_cmd import ensure_model

    return ensure_model(recipe)[0]


def _train_sft(recipe, model_path: str, version: int) -> dict:
    from training.sft import run

    return run(recipe.sft, dataclasses.replace(recipe.model, path=model_path), recipe.run.data, version)


def _train_grpo(recipe, model_path: str, version: int) -> dict:
    from training.grpo import run  # GRPOTrainer: torch, transformers, trl

    return run(recipe.grpo, dataclasses.replace(recipe.model, path=model_path), recipe.run.data, version,
               judge=recipe.judge)


def _score_difficulty(recipe, version: int, model_path: str) -> int:
    from pipelines.train_cmd import score_difficulty

    return score_difficulty(recipe, version, model_path)


# ---------------------------------------------------------------------------- evaluation


def has_rows(store, version: int, table: str) -> bool:
    return sum(e["rows"] for e in store.manifest(version)["files"].get(table, [])) > 0


# ---------------------------------------------------------------------------- arms


class Seed:
    """One seed's folder and the state its arms share: the SFT checkpoint and the difficulty version."""

    def __init__(self, exp, seed: int, version: int, val: bool):
        self.exp, self.seed, self.version, self.val = exp, seed, version, val
        self.dir = exp.folder / f"seed{seed}"
        self.recipe = train_recipe(exp, seed)

    def arm_file(self, arm: str) -> Path:
        return self.dir / "arms" / f"{arm}.json"

    def record(self, arm: str, **values: Any) -> dict:
        rec = {"arm": arm, "seed": self.seed, **values}
        path = self.arm_file(arm)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=2, default=str) + "\n")
        tmp.replace(path)  # the file's presence marks the arm done
        return rec

    def val_point(self, path: str, **where: Any) -> dict | None:
        if not self.val:
            return None
        r = _eval(self.recipe, path, self.version, "val", self.exp.val_limit, probes=False)
        return {**where, "val_accuracy": r["accuracy"], "val_n": r["n"]}

    def sft(self) -> dict:
        """The shared SFT checkpoint (trained once per seed) with its val score: the curves' first point."""
        done = self.dir / "sft" / "sft_state.json"
        if done.is_file():
            return json.loads(done.read_text())
        base = _base_model(self.recipe)
        _log(f"seed {self.seed}: SFT")
        result = _train_sft(self.recipe, base, self.version)
        state = {"result": result, "model": result["model"],
                 "minutes": _train_minutes(result, self.dir / "sft"),
                 "val": self.val_point(result["model"], step=0, rollouts=0, minutes=0.0)}
        done.write_text(json.dumps(state, indent=2, default=str) + "\n")
        return state

    def difficulty(self) -> dict:
        """The difficulty version scored by this seed's SFT policy (once per seed), with its cost."""
        done = self.dir / "difficulty.json"
        if done.is_file():
            return json.loads(done.read_text())
        if "difficulty" not in self.recipe.run.stages:
            return {"version": self.version, "rollouts": 0, "minutes": 0.0}

        model = self.sft()["model"]
        _log(f"seed {self.seed}: difficulty pass")
        scored = _score_difficulty(self.recipe, self.version, model)
        counts = Store(self.recipe.run.data).manifest(scored)["stage_counts"]["difficulty"]
        state = {"version": scored, "rollouts": counts["rollouts"], "minutes": counts["seconds"] / 60}
        done.write_text(json.dumps(state, indent=2) + "\n")
        return state


def run_arm(s: Seed, arm: str) -> dict:
    """One arm of one seed: train what it needs, evaluate, write its record (or return a skip)."""
    if s.arm_file(arm).is_file():
        _log(f"seed {s.seed} {arm}: done before, not re-run")
        return json.loads(s.arm_file(arm).read_text())
    t0 = time.monotonic()
    if arm == "base":
        test = _eval(s.recipe, _base_model(s.recipe), s.version, "test", s.exp.test_limit, probes=True)
        rec = s.record(arm, kind="base", test=test, rollouts=0, minutes=0.0, curve=[])
    elif arm == "sft":
        sft = s.sft()
        test = _eval(s.recipe, sft["model"], s.version, "test", s.exp.test_limit, probes=True)
        rec = s.record(arm, kind="sft", test=test, rollouts=0, minutes=0.0, sft_minutes=sft["minutes"],
                       curve=[p for p in [sft["val"]] if p], train=sft["result"])
    elif arm == "sft_continued":
        rec = _sft_continued(s)
    elif arm == "round2":
        rec = _round2(s)
    else:
        rec = _grpo(s, arm.removeprefix("grpo_"))
    if rec.get("status") != "skipped":
        _log(f"seed {s.seed} {arm}: test {100 * rec['test']['accuracy']:.1f}% of {rec['test']['n']}, "
             f"{rec['rollouts']} rollouts, {rec['minutes']:.1f} training min "
             f"({(time.monotonic() - t0) / 60:.1f} min)")
    return rec


def _grpo(s: Seed, sampler: str) -> dict:
    arm = f"grpo_{sampler}"
    if sampler not in SAMPLERS:
        return {"arm": arm, "seed": s.seed, "status": "skipped",
                "reason": f"sampler {sampler!r} unknown to training.sampling.make_sampler "
                          f"(known: {', '.join(SAMPLERS)})"}
    sft = s.sft()
    diff = s.difficulty()
    recipe = grpo_recipe(s.exp, s.seed, sampler)
    out = Path(recipe.grpo.output_dir)
    _log(f"seed {s.seed}: GRPO with the {sampler} sampler")
    result = _train_grpo(recipe, sft["model"], diff["version"])
    charged = sampler != "uniform" and getattr(recipe.grpo, "use_prior", True) and diff["rollouts"] > 0
    extra_r, extra_m = (diff["rollouts"], diff["minutes"]) if charged else (0, 0.0)
    per_round = _completions_per_round(recipe.grpo)
    # the start is the SFT model, after the difficulty pass's rollouts for the arms charged with them
    curve = [{**sft["val"], "rollouts": extra_r, "minutes": extra_m}] if sft["val"] else []
    for step, ckpt in _checkpoints(out, result["steps"]):
        point = s.val_point(str(ckpt), step=step,
                            rollouts=extra_r + _rounds(ckpt, step, recipe.grpo) * per_round,
                            minutes=extra_m + _minutes_at(out / "metrics.jsonl", step))
        curve += [point] if point else []
    rollouts = extra_r + _grpo_rollouts(result, recipe.grpo)
    minutes = extra_m + _train_minutes(result, out)
    end = s.val_point(result["model"], step=result["steps"], rollouts=rollouts, minutes=minutes)
    test = _eval(recipe, result["model"], s.version, "test", s.exp.test_limit, probes=True)
    return s.record(arm, kind="grpo", sampler=sampler, test=test, rollouts=rollouts, minutes=minutes,
                    sft_minutes=sft["minutes"], difficulty_charged=bool(charged),
                    curve=curve + ([end] if end else []), train=result)


def _sft_continued(s: Seed) -> dict:
    grpo = [json.loads(p.read_text()) for p in sorted((s.dir / "arms").glob("grpo_*.json"))]
    minutes = [r["minutes"] for r in grpo if r.get("kind") == "grpo"]
    if not minutes:
        return {"arm": "sft_continued", "seed": s.seed, "status": "skipped",
                "reason": "no GRPO arm finished for this seed: nothing to match the minutes of"}
    budget = sum(minutes) / len(minutes)
    sft = s.sft()
    # at SFT's own pace, so the schedule ends when the budget does
    steps = max(1, round(sft["result"]["steps"] / max(sft["minutes"], 1e-6) * budget))
    # the same traces, the last step kept (no val selection: the GRPO arms keep their last step too)
    recipe = train_recipe(s.exp, s.seed, [*s.exp.continued_overrides, f"sft.output_dir={s.dir / 'sft_continued'}",
                                          f"sft.max_steps={steps}", f"sft.max_minutes={budget}",
                                          "sft.val_every=null", "sft.early_stopping_patience=null"])
    _log(f"seed {s.seed}: SFT continued for {budget:.2f} min (~{steps} steps)")
    result = _train_sft(recipe, sft["model"], s.version)
    spent = _train_minutes(result, s.dir / "sft_continued")
    end = s.val_point(result["model"], step=result["steps"], rollouts=0, minutes=spent)
    test = _eval(recipe, result["model"], s.version, "test", s.exp.test_limit, probes=True)
    return s.record("sft_continued", kind="sft_continued", test=test, rollouts=0, minutes=spent,
                    budget_minutes=budget, sft_minutes=sft["minutes"],
                    curve=[p for p in [sft["val"], end] if p], train=result)


def _grpo_rollouts(result: dict, grpo_cfg) -> int:
    """Completions a GRPO run generated: its own count, else generation rounds x completions per round."""
    rounds = _rounds(Path(result["model"]), result["steps"], grpo_cfg)
    return int(result.get("rollouts") or rounds * _completions_per_round(grpo_cfg))


def _completions_per_round(grpo_cfg) -> int:
    """Completions per generation round (TRL's ``generation_batch_size``, all processes together)."""
    return int(grpo_cfg.generation_batch_size)


def _rounds(folder: Path, step: int, grpo_cfg) -> int:
    """Generation rounds behind a checkpoint: the sampler state's count, else one per num_iterations steps."""
    state = folder / "sampler_state.json"
    if state.is_file():
        return int(json.loads(state.read_text())["rounds_generated"])
    return -(-step // max(1, int(getattr(grpo_cfg, "num_iterations", 1))))


def _checkpoints(folder: Path, final_step: int) -> list[tuple[int, Path]]:
    found = []
    for p in folder.glob("checkpoint-*"):
        tail = p.name.rsplit("-", 1)[-1]
        if tail.isdigit() and 0 < int(tail) < final_step and (p / "config.json").is_file():
            found.append((int(tail), p))
    return sorted(found)


def _train_minutes(result: dict, stage_dir: Path) -> float:
    """Minutes of the training loop (the metrics file's clock, which ``TimeBudget`` also reads), not the
    loading and saving around it; the stage's whole run time when it logged nothing."""
    return _minutes_at(stage_dir / "metrics.jsonl", result["steps"]) or result["seconds"] / 60


def _minutes_at(metrics: Path, step: int) -> float:
    from training.callbacks import read_jsonl

    times = [r["time_s"] for r in read_jsonl(metrics) if r.get("step", 0) <= step and "time_s" in r]
    return (max(times) if times else 0.0) / 60


def _round2(s: Seed) -> dict:
    """Round 2 of ``sightline loop`` from the seed's ``grpo_<round2_from>`` arm: that policy answers the next
    round's prompts (its verified answers are the traces), SFT from it on them, a difficulty pass, GRPO, test.
    Round 1 is the seed's shared SFT, difficulty version and GRPO arm (written into the loop's round-1 state,
    so only its distill step runs); charged: the GRPO arm's rollouts and minutes plus round 2's."""
    source = s.arm_file(f"grpo_{s.exp.round2_from}")
    if not source.is_file():
        return {"arm": "round2", "seed": s.seed, "status": "skipped",
                "reason": f"grpo_{s.exp.round2_from} did not finish for this seed: round 2 starts from its policy"}
    grpo = json.loads(source.read_text())
    loop = LoopRecipe(name=f"{s.exp.name}-seed{s.seed}", train_config=s.exp.train_config,
                      overrides=list(s.exp.overrides), round_overrides=[[], list(s.exp.round2_overrides)],
                      rounds=2, seed=s.seed, next_prompts=s.exp.next_prompts, eval_limit=s.exp.test_limit,
                      out_dir=str(s.dir / "loop"))
    first = Round(loop, 1)
    if "grpo" not in first.state:  # round 1 is the seed's shared checkpoints: nothing of it re-runs
        first.state.update(version=s.version, sft=s.sft()["result"], difficulty=s.difficulty()["version"],
                           grpo=grpo["train"], eval={"grpo": grpo["test"]})
        first.dir.mkdir(parents=True, exist_ok=True)
        first.file.write_text(json.dumps(first.state, indent=2, default=str) + "\n")
    one = run_round(loop, 1, s.version, grpo["train"]["model"], None)
    two = run_round(loop, 2, one["distill"], grpo["train"]["model"], one["next_teacher"])

    store = Store(s.recipe.run.data)
    passes = [store.manifest(v)["stage_counts"]["difficulty"] for v in (one["distill"], two["difficulty"])]
    folder = Round(loop, 2).dir
    rollouts = (grpo["rollouts"] + sum(c["rollouts"] for c in passes)
                + _grpo_rollouts(two["grpo"], round_recipe(loop, 2).grpo))
    minutes = (grpo["minutes"] + sum(c["seconds"] for c in passes) / 60
               + _train_minutes(two["sft"], folder / "sft") + _train_minutes(two["grpo"], folder / "grpo"))
    return s.record("round2", kind="round2", test=two["eval"]["grpo"], rollouts=rollouts, minutes=minutes,
                    sft_minutes=s.sft()["minutes"], round2_sft_test=two["eval"]["sft"],
                    traces=one["next_teacher"], versions={"distill": one["distill"], "difficulty": two["difficulty"]},
                    curve=[], train={"sft": two["sft"], "grpo": two["grpo"]})
