"""Uniform baseline sampler: epoch-style shuffling, what TRL's ``RepeatSampler`` does."""

from __future__ import annotations

import numpy as np

from training.sampling.base import PromptSampler


class UniformSampler(PromptSampler):
    """Uniform baseline: walk a shuffled permutation, reshuffle each epoch.

    Every id is drawn once per epoch. A batch that straddles an epoch boundary takes the
    old epoch's leftovers plus ids from a fresh permutation in which those leftovers are
    moved to the end, so the batch stays distinct and the new epoch still covers every id.
    """

    name = "uniform"

    def __init__(self, ids, **kw):
        super().__init__(ids, **kw)
        self._perm = self._rng.permutation(len(self.ids))
        self._cursor = 0

    def _choose(self, k):
        take = self._perm[self._cursor:self._cursor + k]
        if len(take) == k:
            self._cursor += k
            return take.copy()
        perm = self._rng.permutation(len(self.ids))
        perm = np.concatenate([perm[~np.isin(perm, take)], take])
        self._perm, self._cursor = perm, k - len(take)
        return np.concatenate([take, perm[:self._cursor]])

    def _state(self):
        return {"perm": self._perm.tolist(), "cursor": self._cursor}

    def _load(self, state):
        self._perm = np.asarray(state["perm"], dtype=np.int64)
        self._cursor = int(state["cursor"])
