"""VAS: MMR1's Variance-Aware Sampling (Leng et al., 2025, arXiv:2509.21268)."""

from __future__ import annotations

import math

import numpy as np

from training.sampling.base import PromptSampler, check_int, check_number, top_k
from training.sampling.metrics import entropy_nats, self_bleu_diversity


class VasSampler(PromptSampler):
    """VAS: Variance-Aware Sampling from MMR1 (Leng et al., 2025, arXiv:2509.21268, §3).

    Variance Promotion Score  VPS = alpha * P (1 - P) + beta * TDS, where P is the prompt's
    pass rate (Outcome Variance Score P(1-P)) and TDS = 1 - self-BLEU of its completions
    (0 when no texts were given). A batch of B takes floor(lam * B) ids drawn proportional
    to VPS and the rest uniformly from the remaining ids. VPS is recomputed every
    ``refresh_every`` batches (at batches 0, T, 2T, ...) and frozen in between, as in the
    paper's Algorithm 1.

    Defaults follow the paper's main run: alpha = 0.8, beta = 0.2, lam = 0.5 (§6.1).
    Differences, and why:
    - The paper re-rolls N responses for every prompt each T_update steps (T = 351 in the
      main run). Here P and TDS come from the latest online group of each prompt (or
      ``prior_counts``), so a refresh is free and ``refresh_every`` defaults to 14, the
      interval of the paper's VPS-dynamics study and the best of its ablation (Table 4).
    - The paper samples the weighted part with replacement; here without, so ids in a
      batch are distinct (Efraimidis-Spirakis / Gumbel top-k keys). If fewer than
      floor(lam*B) prompts have VPS > 0, the uniform part fills the gap.
    - The paper scores every prompt up front (Algorithm 1, lines 2-5). A prompt with no
      prior and no group yet gets P = ``unseen_pass_rate`` = 0.5, i.e. maximal OVS, so
      unseen prompts are explored first.
    """

    name = "vas"
    PARAMS = ("alpha", "beta", "lam", "refresh_every", "unseen_pass_rate")

    def __init__(self, ids, *, alpha: float = 0.8, beta: float = 0.2, lam: float = 0.5,
                 refresh_every: int = 14, unseen_pass_rate: float = 0.5, **kw):
        self.alpha = check_number("alpha", alpha, 0.0, math.inf)
        self.beta = check_number("beta", beta, 0.0, math.inf)
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ValueError("alpha and beta are both 0: VPS would be 0 for every prompt")
        self.lam = check_number("lam", lam, 0.0, 1.0)
        self.refresh_every = check_int("refresh_every", refresh_every, 1)
        self.unseen_pass_rate = check_number("unseen_pass_rate", unseen_pass_rate, 0.0, 1.0)
        super().__init__(ids, **kw)
        seen = self.prior_total > 0
        self.pass_rate = np.full(len(self.ids), self.unseen_pass_rate)
        self.pass_rate[seen] = self.prior_correct[seen] / self.prior_total[seen]
        self.diversity = np.zeros(len(self.ids))
        self.vps = self._score()
        self._batch = {}

    def _score(self) -> np.ndarray:
        return self.alpha * self.pass_rate * (1.0 - self.pass_rate) + self.beta * self.diversity

    def _choose(self, k):
        if self.step % self.refresh_every == 0:
            self.vps = self._score()
        n_weighted = min(math.floor(self.lam * k), int((self.vps > 0).sum()))
        keys = np.full(len(self.ids), -np.inf)
        positive = self.vps > 0
        keys[positive] = np.log(self.vps[positive]) + self._rng.gumbel(size=int(positive.sum()))
        weighted = top_k(keys, n_weighted)
        rest_pool = np.setdiff1d(np.arange(len(self.ids)), weighted)
        rest = self._rng.choice(rest_pool, size=k - n_weighted, replace=False)
        chosen = np.concatenate([weighted, rest])
        self._batch = {"batch_est_pass_rate": float(self.pass_rate[chosen].mean()),
                       "batch_vps": float(self.vps[chosen].mean()),
                       "weighted_share": n_weighted / k}
        return chosen

    def _observe(self, idx, correct, total, completions):
        self.pass_rate[idx] = correct / total
        for i in idx:
            texts = completions.get(self.ids[i])
            if texts:  # no texts this time: keep the last measured diversity
                self.diversity[i] = self_bleu_diversity(list(texts))

    def _state(self):
        return {"pass_rate": self.pass_rate.tolist(), "diversity": self.diversity.tolist(),
                "vps": self.vps.tolist(), "batch": dict(self._batch)}

    def _load(self, state):
        self.pass_rate = np.asarray(state["pass_rate"], dtype=np.float64)
        self.diversity = np.asarray(state["diversity"], dtype=np.float64)
        self.vps = np.asarray(state["vps"], dtype=np.float64)
        self._batch = {k: float(v) for k, v in state["batch"].items()}

    def _stats(self):
        total = self.vps.sum()
        vps_entropy = entropy_nats(self.vps) if total > 0 else 0.0
        return {**self._batch, "vps_entropy": vps_entropy, "mean_vps": float(self.vps.mean())}
