"""GRPO on TRL's GRPOTrainer, with the prompt sampler (uniform | VADE | VAS) choosing each round's prompts.

Textbook GRPO (Shao et al., 2024, DeepSeekMath) draws a batch of prompts uniformly, samples
G completions per prompt, and normalises each reward against its group. A group whose G
rewards are all equal has zero advantage and teaches nothing; on a policy that already
solves (or never solves) a prompt, most groups are such. What differs here:

- The prompts of every generation round come from ``training.sampling``: ``uniform``
  (epoch shuffling, what TRL's ``RepeatSampler`` does), ``vade`` (Thompson sampling on Beta
  posteriors, Hu et al., 2025) or ``vas`` (variance-aware sampling, Leng et al., 2025).
  ``GRPOTrainer._get_train_sampler`` is overridden with ``PromptRoundSampler``, which asks the
  sampler for B distinct ids per round and yields their dataset indices exactly as
  ``RepeatSampler`` would (each id ``num_generations`` times in a row, the round repeated
  ``num_iterations * steps_per_generation`` times).
- Feedback: ``GRPOTrainer._calculate_rewards`` is wrapped; after TRL has gathered every
  process's rewards, the (prompt id, weighted reward) pairs of the round are all-gathered and
  fed to ``sampler.update`` on every rank, so all ranks stay seeded and updated identically and
  draw the same ids. The sampler's Beta counts start from the shard's ``n_correct / n_rollouts``
  (the difficulty pipeline). Rounds are drawn one ahead (the dataloader prefetches), so a
  round's rewards reach the sampler one round late.
- Logged per step besides TRL's ``rewards/<name>/mean``: ``sampler/effective_group_ratio``
  (share of groups whose rewards differ), ``sampler/pass_rate`` (rollouts with reward > 0.5
  among the chosen prompts), ``sampler/selection_entropy`` and the sampler's own statistics,
  into ``metrics.jsonl``, TensorBoard and ``curves.png`` under the run folder.
- Resume after kill -9: each checkpoint folder holds ``sampler_state.json`` (sampler state,
  rounds generated, the rounds drawn but not yet trained on); ``run`` resumes from the newest
  complete checkpoint with that state, replays the pending rounds, and truncates the metrics
  file back to the checkpoint's step so no step is logged twice.

One CPU (the mini recipe: a tiny Qwen2-VL from the SFT checkpoint, the latest data version):
    sightline train grpo --config configs/train/mini.yaml [--set grpo.sampler=vas]
8 GPUs (a real Qwen2.5-VL, vLLM rollouts colocated on the training GPUs; ZeRO-3, or FSDP2
with --config_file configs/accelerate/fsdp.yaml):
    accelerate launch --config_file configs/accelerate/zero3.yaml -m pipelines.train_cmd grpo \\
        --config configs/train/qwen2_5_vl_7b.yaml
    (rollouts on a separate vLLM server instead: `trl vllm-serve --model PATH` on its own GPUs and
     `vllm_mode: server` under grpo.trainer in the recipe. A killed run resumes on the same command.)
"""
from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import TrainerCallback
from trl import GRPOTrainer

from curation.errors import SightlineError

SAMPLER_STATE = "sampler_state.json"
REWARDS = ("accuracy", "format", "length")  # training.rewards.reward_functions names

# ---------------------------------------------------------------------------- recipe


