"""``sightline loop``: rounds of SFT to its plateau, a policy pass, GRPO, evaluation and re-distillation.

    sightline loop --config configs/loop/mini.yaml [--set rounds=1] [--check]
    make loop

One round (OpenVLThinker's iteration, with the lineage in the versioned store):
  1. SFT on the round's ``sft`` rows (round 1: the recipe's slice, e.g. ``sft.levels=[1]``; later rounds:
     the verified answers the previous round's policy wrote), early stopping on ``val`` accuracy, the
     best checkpoint kept, from the base model (round 1) or the previous round's GRPO policy;
  2. the difficulty pass of the SFT policy over the round's ``rl`` prompts: pass rates (the VADE prior)
     and every verified-correct rollout kept as a trace (rejection sampling), a new version;
  3. GRPO from the SFT checkpoint on every ``rl`` prompt, including the many with no trace;
  4. greedy evaluation of the SFT and GRPO checkpoints on ``test`` with both image probes, per level;
  5. (all rounds but the last) a distill pass in which the GRPO policy is the reasoner, reading the
     image itself, over the next round's prompts (``next_prompts``): its verified answers become the
     next round's SFT traces, written as a new version whose parent is this round's.

What differs from the textbook loop: the policy passes run through the difficulty pipeline
(``pipelines.difficulty``: rollouts -> the verifier -> the curate pipeline's selection rule), so
pass rates and traces come from one set of rollouts, and every row's teacher names the checkpoint
and its content hash. Every step writes its result into ``round<r>/state.json`` before the next
starts: a re-run skips what is done. Outputs: ``<out>/loop.json`` and ``loop.md``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from curation.errors import SightlineError
from curation.loader import load
from curation.store.versions import Store
from pipelines import difficulty
from pipelines.args import add_recipe_arguments, doc_parser
from training.evaluate import evaluate

DEFAULT_CONFIG = "configs/loop/mini.yaml"


def _log(msg: str) -> None:
    print(f"[loop] {msg}", flush=True)


@dataclass
class NextPrompts:
    """Which prompts the GRPO policy answers for the next round's traces."""

    levels: list[int] | None = field(default=None, metadata={
        "help": "only rl prompts of these levels (None: every level)"})
    max_pass_rate: float | None = field(default=None, metadata={
        "help": "only prompts whose pass rate (this round's difficulty pass) is at most this: the ones it "
                "still fails (None: all)"})
    limit: int | None = field(default=None, metadata={"help": "at most this many prompts (None: all)"})
    k: int | None = field(default=None, metadata={"help": "samples per prompt (None: the difficulty pass's k)"})


@dataclass
class LoopRecipe:
    name: str = field(default="mini", metadata={"help": "outputs under runs/loop/<name>"})
    train_config: str = field(default="configs/train/mini.yaml", metadata={"help": "the train recipe every round uses"})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "--set strings applied to every round's train recipe (section.key=value)"})
    round_overrides: list[list[str]] = field(default_factory=list, metadata={
        "help": "per round (first list = round 1), --set strings applied after `overrides`"})
    rounds: int = field(default=2, metadata={"help": "number of rounds"})
    seed: int = field(default=0, metadata={"help": "run.seed of every round"})
    next_prompts: NextPrompts = field(default_factory=NextPrompts, metadata={
        "help": "the prompts the GRPO policy re-distils for the next round"})
    eval_limit: int | None = field(default=1000, metadata={"help": "test rows per evaluation (None: all)"})
    out_dir: str | None = field(default=None, metadata={"help": "output folder (None: runs/loop/<name>)"})

    def __post_init__(self):
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if len(self.round_overrides) > self.rounds:
            raise ValueError(f"round_overrides has {len(self.round_overrides)} lists for {self.rounds} rounds")

    @property
    def folder(self) -> Path:
        return Path(self.out_dir or f"runs/loop/{self.name}")


def load_loop(path: str | Path | None, overrides: list[str] | None = None) -> LoopRecipe:
    return load(LoopRecipe, path, overrides)


# ---------------------------------------------------------------------------- one round


