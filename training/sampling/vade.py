"""VADE: Thompson sampling on decayed Beta posteriors (Hu et al., 2025, arXiv:2511.18902)."""

from __future__ import annotations

import numpy as np

from training.sampling.base import PromptSampler, check_number, top_k


class DecayedBetaSampler(PromptSampler):
    """Per-prompt Beta(a + 1, b + 1) pass-rate posteriors with VADE's two-scale decay (Hu et al., 2025).

    After every update:  selected ids  a <- l1*a + n_correct,  b <- l1*b + n_wrong;
                         the others    a <- l2*a,              b <- l2*b.
    (a, b) start at ``prior_counts``' (n_correct, n_rollouts - n_correct), else 0 (a flat Beta(1, 1)).
    VADE and the mixed-group sampler score prompts differently over these same posteriors.
    """

    def __init__(self, ids, *, l1: float = 0.2, l2: float = 0.999, **kw):
        self.l1 = check_number("l1", l1, 0.0, 1.0, low_open=True)
        self.l2 = check_number("l2", l2, 0.0, 1.0, low_open=True)
        super().__init__(ids, **kw)
        self.a = self.prior_correct.copy()
        self.b = self.prior_total - self.prior_correct

    def posterior_mean(self) -> np.ndarray:
        return (self.a + 1.0) / (self.a + self.b + 2.0)

    def draw_pass_rates(self) -> np.ndarray:
        """One Thompson draw from every posterior."""
        return self._rng.beta(self.a + 1.0, self.b + 1.0)

    def _decay(self, idx, correct, total) -> None:
        unselected = np.ones(len(self.ids), dtype=bool)
        unselected[idx] = False
        self.a[unselected] *= self.l2
        self.b[unselected] *= self.l2
        self.a[idx] = self.l1 * self.a[idx] + correct
        self.b[idx] = self.l1 * self.b[idx] + (total - correct)

    def _posterior_state(self) -> dict:
        return {"a": self.a.tolist(), "b": self.b.tolist()}

    def _load_posterior(self, state: dict) -> None:
        self.a = np.asarray(state["a"], dtype=np.float64)
        self.b = np.asarray(state["b"], dtype=np.float64)


class VadeSampler(DecayedBetaSampler):
    """VADE: Variance-Aware Dynamic sampling via online sample-level difficulty Estimation.

    Hu et al., 2025, arXiv:2511.18902. Each prompt keeps a Beta(a+1, b+1) posterior over
    its pass rate. Per batch, draw p~ from every posterior (Thompson sampling), score the
    information gain p~ (1 - p~)^2 and take the top B. The score is 0 at p = 0 and p = 1 and
    peaks at p = 1/3, so prompts a little harder than even are preferred. After rollouts,
    two-scale decay tracks the moving policy:

        selected (present in ``results``):  a <- l1*a + n_correct,  b <- l1*b + n_wrong
        not selected:                        a <- l2*a,              b <- l2*b

    with l1 = 0.2 (fresh evidence dominates) and l2 = 0.999 (old evidence fades slowly).
    Initial a, b = (n_correct, n_rollouts - n_correct) from ``prior_counts``, else 0 (a flat
    Beta(1, 1)). The text of the paper we could read gave the components (Beta posteriors,
    information-gain Thompson sampler, two-scale prior decay) but not every formula;
    the formulas and defaults above are this project's spec, and the tests check them.
    Feedback lag: two batches drawn before an update are independent Thompson draws, so
    a prompt may appear in both.
    """

    name = "vade"
    PARAMS = ("l1", "l2")

    def __init__(self, ids, **kw):
        super().__init__(ids, **kw)
        self._batch_pass_rate = self._batch_gain = 0.0  # reported once a batch was drawn

    def _choose(self, k):
        p = self.draw_pass_rates()
        gain = p * (1.0 - p) ** 2
        chosen = top_k(gain, k)
        self._batch_gain = float(gain[chosen].mean())
        self._batch_pass_rate = float(self.posterior_mean()[chosen].mean())
        return chosen

    def _observe(self, idx, correct, total, completions):
        self._decay(idx, correct, total)

    def _state(self):
        return {**self._posterior_state(), "batch_pass_rate": self._batch_pass_rate, "batch_gain": self._batch_gain}

    def _load(self, state):
        self._load_posterior(state)
        self._batch_pass_rate = float(state["batch_pass_rate"])
        self._batch_gain = float(state["batch_gain"])

    def _stats(self):
        if self.step == 0:
            return {}
        return {"batch_est_pass_rate": self._batch_pass_rate, "batch_info_gain": self._batch_gain,
                "mean_evidence": float(np.mean(self.a + self.b))}