@dataclass
class GRPORecipe:
    model: str = field(default="runs/mini/sft/final", metadata={"help": "policy to start from (the SFT checkpoint)"})
    data: str = field(default="data/mini", metadata={"help": "dataset folder data/<name> (the versioned store)"})
    version: str = field(default="latest", metadata={"help": "dataset version: N, vNNNN or latest (the difficulty one)"})
    output_dir: str = field(default="runs/mini/grpo", metadata={"help": "run folder: checkpoints/, metrics.jsonl, tensorboard/, curves.png, final/"})
    limit: int | None = field(default=None, metadata={"help": "use at most this many rl prompts (None: all)"})
    sampler: str = field(default="vade", metadata={"help": "prompt sampler: uniform | vade | vas"})
    sampler_params: dict = field(default_factory=dict, metadata={"help": "sampler parameters (vade: l1, l2; vas: alpha, beta, lam, refresh_every)"})
    use_prior: bool = field(default=True, metadata={"help": "start the sampler from the shard's n_correct / n_rollouts"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    prompts_per_step: int = field(default=8, metadata={"help": "distinct prompts per generation round (B)"})
    num_generations: int = field(default=8, metadata={"help": "completions per prompt (G, the group size)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps (= steps per generation round)"})
    num_iterations: int = field(default=1, metadata={"help": "optimisation passes over each round (mu in the GRPO paper)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (AdamW)"})
    lr_scheduler: str = field(default="constant", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient against the reference policy (0: no reference model)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    max_completion_length: int = field(default=64, metadata={"help": "new tokens per completion"})
    reward_weights: dict = field(default_factory=lambda: {"accuracy": 1.0, "format": 0.1, "length": 0.0},
                                 metadata={"help": "weight per reward (accuracy, format, length); 0 leaves one out"})
    length_stages: Any = field(default=None, metadata={"help": "length reward's limit: tokens, or [[start_step, max_tokens], ...] (Vision-R1 PTST)"})
    length_soft: int = field(default=0, metadata={"help": "length reward: DAPO soft band below the limit (0: hard cut)"})
    use_vllm: bool = field(default=False, metadata={"help": "rollouts with vLLM (GPU; colocated unless trainer.vllm_mode=server)"})
    dtype: str | None = field(default=None, metadata={"help": "weights dtype on load: None (float32), auto, bfloat16"})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU); ~4x slower on CPU, keep False"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (real models on GPU)"})
    use_cpu: bool | None = field(default=None, metadata={"help": "force CPU; None: CPU exactly when no GPU is present"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code shipped in the checkpoint folder"})
    seed: int = field(default=0, metadata={"help": "seed of the sampler (same on every rank), weights and rollouts"})
    logging_steps: int = field(default=1, metadata={"help": "log rewards and sampler statistics every N steps"})
    save_steps: int = field(default=25, metadata={"help": "checkpoint (with sampler_state.json) every N steps; 0: none"})
    save_total_limit: int | None = field(default=2, metadata={"help": "keep at most this many checkpoints"})
    resume: bool = field(default=True, metadata={"help": "resume from the newest complete checkpoint in output_dir"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop training after this many minutes of wall time"})
    trainer: dict = field(default_factory=dict, metadata={"help": "any other GRPOConfig field, passed as is (deepspeed, fsdp, vllm_mode, loss_type, ...)"})


# ---------------------------------------------------------------------------- the sampler hook


class PromptRoundSampler(Sampler[int]):
    """``RepeatSampler``'s index stream with each round's prompts chosen by a Sightline prompt sampler.

    Per round: ``ids = prompt_sampler.next_batch(batch_size)``; then, like RepeatSampler,
    ``for _ in range(repeat_count): for i in ids: yield index(i) mini_repeat_count times``.
    A round is drawn lazily, when the dataloader asks for its first index. ``pending`` are
    rounds drawn before a checkpoint but not yet generated: they are replayed first on resume.
    """

    def __init__(self, prompt_sampler, dataset_ids: list[str], *, mini_repeat_count: int, batch_size: int,
                 repeat_count: int, pending: list[list[str]] | None = None, first_round: int = 0):
        self.prompt_sampler = prompt_sampler
        self.index = {pid: i for i, pid in enumerate(dataset_ids)}
        assert len(self.index) == len(dataset_ids), "rl prompt ids must be unique"
        if batch_size > len(self.index):
            raise SightlineError(f"{batch_size} prompts per round but the dataset has only {len(self.index)}")
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.queue = [list(r) for r in pending or []]
        self.drawn: list[list[str]] = []  # rounds handed out since round number `first_round`
        self.first_round = first_round

    def __len__(self) -> int:  # as RepeatSampler: one epoch = len // batch_size rounds
        return (len(self.index) // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count

    def __iter__(self):
        for _ in range(len(self.index) // self.batch_size):
            ids = self.queue.pop(0) if self.queue else self.prompt_sampler.next_batch(self.batch_size)
            assert len(ids) == self.batch_size and len(set(ids)) == len(ids), "a round needs distinct ids"
            self.drawn.append(list(ids))
            indices = [self.index[pid] for pid in ids]
            for _ in range(self.repeat_count):
                for i in indices:
                    yield from [i] * self.mini_repeat_count

    def pending(self, rounds_generated: int) -> list[list[str]]:
        """Rounds drawn but not generated yet (round numbers >= ``rounds_generated``), then the queue."""
        return [list(r) for r in self.drawn[max(0, rounds_generated - self.first_round):]] + self.queue

    def forget_before(self, round_number: int) -> None:
        cut = max(0, round_number - self.first_round)
        self.drawn, self.first_round = self.drawn[cut:], self.first_round + cut


class SamplerGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose prompts come from ``prompt_sampler`` and whose rewards flow back into it."""

    def __init__(self, *args, prompt_sampler, pending: list[list[str]] | None = None, rounds_generated: int = 0,
                 **kwargs):
        self.prompt_sampler = prompt_sampler
        self.rounds_generated = rounds_generated
        self._pending = pending or []
        self.round_sampler: PromptRoundSampler | None = None
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset=None) -> Sampler:
        dataset = self.train_dataset if dataset is None else dataset
        self.round_sampler = PromptRoundSampler(
            self.prompt_sampler, list(dataset["id"]), mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            pending=self._pending, first_round=self.rounds_generated)
        self._pending = []
        return self.round_sampler

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            self._feed_sampler(inputs, completions, rewards_per_func)
        return rewards_per_func

    def _feed_sampler(self, inputs, completions, rewards_per_func) -> None:
        from accelerate.utils import gather_object

        from training.rewards import completion_text
        from training.sampling import CORRECT_THRESHOLD, effective_group_ratio

        # rewards_per_func is already gathered over processes in process order; gather_object keeps that order.
        ids = gather_object([x["id"] for x in inputs])
        texts = gather_object([completion_text(c) for c in completions])
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1).tolist()
        assert len(ids) == len(rewards) == len(texts), "ids, rewards and completions are misaligned"
        results: dict[str, list[float]] = defaultdict(list)
        groups: dict[str, list[str]] = defaultdict(list)
        for pid, r, t in zip(ids, rewards, texts):
            results[pid].append(r)
            groups[pid].append(t)
        self.prompt_sampler.update(dict(results), completions=dict(groups))
        self.rounds_generated += 1
        if self.round_sampler is not None:
            self.round_sampler.forget_before(self.rounds_generated)
        metrics = self._metrics["train"]
        metrics["sampler/effective_group_ratio"].append(effective_group_ratio(results))
        passed = [sum(r > CORRECT_THRESHOLD for r in rs) / len(rs) for rs in results.values()]
        metrics["sampler/pass_rate"].append(sum(passed) / len(passed))
        for k, v in self.prompt_sampler.stats().items():
            if k != "step" and not k.startswith("last_"):
                metrics[f"sampler/{k}"].append(float(v))

    def sampler_checkpoint(self) -> dict:
        """The sampler's state plus the rounds drawn but not generated yet (the dataloader runs one ahead).

        A checkpoint taken inside a round (num_iterations or steps_per_generation > 1) counts
        that round as done: a resumed run generates afresh from the next round.
        """
        pending = self.round_sampler.pending(self.rounds_generated) if self.round_sampler else self._pending
        return {"global_step": self.state.global_step, "rounds_generated": self.rounds_generated,
                "pending": pending, "sampler": self.prompt_sampler.state_dict()}


class SamplerStateCallback(TrainerCallback):
    """Writes ``sampler_state.json`` into each checkpoint folder (last, so its presence marks a complete one)."""

    def __init__(self, trainer: SamplerGRPOTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            tmp = folder / (SAMPLER_STATE + ".tmp")
            tmp.write_text(json.dumps(self.trainer.sampler_checkpoint()))
            tmp.replace(folder / SAMPLER_STATE)


class CurvesCallback(TrainerCallback):
    """Redraws ``curves.png`` (reward, effective-group ratio) from the metrics file at each save and at the end."""

    def __init__(self, metrics: Path, out: Path):
        self.metrics, self.out = metrics, out

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_curves(self.metrics, self.out)

    on_train_end = on_save


def plot_curves(metrics: str | Path, out: str | Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.callbacks import read_jsonl

    rows = [r for r in read_jsonl(metrics) if "reward" in r]
    if not rows:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["step"] for r in rows]
    ax1.plot(steps, [r["reward"] for r in rows], label="reward (weighted)")
    for key in sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
        ax1.plot(steps, [r.get(key) for r in rows], label=key.split("/")[1], alpha=0.7)
    ax1.set(xlabel="step", ylabel="mean reward", title="reward")
    ax1.legend(fontsize=7)
    ax2.plot(steps, [r.get("sampler/effective_group_ratio") for r in rows], color="tab:green")
    ax2.set(xlabel="step", ylabel="share of groups", ylim=(-0.02, 1.02), title="effective-group ratio")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------- setup


def grpo_config(recipe: GRPORecipe, *, world_size: int = 1):
    """The TRL ``GRPOConfig`` a recipe stands for (B prompts x G completions per optimizer step)."""
    from trl import GRPOConfig

    completions = recipe.prompts_per_step * recipe.num_generations
    per_device, rest = divmod(completions, world_size * recipe.grad_accum)
    if rest or per_device == 0:
        raise SightlineError(f"prompts_per_step x num_generations = {completions} must divide evenly over "
                             f"{world_size} process(es) x {recipe.grad_accum} accumulation steps")
    use_cpu = (not torch.cuda.is_available()) if recipe.use_cpu is None else recipe.use_cpu
    names = [n for n in REWARDS if recipe.reward_weights.get(n, 0.0)]
    kwargs: dict[str, Any] = {
        "output_dir": str(Path(recipe.output_dir) / "checkpoints"),
        "max_steps": recipe.max_steps,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": recipe.grad_accum,
        "steps_per_generation": recipe.grad_accum,
        "num_generations": recipe.num_generations,
        "num_iterations": recipe.num_iterations,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler,
        "warmup_steps": recipe.warmup_steps,
        "max_grad_norm": recipe.max_grad_norm,
        "beta": recipe.beta,
        "temperature": recipe.temperature,
        "max_completion_length": recipe.max_completion_length,
        "reward_weights": [float(recipe.reward_weights[n]) for n in names],
        "use_vllm": recipe.use_vllm,
        "bf16": recipe.bf16,
        "use_cpu": use_cpu,
        "seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "save_strategy": "steps" if recipe.save_steps else "no",
        "save_steps": recipe.save_steps or 500,
        "save_total_limit": recipe.save_total_limit,
        # The prompt sampler restores its own position: the Trainer must not fast-forward the
        # dataloader (that would draw, and so consume, rounds of a stateful sampler).
        "ignore_data_skip": True,
        "report_to": "none",  # TensorBoard through our callback, into <run>/tensorboard
        "remove_unused_columns": False,
    }
    if recipe.gradient_checkpointing:
        kwargs["gradient_checkpointing"] = True
    kwargs.update(recipe.trainer)
    return GRPOConfig(**kwargs)


def reward_functions(recipe: GRPORecipe) -> list:
    from training.rewards import reward_functions as by_name

    unknown = sorted(set(recipe.reward_weights) - set(REWARDS))
    if unknown:
        raise SightlineError(f"unknown reward(s) {unknown}; known: {', '.join(REWARDS)}")
    names = [n for n in REWARDS if recipe.reward_weights.get(n, 0.0)]
    if not names:
        raise SightlineError("every reward weight is 0: GRPO needs at least one reward")
    if "length" in names and recipe.length_stages is None:
        raise SightlineError("the length reward needs length_stages (a token limit or [[start_step, limit], ...])")
    # TRL's reward_weights scale each function, so the length penalty itself is -1 past the limit.
    return by_name(names, length_stages=recipe.length_stages, length_soft=recipe.length_soft)


def prior_counts(dataset) -> dict[str, tuple[int, int]]:
    """id -> (n_correct, n_rollouts) for the rows the difficulty pipeline scored."""
    cols = dataset.select_columns(["id", "n_correct", "n_rollouts"]).to_dict()
    return {pid: (c, n) for pid, c, n in zip(cols["id"], cols["n_correct"], cols["n_rollouts"])
            if c is not None and n}


def latest_checkpoint(checkpoints: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` that is complete (trainer state and sampler state both written)."""
    folders = sorted(Path(checkpoints).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
                     if p.name.split("-")[-1].isdigit() else -1)
    done = [p for p in folders if (p / "trainer_state.json").is_file() and (p / SAMPLER_STATE).is_file()]
    return done[-1] if done else None


def start_fingerprint(recipe: GRPORecipe) -> dict:
    """What a run starts from: resuming is only right when this is unchanged (a re-run of
    ``train all`` retrains SFT into the same folder and may score a new data version)."""
    from curation.store import Store

    weights = sorted(p for p in Path(recipe.model).glob("*") if p.suffix in (".safetensors", ".bin", ".pt"))
    return {"model": str(Path(recipe.model).resolve()), "data": str(Path(recipe.data).resolve()),
            "version": Store(recipe.data).resolve(recipe.version), "limit": recipe.limit, "sampler": recipe.sampler,
            "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights]}


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric rows logged after ``last_step`` (by a run that died before its next checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the half line a kill -9 can leave
            continue
        if row.get("step", 0) <= last_step:
            kept.append(line + "\n")
    path.write_text("".join(kept))


def build_trainer(recipe: GRPORecipe, *, model=None, processor=None, train_dataset=None, reward_funcs=None,
                  resume_from: Path | None = None) -> SamplerGRPOTrainer:
    """A ``SamplerGRPOTrainer`` for ``recipe``; with ``resume_from``, its sampler is restored from that checkpoint.

    ``reward_funcs`` replaces the recipe's rewards (each then weighs 1).
    """
    from accelerate import PartialState
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    from training.callbacks import JsonlMetrics, TimeBudget
    from training.data import rl_dataset
    from curation.models import load_model_and_processor
    from training.sampling import make_sampler

    out = Path(recipe.output_dir)
    if model is None or processor is None:
        model, processor = load_model_and_processor(recipe.model, dtype=recipe.dtype, for_training=True,
                                                     trust_remote_code=recipe.trust_remote_code)
    # TRL left-pads prompt_ids itself but takes the image-token types from the processor's own
    # padding: right padding misaligns them, silently shifting positions or failing in Qwen2-VL's rope index.
    getattr(processor, "tokenizer", processor).padding_side = "left"
    if train_dataset is None:
        train_dataset = rl_dataset(recipe.data, recipe.version, limit=recipe.limit)
    args = grpo_config(recipe, world_size=PartialState().num_processes)
    if reward_funcs is not None:
        args.reward_weights = None
    sampler = make_sampler(recipe.sampler, list(train_dataset["id"]), seed=recipe.seed,
                           prior_counts=prior_counts(train_dataset) if recipe.use_prior else None,
                           **recipe.sampler_params)
    saved = {"pending": [], "rounds_generated": 0, "global_step": 0}
    if resume_from is not None:
        saved = json.loads((resume_from / SAMPLER_STATE).read_text())
        sampler.load_state_dict(saved["sampler"])
    tb = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=saved["global_step"] + 1)
    trainer = SamplerGRPOTrainer(
        model=model, reward_funcs=reward_funcs or reward_functions(recipe), args=args, train_dataset=train_dataset,
        processing_class=processor, prompt_sampler=sampler, pending=saved["pending"],
        rounds_generated=saved["rounds_generated"],
        callbacks=[JsonlMetrics(out / "metrics.jsonl"), TimeBudget(recipe.max_minutes),
                   TensorBoardCallback(tb_writer=tb), CurvesCallback(out / "metrics.jsonl", out / "curves.png")])
    trainer.add_callback(SamplerStateCallback(trainer))
    return trainer


# ---------------------------------------------------------------------------- run


def run(recipe: GRPORecipe) -> dict:
    """Train (resuming when a checkpoint exists), save ``<output_dir>/final``, return and write ``grpo_result.json``."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    resume_from = latest_checkpoint(checkpoints) if recipe.resume else None
    start = start_fingerprint(recipe)
    started = json.loads((out / "start.json").read_text()) if (out / "start.json").is_file() else None
    if resume_from is not None and started != start:
        print(f"grpo: {checkpoints} started from another model, data version or sampler; starting afresh", flush=True)
        resume_from = None
    if resume_from is None:  # a fresh run starts fresh curves and checkpoints
        for stale in (out / "metrics.jsonl", out / "curves.png"):
            stale.unlink(missing_ok=True)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
        shutil.rmtree(checkpoints, ignore_errors=True)
        (out / "start.json").write_text(json.dumps(start, indent=2) + "\n")
    else:
        truncate_metrics(out / "metrics.jsonl", int(resume_from.name.split("-")[-1]))
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2, default=str) + "\n")
    t0 = time.monotonic()
    trainer = build_trainer(recipe, resume_from=resume_from)
    print(f"grpo: {recipe.model} on {recipe.data} ({len(trainer.train_dataset)} prompts), sampler {recipe.sampler}, "
          f"{recipe.max_steps} steps x {recipe.prompts_per_step} prompts x {recipe.num_generations} completions, "
          f"lr {recipe.learning_rate}" + (f"; resuming from {resume_from}" if resume_from else ""), flush=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = out / "final"
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    (final / SAMPLER_STATE).write_text(json.dumps(trainer.sampler_checkpoint()))
    plot_curves(out / "metrics.jsonl", out / "curves.png")
    logs = [h for h in trainer.state.log_history if "reward" in h]
    result = {
        "model": str(final), "base_model": recipe.model, "data": recipe.data, "version": recipe.version,
        "sampler": recipe.sampler, "prompts": len(trainer.train_dataset), "steps": trainer.state.global_step,
        "resumed_from": str(resume_from) if resume_from else None,
        "first_reward": logs[0]["reward"] if logs else None, "final_reward": logs[-1]["reward"] if logs else None,
        "mean_effective_group_ratio": (sum(h.get("sampler/effective_group_ratio", 0.0) for h in logs) / len(logs)
                                       if logs else None),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out / "grpo_result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"grpo: {result['steps']} steps in {result['seconds'] / 60:.1f} min, reward {result['first_reward']} -> "
          f"{result['final_reward']}; model at {final}", flush=True)
    return result