def evaluate_checkpoint(recipe, path: str, version: int, table: str, limit: int | None, probes: bool) -> dict:
    """Greedy accuracy of ``path`` on ``table`` of the recipe's data (the recipe's eval settings), per family
    and level, with the image probes when asked; without the sample answers."""
    cfg = dataclasses.replace(recipe.eval, table=table, limit=limit, image_probes=probes and recipe.eval.image_probes)
    r = evaluate(path, recipe.run.data, version, cfg, progress=False, trust_remote_code=recipe.model.trust_remote_code,
                 judge=recipe.judge)
    r.pop("samples", None)
    return r


def round_recipe(loop: LoopRecipe, r: int, extra: list[str] = ()):
    """Round ``r``'s train recipe (1-based): the file, the loop's overrides, the round's, its folder, ``extra``."""
    from training.recipe import load_train_recipe

    own = loop.round_overrides[r - 1] if r <= len(loop.round_overrides) else []
    return load_train_recipe(loop.train_config, [*loop.overrides, *own, f"run.seed={loop.seed}",
                                                 f"run.out_dir={loop.folder / f'round{r}'}", *extra])


class Round:
    """Round ``r``'s folder and its state file: each step's result is written before the next starts."""

    def __init__(self, loop: LoopRecipe, r: int):
        self.loop, self.r = loop, r
        self.dir = loop.folder / f"round{r}"
        self.file = self.dir / "state.json"
        self.state = json.loads(self.file.read_text()) if self.file.is_file() else {}

    def step(self, name: str, fn):
        if name in self.state:
            _log(f"round {self.r}: {name} done before, not re-run")
            return self.state[name]
        _log(f"round {self.r}: {name}")
        t0 = time.monotonic()
        value = fn()
        self.state[name] = value
        self.state.setdefault("minutes", {})[name] = round((time.monotonic() - t0) / 60, 2)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str) + "\n")
        tmp.replace(self.file)
        return value


def policy_teacher(store, version: int) -> str:
    """The teacher string the policy pass wrote into ``version``'s traces (manifest ``teachers.policy``)."""
    rec = (store.manifest(version).get("teachers") or {}).get("policy") or {}
    teacher = rec.get("teacher") or rec.get("id")
    if not teacher:
        raise SightlineError(f"{store.root} v{version:04d} records no policy teacher: was it written by a policy pass?")
    return teacher


def run_round(loop: LoopRecipe, r: int, version: int, start_model: str, teacher: str | None) -> dict:
    """Round ``r`` on data ``version`` from ``start_model``; ``teacher`` selects the previous round's traces."""
    from pipelines.train_cmd import score_difficulty
    from training.grpo import run as run_grpo
    from training.sft import run as run_sft

    rd = Round(loop, r)
    recipe = round_recipe(loop, r, [f"sft.teachers=[{json.dumps(teacher)}]"] if teacher else [])
    store = Store(recipe.run.data)
    rd.state.setdefault("version", version)

    def sft_step() -> dict:
        if teacher and not any(t == teacher for t in store.read_table("sft", version, columns=["teacher"])
                               .column("teacher").to_pylist()):
            _log(f"round {r}: the previous policy wrote no verified answer: SFT skipped, GRPO starts from it")
            return {"skipped": f"no sft rows by {teacher} in v{version:04d}", "model": start_model, "rows": 0}
        return run_sft(recipe.sft, dataclasses.replace(recipe.model, path=start_model), recipe.run.data, version)

    sft = rd.step("sft", sft_step)
    scored = rd.step("difficulty", lambda: score_difficulty(
        dataclasses.replace(recipe, difficulty=dataclasses.replace(recipe.difficulty, round=r)), version,
        sft["model"]))
    grpo = rd.step("grpo", lambda: run_grpo(recipe.grpo, dataclasses.replace(recipe.model, path=sft["model"]),
                                            recipe.run.data, scored, judge=recipe.judge))
    rd.step("eval", lambda: {name: evaluate_checkpoint(recipe, path, version, "test", loop.eval_limit, probes=True)
                             for name, path in (("sft", sft["model"]), ("grpo", grpo["model"]))})
    if r < loop.rounds:
        nxt = loop.next_prompts
        cfg = dataclasses.replace(recipe.difficulty, model=grpo["model"], round=r + 1, levels=nxt.levels,
                                  max_pass_rate=nxt.max_pass_rate, limit=nxt.limit,
                                  k=nxt.k or recipe.difficulty.k)
        distilled = rd.step("distill", lambda: difficulty.run(recipe.run.data, scored, cfg))
        rd.state["next_teacher"] = policy_teacher(store, distilled)
    rd.file.write_text(json.dumps(rd.state, indent=2, default=str) + "\n")
    return rd.state


