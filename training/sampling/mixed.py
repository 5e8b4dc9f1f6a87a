"""Mixed-group sampling: pick the prompts whose next group of G rollouts is most likely mixed."""

from __future__ import annotations

import numpy as np

from training.sampling.base import check_int
from training.sampling.vade import DecayedBetaSampler

SCORES = ("expected", "thompson")


def beta_moment(a: np.ndarray, b: np.ndarray, g: int) -> np.ndarray:
    """E[p^g] for p ~ Beta(a, b): B(a + g, b) / B(a, b) = prod_{j < g} (a + j) / (a + b + j)."""
    j = np.arange(g, dtype=np.float64)
    return np.prod((a[:, None] + j) / (a[:, None] + b[:, None] + j), axis=1)


def expected_mixed_probability(a: np.ndarray, b: np.ndarray, g: int) -> np.ndarray:
    """E[1 - p^g - (1 - p)^g] for p ~ Beta(a, b), in closed form through Beta moments."""
    return 1.0 - beta_moment(a, b, g) - beta_moment(b, a, g)


def mixed_probability(p: np.ndarray, g: int) -> np.ndarray:
    """1 - p^g - (1 - p)^g: chance that g rollouts at pass rate p are neither all right nor all wrong."""
    return 1.0 - p**g - (1.0 - p) ** g


class MixedGroupSampler(DecayedBetaSampler):
    """Mixed-group sampling: the B prompts most likely to give a mixed group next time.

    GRPO learns only from a group whose G rewards are not all equal, and G rollouts at pass
    rate p form a mixed group with probability

        P(mixed | p) = 1 - p^G - (1 - p)^G.

    VADE (Hu et al., 2025, Variance-Aware Dynamic sampling, arXiv:2511.18902) scores a Thompson
    draw of p by the information gain p (1 - p)^2; MMR1's VAS (Leng et al., 2025,
    arXiv:2509.21268) scores a point estimate by the outcome variance p (1 - p). Both stand in
    for "this group will have a gradient"; this sampler scores that event itself, for the G the
    trainer uses. For G = 8 it is flat (>= 0.70) over p in [0.14, 0.86] and steep only near 0
    and 1: it does not prefer p = 1/3 or 1/2 among learnable prompts, and it tells "hard but
    learnable" (p = 0.05: 0.34) from "hopeless" (p = 0.005: 0.04).

    Posterior, as VADE's: a prompt's pass rate is Beta(a + 1, b + 1), with (a, b) starting at
    the difficulty version's (n_correct, n_wrong) (``prior_counts``; else 0, a flat Beta) and
    tracking the moving policy by VADE's two-scale decay after every update:

        selected (present in ``results``):  a <- l1*a + n_correct,  b <- l1*b + n_wrong
        not selected:                        a <- l2*a,              b <- l2*b

    with VADE's l1 = 0.2, l2 = 0.999. In the simulation l1 in [0.2, 0.5] is equally good and
    l1 = 1.0 drops to 1.36x: kept evidence makes a prompt the policy has just learned still
    look mixed, so the posterior must forget about as fast as the policy moves.

    Score (``score``), then the top B:
    - ``expected`` (default): the posterior expectation of P(mixed), exact through Beta moments,
      E[p^G] = B(a + 1 + G, b + 1) / B(a + 1, b + 1). It counts the chance that a prompt
      estimated near 0 or 1 is in fact learnable (G = 8: flat Beta(1, 1) 0.78, 8/8 correct
      seen 0.47, 80/80 seen 0.09), so unseen and little-seen prompts get explored without
      random draws; equal scores are taken in a seeded random order.
    - ``thompson``: P(mixed | p~) for one draw p~ per posterior, as VADE draws.
    ``benchmarks/sampler_sim.py`` (5 seeds, offline priors, defaults): ``expected`` reaches
    1.71x uniform's effective-group ratio, ``thompson`` 1.55x: a draw's noise lifts prompts whose
    true chance of a mixed group is low, and the expectation already explores. Without offline
    priors (every prompt starts flat) ``expected`` reaches 1.63x.

    Deviations from VADE, and why:
    - the score is P(mixed) for the actual G (``group_size``; by default the largest group of
      the latest update, 8 before the first), not p (1 - p)^2;
    - the default score is the posterior expectation, not a Thompson draw (measured above);
    - ids drawn but not yet in an update (TRL's generation buffer lags feedback by a round) go
      after every other id in the next draws, for at most ``max_lag`` batches: a deterministic
      score would otherwise draw the same batch again before its results came back.
    From VAS: no uniform share of the batch; exploration comes from the posterior's width.
    """

    name = "mixed"
    PARAMS = ("l1", "l2", "group_size", "score", "max_lag")

    def __init__(self, ids, *, l1: float = 0.2, l2: float = 0.999, group_size: int | None = None,
                 score: str = "expected", max_lag: int = 4, **kw):
        self.group_size = None if group_size is None else check_int("group_size", group_size, 2)
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
        self.score = score
        self.max_lag = check_int("max_lag", max_lag, 0)
        super().__init__(ids, l1=l1, l2=l2, **kw)
        self.drawn_at = np.full(len(self.ids), -1, dtype=np.int64)  # batch that drew the id, -1: none pending
        self.seen_group_size = 8
        self._batch: dict[str, float] = {}

    @property
    def current_group_size(self) -> int:
        return self.group_size or self.seen_group_size

    def p_mixed(self) -> np.ndarray:
        """Posterior expectation of P(mixed) for every id (sorted-id order)."""
        return expected_mixed_probability(self.a + 1.0, self.b + 1.0, self.current_group_size)

    def _choose(self, k):
        if self.score == "expected":
            score = self.p_mixed()
        else:
            score = mixed_probability(self.draw_pass_rates(), self.current_group_size)
        pending = (self.drawn_at >= 0) & (self.step - self.drawn_at <= self.max_lag)
        score_key = np.where(pending, score - 2.0, score)  # scores are in [0, 1]: pending ids go last
        # Equal scores (unseen prompts, equal counts) in a seeded random order, the same on every rank.
        chosen = np.lexsort((self._rng.random(len(self.ids)), -score_key))[:k]
        self.drawn_at[chosen] = self.step
        self._batch = {"batch_p_mixed": float(score[chosen].mean()),
                       "batch_est_pass_rate": float(self.posterior_mean()[chosen].mean())}
        return chosen

    def _observe(self, idx, correct, total, completions):
        self._decay(idx, correct, total)
        self.drawn_at[idx] = -1
        if len(idx):
            self.seen_group_size = max(2, int(total.max()))

    def _state(self):
        return {**self._posterior_state(), "drawn_at": self.drawn_at.tolist(),
                "seen_group_size": self.seen_group_size, "batch": dict(self._batch)}

    def _load(self, state):
        self._load_posterior(state)
        self.drawn_at = np.asarray(state["drawn_at"], dtype=np.int64)
        self.seen_group_size = int(state["seen_group_size"])
        self._batch = {k: float(v) for k, v in state["batch"].items()}

    def _stats(self):
        if self.step == 0:
            return {}
        return {**self._batch, "mean_p_mixed": float(self.p_mixed().mean()),
                "mean_evidence": float(np.mean(self.a + self.b))}
