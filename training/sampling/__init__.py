"""Prompt samplers for GRPO: which prompt ids get the next round of rollouts.

A GRPO group whose G rewards are all equal has zero advantage and teaches nothing, so a
sampler that steers the rollout budget towards prompts with mixed outcomes buys more
gradient per rollout. Four samplers share one interface, driven outside any trainer:

    s = make_sampler("vade", ids, seed=0, prior_counts={"q17": (3, 8)})
    batch = s.next_batch(32)                      # 32 distinct ids
    s.update({"q17": [1.0, 0.0, ...]}, completions={"q17": ["...", ...]})
    json.dump(s.state_dict(), f)                  # next to the checkpoint; load_state_dict on resume

- ``uniform``: epoch-style shuffling, the baseline (what TRL's ``RepeatSampler`` does).
- ``vade``: Thompson sampling on Beta posteriors with two-scale decay (Hu et al., 2025).
- ``vas``: Variance-Aware Sampling, VPS-weighted plus uniform mix (Leng et al., 2025, MMR1).
- ``mixed``: top B by the posterior chance that the next group of G is mixed,
  E[1 - p^G - (1 - p)^G] under VADE's decayed Beta posteriors (``mixed.py``).

Correctness: a reward ``> 0.5`` counts as correct (``CORRECT_THRESHOLD``), so a 0/1 verifier
reward works as is and a reward with a small format bonus on top still reads right.

Determinism across ranks: ids are sorted on entry and every per-id loop walks sorted ids,
so a sampler depends only on (set of ids, seed, params, sequence of updates), never on dict
or set order. Seed every rank the same and feed it the all-gathered results.

TRL hook: ``GRPOTrainer`` buffers generations for ``steps_per_generation`` steps, so the
results for a batch may arrive after later batches were drawn. That is allowed: ``update``
takes whatever groups arrived; for ``vade`` and ``mixed`` "selected" means "present in this
update"; ``mixed`` also puts ids drawn but not yet updated last in the next draws.

No torch or TRL import here: benchmarks and tests drive the samplers with plain numpy.
"""

from __future__ import annotations

from training.sampling.base import CORRECT_THRESHOLD, STATE_VERSION, PromptSampler
from training.sampling.metrics import effective_group_ratio, self_bleu_diversity
from training.sampling.mixed import MixedGroupSampler
from training.sampling.uniform import UniformSampler
from training.sampling.vade import VadeSampler
from training.sampling.vas import VasSampler

__all__ = ["CORRECT_THRESHOLD", "SAMPLERS", "STATE_VERSION", "MixedGroupSampler", "PromptSampler", "UniformSampler",
           "VadeSampler", "VasSampler", "effective_group_ratio", "make_sampler", "self_bleu_diversity"]

SAMPLERS = {"uniform": UniformSampler, "vade": VadeSampler, "vas": VasSampler, "mixed": MixedGroupSampler}
_COMMON_PARAMS = ("batch_size", "window")


def make_sampler(name: str, ids: list[str], *, seed: int = 0,
                 prior_counts: dict[str, tuple[int, int]] | None = None, **params) -> PromptSampler:
    """Build a sampler by name.

    ``prior_counts`` maps id -> (n_correct, n_rollouts), e.g. from a difficulty pass.
    ``params``: ``batch_size`` (default for ``next_batch``, checked against len(ids)),
    ``window`` (batches in the selection-entropy window, 50), plus the sampler's own:
    vade ``l1``, ``l2``; vas ``alpha``, ``beta``, ``lam``, ``refresh_every``, ``unseen_pass_rate``;
    mixed ``l1``, ``l2``, ``group_size``, ``score`` (expected | thompson), ``max_lag``.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}")
    cls = SAMPLERS[name]
    unknown = sorted(set(params) - set(cls.PARAMS) - set(_COMMON_PARAMS))
    if unknown:
        accepted = ", ".join(cls.PARAMS + _COMMON_PARAMS)
        raise ValueError(f"unknown params {unknown} for sampler {name!r}; accepted: {accepted}")
    return cls(ids, seed=seed, prior_counts=prior_counts, **params)
