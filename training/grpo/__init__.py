"""GRPO on TRL's GRPOTrainer, with the prompt sampler (uniform | VADE | VAS | mixed) choosing each round's prompts.

Textbook GRPO (Shao et al., 2024, DeepSeekMath) draws a batch of prompts uniformly, samples
G completions per prompt, and normalises each reward against its group. A group whose G
rewards are all equal has zero advantage and teaches nothing; on a policy that already
solves (or never solves) a prompt, most groups are such. What differs here:

- The prompts of every generation round come from ``training.sampling``: ``uniform``
  (epoch shuffling, what TRL's ``RepeatSampler`` does), ``vade`` (Thompson sampling on Beta
  posteriors, Hu et al., 2025) or ``vas`` (variance-aware sampling, Leng et al., 2025), and
  the rewards flow back into it (``trainer_hook``). The sampler's Beta counts start from the
  shard's ``n_correct / n_rollouts`` (the difficulty pipeline). Rounds are drawn one ahead
  (the dataloader prefetches), so a round's rewards reach the sampler one round late.
- Logged per step into ``metrics.jsonl``, TensorBoard and ``curves.png`` (``curves``): TRL's
  ``reward``, ``rewards/<name>/mean``, ``kl`` (beta > 0), ``entropy``, ``clip_ratio/*``, and the
  hook's ``sampler/effective_group_ratio`` (share of mixed groups), ``sampler/pass_rate``,
  ``sampler/selection_entropy`` and the sampler's own statistics.
- Resume after kill -9 (``resume``): each checkpoint holds ``sampler_state.json``; ``run``
  resumes from the newest complete checkpoint with that state, replays the pending rounds, and
  truncates the metrics file back to the checkpoint's step so no step is logged twice.
- The config is TRL's ``GRPOConfig`` with Sightline's fields added (``config``): recipes use
  TRL's names (``per_device_train_batch_size``, ``num_generations``, ``beta``, ...).

Modules: ``config`` (GRPOStageConfig), ``trainer_hook`` (sampler -> RepeatSampler replacement),
``resume`` (checkpoints and sampler state), ``curves`` (the plots), ``train`` (``build_trainer``, ``run``).

One CPU (the mini recipe: a tiny Qwen2-VL from the SFT checkpoint, the latest data version):
    sightline train grpo --config configs/train/mini.yaml [--set grpo.sampler=vas]
8 GPUs (a real Qwen2.5-VL, vLLM rollouts colocated on the training GPUs; ZeRO-3, or FSDP2
with --config_file configs/accelerate/fsdp.yaml):
    accelerate launch --config_file configs/accelerate/zero3.yaml -m pipelines.train_cmd grpo \\
        --config configs/train/qwen2_5_vl_7b.yaml
    (rollouts on a separate vLLM server instead: `trl vllm-serve --model PATH` on its own GPUs and
     `vllm_mode: server` under grpo in the recipe. A killed run resumes on the same command.)
"""


def __getattr__(name: str):
    """``from training.grpo import run`` (or ``build_trainer``) without importing GRPOTrainer for the config alone."""
    if name in ("run", "build_trainer"):
        from training.grpo import train

        return getattr(train, name)
    raise AttributeError(f"module 'training.grpo' has no attribute {name!r}")
