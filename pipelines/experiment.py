"""``sightline experiment``: the miniature's controlled comparison, several seeds, one curated version.

    sightline experiment --config configs/experiment/mini.yaml [--set seeds=[0]] [--set arms=[base,sft]]
    make science

Arms (per seed, from one curated data version pinned at the first run):
    base           the starting checkpoint, evaluated as is (deterministic: the same for every seed)
    sft            SFT cold start on the sft table; its checkpoint is shared by the seed's other arms
    grpo_<sampler> SFT + GRPO with that prompt sampler (uniform, vade, vas, mixed, ...); an arm whose
                   sampler ``training.sampling.make_sampler`` does not know is reported as skipped
    sft_continued  SFT resumed from the SFT checkpoint for the mean wall-clock minutes the seed's GRPO
                   arms took (same schedule family, a fresh schedule over steps estimated from SFT's speed)

Every arm keeps a wall-clock guard (the train recipe's ``sft.max_minutes`` / ``grpo.max_minutes``, and
the GRPO minutes for ``sft_continued``). Selection hygiene: GRPO checkpoints along the way are scored on
``val`` (never ``test``); ``test`` is read once per arm, at the end, with the image probes. Resumable:
an arm whose ``seed<k>/arms/<arm>.json`` exists is not re-run, and a killed GRPO run resumes itself.

Writes ``<out_dir>/results.json``, ``results.md`` (mean +- standard error over seeds, overall, image
probes and per family, rollouts and minutes per arm) and ``curves.png`` (``pipelines.experiment_report``).
This follows the controlled comparisons of the papers the project copies (cold start vs RL vs both,
Vision-R1 / VLAA-Thinking; sampler vs uniform at equal rollouts, VADE / MMR1), at CPU scale.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from curation.errors import SightlineError
from pipelines.experiment_arms import Seed, grpo_recipe, has_rows, run_arm, train_recipe
from pipelines.loop import NextPrompts
from pipelines.args import add_recipe_arguments, doc_parser
from curation.loader import load, to_dict
from curation.store.versions import Store
from pipelines import experiment_report as report
from training.evaluate import majority_baseline
from training.sampling import SAMPLERS

DEFAULT_CONFIG = "configs/experiment/mini.yaml"
FIXED_ARMS = ("base", "sft", "sft_continued", "round2")


@dataclass
class ExperimentRecipe:
    name: str = field(default="mini", metadata={
        "help": "experiment name: outputs under runs/experiments/<name>"})
    train_config: str = field(default="configs/train/mini.yaml", metadata={
        "help": "the train recipe every arm uses"})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "--set strings applied to the train recipe (section.key=value), before the arm's own"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={
        "help": "run.seed of each repetition"})
    arms: list[str] = field(default_factory=lambda: ["base", "sft", "grpo_uniform", "grpo_vade", "grpo_mixed",
                                                     "sft_continued"],
                            metadata={"help": "base, sft, grpo_<sampler>, sft_continued"})
    grpo_checkpoints: int = field(default=3, metadata={
        "help": "GRPO checkpoints scored on val along the way (besides the start and the end)"})
    val_limit: int | None = field(default=300, metadata={"help": "val rows per curve point (None: all)"})
    test_limit: int | None = field(default=None, metadata={
        "help": "test rows for each arm's final score (None: all)"})
    out_dir: str | None = field(default=None, metadata={
        "help": "output folder (None: runs/experiments/<name>)"})
    continued_overrides: list[str] = field(default_factory=lambda: [
        "sft.learning_rate=3e-4", "sft.lr_scheduler_type=constant", "sft.warmup_steps=0"], metadata={
        "help": "--set strings of the sft_continued arm: SFT resumed gently from the cold start (docs/science.md: "
                "a fresh warm-up at the cold start's lr undoes it)"})
    round2_from: str = field(default="uniform", metadata={
        "help": "round2 arm: the sampler of the GRPO arm whose policy re-distils (its arm must be in `arms`, before round2)"})
    round2_overrides: list[str] = field(default_factory=list, metadata={
        "help": "--set strings for round 2's train recipe (e.g. its SFT learning rate, sft.levels=null)"})
    next_prompts: NextPrompts = field(default_factory=NextPrompts, metadata={
        "help": "round2 arm: the prompts the round-1 GRPO policy answers for round 2's traces"})

    def __post_init__(self):
        bad = [a for a in self.arms if a not in FIXED_ARMS and not (a.startswith("grpo_") and len(a) > 5)]
        if bad or len(set(self.arms)) != len(self.arms):
            raise ValueError("arms must be distinct names among base, sft, sft_continued, grpo_<sampler>; "
                             f"got {bad or self.arms}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if self.grpo_checkpoints < 0:
            raise ValueError("grpo_checkpoints must be >= 0")
        if "round2" in self.arms:
            source = f"grpo_{self.round2_from}"
            if source not in self.arms or self.arms.index(source) > self.arms.index("round2"):
                raise ValueError(f"the round2 arm continues from {source}: list that arm before round2")

    @property
    def folder(self) -> Path:
        return Path(self.out_dir or f"runs/experiments/{self.name}")


def _log(msg: str) -> None:
    print(f"[experiment] {msg}", flush=True)


# ---------------------------------------------------------------------------- the experiment


def pin_version(exp: ExperimentRecipe) -> int:
    """The curated version every arm uses: resolved at the first run, then read back from ``experiment.json``
    (a later curate must not slip a new version under half-finished seeds)."""
    from pipelines.train_cmd import curated_version

    run = train_recipe(exp, exp.seeds[0]).run
    store = Store(run.data)
    state_file = exp.folder / "experiment.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        asked = None if run.version == "latest" else curated_version(store, run.version)
        if state["data"] != str(store.root) or asked not in (None, state["version"]):
            raise SightlineError(f"{exp.folder} holds arms trained on {state['data']} v{state['version']}; "
                                 f"the recipe names {store.root} v{run.version}: use another name or out_dir")
        return int(state["version"])
    state = {"data": str(store.root), "version": curated_version(store, run.version)}
    exp.folder.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    return state["version"]


def check(exp: ExperimentRecipe) -> list[str]:
    """Load every arm's train recipe (a key, value, sampler-parameter or guard mistake fails here, before any
    run); return the plan, one line per arm."""
    recipe = train_recipe(exp, exp.seeds[0])
    needed = {"sft": any(a != "base" for a in exp.arms), "grpo": any(a.startswith("grpo_") for a in exp.arms)}
    missing = [f"{k}.max_minutes" for k, used in needed.items()
               if used and getattr(recipe, k).max_minutes is None]
    if missing:
        raise SightlineError(f"every arm keeps a wall-clock guard: set {', '.join(missing)} "
                             "in the train recipe")
    plan = []
    for arm in exp.arms:
        sampler = arm.removeprefix("grpo_") if arm.startswith("grpo_") else None
        if sampler is None:
            sft = recipe.sft
            plan.append(f"{arm}: " + {"base": f"{recipe.model.path} as is",
                                      "sft": f"SFT, {sft.max_steps} steps, guard {sft.max_minutes} min",
                                      "sft_continued": "SFT resumed for the GRPO arms' mean minutes",
                                      "round2": f"loop round 2 from grpo_{exp.round2_from}: its policy's verified "
                                                "answers -> SFT -> difficulty -> GRPO"}[arm])
        elif sampler not in SAMPLERS:
            plan.append(f"{arm}: skipped (sampler {sampler!r} unknown; known: {', '.join(SAMPLERS)})")
        else:
            g = grpo_recipe(exp, exp.seeds[0], sampler).grpo
            plan.append(f"{arm}: GRPO from SFT, {g.max_steps} steps x {g.generation_batch_size} completions, "
                        f"checkpoint every {g.save_steps:g} steps, guard {g.max_minutes} min")
    return plan


def run_experiment(exp: ExperimentRecipe, command: str = "") -> dict:
    """Every (seed, arm), then the aggregate files; returns the results dict written to results.json."""
    for line in check(exp):
        _log(line)
    version = pin_version(exp)
    data = train_recipe(exp, exp.seeds[0]).run.data
    store = Store(data)
    val = has_rows(store, version, "val")
    if not val:
        _log(f"{data} v{version} has no val rows: no accuracy along the way, only each arm's final test "
             "score")
    _log(f"{exp.name}: {data} v{version}, seeds {exp.seeds}, arms {exp.arms}, outputs in {exp.folder}")
    records: dict[str, list[dict]] = {a: [] for a in exp.arms}
    for seed in exp.seeds:
        s = Seed(exp, seed, version, val)
        _set_threads(s.recipe)
        for arm in exp.arms:
            records[arm].append(run_arm(s, arm))
    arms = {}
    for arm, recs in records.items():
        done = [r for r in recs if r.get("status") != "skipped"]
        arms[arm] = ({"status": "done", **report.summarize_arm(done)} if done else
                     {"status": "skipped", "reason": recs[0].get("reason") if recs else "no seeds"})
        # every trained arm against the cold start; RL arms against more SFT for the same minutes; round 2
        # against the GRPO arm it continues from
        refs = ["sft"] + (["sft_continued"] if arm.startswith("grpo_") or arm == "round2" else []) + (
            [f"grpo_{exp.round2_from}"] if arm == "round2" else [])
        for ref in refs:
            if done and ref in records and ref != arm:
                arms[arm][f"vs_{ref}"] = report.paired_delta(done, records[ref])
        if done and "sft" in records and arm != "sft":
            arms[arm]["level_vs_sft"] = report.paired_level_deltas(done, records["sft"])
    majority = majority_baseline(store, version, exp.test_limit)
    results = {"name": exp.name, "recipe": to_dict(exp), "data": data, "version": version, "seeds": exp.seeds,
               "sft_levels": train_recipe(exp, exp.seeds[0]).sft.levels,
               "val": val, "test_rows": majority["n"], "command": command,
               "plot": str(exp.folder / "curves.png"),
               "arms": arms, "majority": majority,
               "records": {a: [_slim(r) for r in recs] for a, recs in records.items()}}
    (exp.folder / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (exp.folder / "results.md").write_text(report.markdown(results))
    report.plot(results, exp.folder / "curves.png")
    return results


def _slim(rec: dict) -> dict:
    """A record without the long per-row parts (the arm files keep everything)."""
    return {k: v for k, v in rec.items() if k != "train"}


def _set_threads(recipe) -> None:
    if getattr(recipe.run, "threads", None):
        import torch

        torch.set_num_threads(recipe.run.threads)


# ---------------------------------------------------------------------------- command line


def load_experiment(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentRecipe:
    """The experiment recipe at ``path`` with ``key=value`` overrides, checked before any run."""
    return load(ExperimentRecipe, path, overrides)


def main(argv: list[str] | None = None) -> int:
    ap = doc_parser("sightline experiment", __doc__)
    add_recipe_arguments(ap, DEFAULT_CONFIG, "experiment", "seeds=[0]")
    ap.add_argument("--check", action="store_true",
                    help="load and check every arm's recipe, print the plan, run nothing")
    args = ap.parse_args(argv)
    exp = load_experiment(args.config, args.overrides)
    if args.check:
        print(f"{exp.name}: seeds {exp.seeds}, outputs in {exp.folder}")
        print("\n".join(f"  {line}" for line in check(exp)))
        return 0
    given = sys.argv[1:] if argv is None else argv
    command = "sightline experiment " + " ".join(shlex.quote(a) for a in given)
    t0 = time.monotonic()
    results = run_experiment(exp, command.strip())
    print()
    print((exp.folder / "results.md").read_text())
    _log(f"{(time.monotonic() - t0) / 60:.1f} min; wrote {exp.folder / 'results.json'}, "
         f"{exp.folder / 'results.md'}, "
         f"{results['plot']}")
    return 0