def run_loop(loop: LoopRecipe) -> dict:
    from pipelines.train_cmd import curated_version, ensure_model

    first = round_recipe(loop, 1)
    for r in range(1, loop.rounds + 1):  # every round's recipe checked before anything runs
        round_recipe(loop, r)
    store = Store(first.run.data)
    version = curated_version(store, first.run.version)
    model, _ = ensure_model(first)
    teacher = None
    rounds = []
    for r in range(1, loop.rounds + 1):
        state = run_round(loop, r, version, model, teacher)
        rounds.append(state)
        model = state["grpo"]["model"]
        version, teacher = state.get("distill"), state.get("next_teacher")
    results = {"name": loop.name, "data": str(store.root), "rounds": rounds}
    loop.folder.mkdir(parents=True, exist_ok=True)
    (loop.folder / "loop.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (loop.folder / "loop.md").write_text(markdown(results))
    return results


# ---------------------------------------------------------------------------- report


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown(results: dict) -> str:
    """One row per round and checkpoint: test accuracy, the image probes, per level, the round's data."""
    levels = sorted({lv for s in results["rounds"] for e in s.get("eval", {}).values()
                     for lv in e.get("per_level", {})})
    head = ("| round | model | test acc % | blank % | another row's image % | "
            + " | ".join(f"level {lv} %" for lv in levels) + " | SFT plateau step | data version |")
    lines = [f"# Loop `{results['name']}` on {results['data']}", "", head,
             "|" + "---|" * (7 + len(levels))]
    for i, s in enumerate(results["rounds"], 1):
        es = (s.get("sft") or {}).get("early_stopping") or {}
        for name, e in s.get("eval", {}).items():
            probes = e.get("probes", {})
            cells = [_pct(e.get("per_level", {}).get(lv, {}).get("accuracy")) for lv in levels]
            lines.append(f"| {i} | {name} | {_pct(e['accuracy'])} | {_pct(probes.get('blank', {}).get('accuracy'))} | "
                         f"{_pct(probes.get('swapped', {}).get('accuracy'))} | " + " | ".join(cells)
                         + f" | {es.get('plateau_step', '-') if name == 'sft' else ''} | v{s['version']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = doc_parser("sightline loop", __doc__)
    add_recipe_arguments(ap, DEFAULT_CONFIG, "loop", "rounds=1")
    ap.add_argument("--check", action="store_true", help="load and check every round's recipe, run nothing")
    args = ap.parse_args(argv)
    loop = load_loop(args.config, args.overrides)
    if args.check:
        for r in range(1, loop.rounds + 1):
            rec = round_recipe(loop, r)
            traces = "the previous round's policy" if r > 1 else f"levels {rec.sft.levels or 'all'}"
            print(f"round {r}: SFT on {traces}, val every {rec.sft.val_every} steps, patience "
                  f"{rec.sft.early_stopping_patience}; GRPO {rec.grpo.sampler} {rec.grpo.max_steps} steps; "
                  f"outputs {loop.folder / f'round{r}'}")
        return 0
    t0 = time.monotonic()
    run_loop(loop)
    print((loop.folder / "loop.md").read_text())
    _log(f"{(time.monotonic() - t0) / 60:.1f} min; wrote {loop.folder / 'loop.json'}, {loop.folder / 'loop.md'}")
    return 0
