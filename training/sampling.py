"""Prompt samplers for GRPO: which prompt ids get the next round of rollouts.

A GRPO group whose G rewards are all equal has zero advantage and teaches nothing, so a
sampler that steers the rollout budget towards prompts with mixed outcomes buys more
gradient per rollout. Three samplers share one interface, driven outside any trainer:

    s = make_sampler("vade", ids, seed=0, prior_counts={"q17": (3, 8)})
    batch = s.next_batch(32)                      # 32 distinct ids
    s.update({"q17": [1.0, 0.0, ...]}, completions={"q17": ["...", ...]})
    json.dump(s.state_dict(), f)                  # next to the checkpoint; load_state_dict on resume

- ``uniform``: epoch-style shuffling, the baseline (what TRL's ``RepeatSampler`` does).
- ``vade``: Thompson sampling on Beta posteriors with two-scale decay (Hu et al., 2025).
- ``vas``: Variance-Aware Sampling, VPS-weighted plus uniform mix (Leng et al., 2025, MMR1).

Correctness: a reward ``> 0.5`` counts as correct (``CORRECT_THRESHOLD``), so a 0/1 verifier
reward works as is and a reward with a small format bonus on top still reads right.

Determinism across ranks: ids are sorted on entry and every per-id loop walks sorted ids,
so a sampler depends only on (set of ids, seed, params, sequence of updates), never on dict
or set order. Seed every rank the same and feed it the all-gathered results.

TRL hook: ``GRPOTrainer`` buffers generations for ``steps_per_generation`` steps, so the
results for a batch may arrive after later batches were drawn. That is allowed: ``update``
takes whatever groups arrived; for ``vade`` "selected" means "present in this update".

No torch or TRL import here: benchmarks and tests drive the samplers with plain numpy.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter

import numpy as np

CORRECT_THRESHOLD = 0.5
STATE_VERSION = 1


def effective_group_ratio(results: dict[str, list[float]]) -> float:
    """Share of groups whose rewards are not all equal (GRPO advantage not identically zero).

    Compares raw rewards, not correctness: a group of all-correct answers with different
    format bonuses still has a gradient. A one-rollout group is never effective; no groups -> 0.0.
    """
    if not results:
        return 0.0
    effective = sum(1 for r in results.values() if len(r) > 1 and max(r) != min(r))
    return effective / len(results)


def self_bleu_diversity(completions: list[str], max_order: int = 4) -> float:
    """1 - self-BLEU of one group of completions (Texygen's self-BLEU, Zhu et al., 2018).

    Each completion is scored by BLEU against the others as references (clipped n-gram
    precision up to ``max_order``, add-one smoothing for orders >= 2, brevity penalty
    against the closest reference length); self-BLEU is the mean. Tokens are whitespace
    splits, so no tokenizer is needed. Identical completions give 0.0, unrelated ones ~1.0;
    fewer than two non-empty completions give 0.0.
    """
    tokens = [c.split() for c in completions]
    tokens = [t for t in tokens if t]
    if len(tokens) < 2:
        return 0.0
    grams = [[Counter(zip(*(t[k:] for k in range(n)))) for n in range(1, max_order + 1)] for t in tokens]
    bleus = []
    for i, hyp in enumerate(tokens):
        others = [j for j in range(len(tokens)) if j != i]
        orders = min(max_order, len(hyp))
        log_precision = 0.0
        for n in range(orders):
            ref_max: Counter = Counter()
            for j in others:
                ref_max |= grams[j][n]
            matches = sum(min(c, ref_max[g]) for g, c in grams[i][n].items())
            total = sum(grams[i][n].values())
            if n == 0 and matches == 0:
                log_precision = -math.inf
                break
            smooth = 1 if n > 0 else 0
            log_precision += math.log((matches + smooth) / (total + smooth))
        ref_len = min((len(tokens[j]) for j in others), key=lambda r: (abs(r - len(hyp)), r))
        brevity = 1.0 if len(hyp) >= ref_len else math.exp(1.0 - ref_len / len(hyp))
        bleus.append(0.0 if log_precision == -math.inf else brevity * math.exp(log_precision / orders))
    return 1.0 - float(np.mean(bleus))


# ---------------------------------------------------------------- shared machinery


def _check_number(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004 - one error type for bad params
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _rng_to_json(rng: np.random.Generator) -> dict:
    st = rng.bit_generator.state
    # 128-bit PCG64 words as decimal strings: exact in any JSON reader, not only Python's.
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def _rng_from_json(d: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": d["bit_generator"],
                               "state": {"state": int(d["state"]), "inc": int(d["inc"])},
                               "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}
    return rng


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class PromptSampler:
    """Base: id bookkeeping, validation, RNG, state and the stats every sampler shares.

    ``selection_entropy`` (every sampler) is the entropy, in nats, of the empirical
    frequency of ids chosen over the last ``window`` batches; ``selection_entropy_norm``
    divides it by its maximum log(min(n_prompts, picks in window)), so 1.0 means no id
    repeated within the window and small values mean the sampler keeps revisiting a few ids.
    """

    name = ""
    PARAMS: tuple[str, ...] = ()

    def __init__(self, ids, *, seed: int = 0, prior_counts=None, batch_size: int | None = None,
                 window: int = 50):
        ids = list(ids)
        if not ids:
            raise ValueError("ids is empty: a sampler needs at least one prompt id")
        if not all(isinstance(i, str) for i in ids):
            raise ValueError("prompt ids must be strings")
        if len(set(ids)) != len(ids):
            dup = sorted(k for k, v in Counter(ids).items() if v > 1)[:5]
            raise ValueError(f"duplicate prompt ids, e.g. {dup}")
        self.ids = sorted(ids)
        self._index = {pid: k for k, pid in enumerate(self.ids)}
        self.seed = _check_int("seed", seed, 0)
        self.window = _check_int("window", window, 1)
        self.batch_size = None if batch_size is None else self._check_batch_size(batch_size)
        self.prior_correct, self.prior_total = self._read_prior(prior_counts or {})
        self._rng = np.random.default_rng(self.seed)
        self.step = 0  # next_batch calls so far
        self._recent: list[list[int]] = []
        self._last_update: dict[str, float] = {}

    # ---- public API
    def next_batch(self, batch_size: int | None = None) -> list[str]:
        """Distinct prompt ids for the next generation round (``batch_size`` of them)."""
        if batch_size is None:
            if self.batch_size is None:
                raise ValueError("batch_size not given here nor to make_sampler")
            batch_size = self.batch_size
        k = self._check_batch_size(batch_size)
        chosen = np.asarray(self._choose(k), dtype=np.int64)
        assert len(chosen) == k and len(np.unique(chosen)) == k, "sampler drew repeated ids"
        self.step += 1
        self._recent = (self._recent + [chosen.tolist()])[-self.window:]
        return [self.ids[i] for i in chosen]

    def update(self, results: dict[str, list[float]],
               completions: dict[str, list[str]] | None = None) -> None:
        """Feed back the rewards of finished groups (id -> rewards; > 0.5 is correct).

        ``completions`` (id -> texts) is optional; samplers that do not use texts ignore it.
        """
        idx, correct, total = [], [], []
        for pid in sorted(results):
            if pid not in self._index:
                raise ValueError(f"update() got unknown prompt id {pid!r}")
            rewards = np.asarray(results[pid], dtype=np.float64)
            if rewards.ndim != 1 or rewards.size == 0:
                raise ValueError(f"rewards for {pid!r} must be a non-empty list of numbers")
            idx.append(self._index[pid])
            correct.append(float((rewards > CORRECT_THRESHOLD).sum()))
            total.append(float(rewards.size))
        idx_a = np.asarray(idx, dtype=np.int64)
        correct_a, total_a = np.asarray(correct), np.asarray(total)
        self._observe(idx_a, correct_a, total_a, completions or {})
        if idx:
            self._last_update = {"effective_group_ratio": effective_group_ratio(results),
                                 "observed_pass_rate": float(np.mean(correct_a / total_a))}

    def stats(self) -> dict[str, float]:
        """Numbers to log, e.g. under ``sampler/<key>``.

        All: ``step``, ``selection_entropy(_norm)``, ``last_effective_group_ratio`` and
        ``last_observed_pass_rate`` (of the last update). vade adds ``batch_est_pass_rate``
        (mean posterior mean of the last batch, at draw time), ``batch_info_gain``,
        ``mean_evidence`` (mean a+b); vas adds ``batch_est_pass_rate``, ``batch_vps``,
        ``weighted_share``, ``mean_vps`` and ``vps_entropy`` (entropy of VPS / sum VPS).
        """
        out = {"step": float(self.step)}
        if self._recent:
            picks = np.concatenate([np.asarray(b, dtype=np.int64) for b in self._recent])
            h = _entropy(np.bincount(picks, minlength=len(self.ids)).astype(np.float64))
            h_max = math.log(min(len(self.ids), len(picks)))
            out["selection_entropy"] = h
            out["selection_entropy_norm"] = h / h_max if h_max > 0 else 1.0
        out.update({f"last_{k}": v for k, v in self._last_update.items()})
        out.update(self._stats())
        return out

    def state_dict(self) -> dict:
        """JSON-serialisable state (lists, floats, ints, str), RNG included."""
        return {"sampler": self.name, "version": STATE_VERSION, "n_prompts": len(self.ids),
                "ids_crc32": zlib.crc32("\n".join(self.ids).encode()), "seed": self.seed,
                "params": {p: getattr(self, p) for p in self.PARAMS}, "step": self.step,
                "rng": _rng_to_json(self._rng), "recent": self._recent,
                "last_update": dict(self._last_update), **self._state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; the sampler must be built on the same ids.

        Params (``l1``, ``lam``, ...) come from the constructor, as the run's config says;
        the ones saved under ``params`` are a record, not restored.
        """
        if state.get("sampler") != self.name:
            raise ValueError(f"state is for sampler {state.get('sampler')!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sampler state version {state.get('version')!r}")
        crc = zlib.crc32("\n".join(self.ids).encode())
        if state["n_prompts"] != len(self.ids) or state["ids_crc32"] != crc:
            raise ValueError("sampler state was saved for a different set of prompt ids")
        self.seed, self.step = int(state["seed"]), int(state["step"])
        self._rng = _rng_from_json(state["rng"])
        self._recent = [[int(i) for i in b] for b in state["recent"]]
        self._last_update = {k: float(v) for k, v in state["last_update"].items()}
        self._load(state)

    # ---- helpers and hooks
    def _check_batch_size(self, batch_size) -> int:
        k = _check_int("batch_size", batch_size, 1)
        if k > len(self.ids):
            raise ValueError(f"batch_size {k} > number of prompts {len(self.ids)}")
        return k

    def _read_prior(self, prior_counts: dict) -> tuple[np.ndarray, np.ndarray]:
        correct, total = np.zeros(len(self.ids)), np.zeros(len(self.ids))
        for pid in sorted(prior_counts):
            if pid not in self._index:
                raise ValueError(f"prior_counts has unknown prompt id {pid!r}")
            try:
                c, n = prior_counts[pid]
            except (TypeError, ValueError):
                raise ValueError(f"prior_counts[{pid!r}] must be (n_correct, n_rollouts)") from None
            n = _check_number(f"prior_counts[{pid!r}] n_rollouts", n, 0.0, math.inf)
            c = _check_number(f"prior_counts[{pid!r}] n_correct", c, 0.0, n)
            correct[self._index[pid]], total[self._index[pid]] = c, n
        return correct, total

    def _choose(self, k: int) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, idx, correct, total, completions) -> None:
        pass

    def _state(self) -> dict:
        return {}

    def _load(self, state: dict) -> None:
        pass

    def _stats(self) -> dict[str, float]:
        return {}


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    # Stable sort: ties go to the smaller index (= sorted id), the same on every rank.
    return np.argsort(-score, kind="stable")[:k]


# ---------------------------------------------------------------- samplers


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


class VadeSampler(PromptSampler):
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

    def __init__(self, ids, *, l1: float = 0.2, l2: float = 0.999, **kw):
        self.l1 = _check_number("l1", l1, 0.0, 1.0, low_open=True)
        self.l2 = _check_number("l2", l2, 0.0, 1.0, low_open=True)
        super().__init__(ids, **kw)
        self.a = self.prior_correct.copy()
        self.b = self.prior_total - self.prior_correct
        self._batch_pass_rate = self._batch_gain = 0.0  # reported once a batch was drawn

    def _choose(self, k):
        p = self._rng.beta(self.a + 1.0, self.b + 1.0)
        gain = p * (1.0 - p) ** 2
        chosen = _top_k(gain, k)
        self._batch_gain = float(gain[chosen].mean())
        self._batch_pass_rate = float(self.posterior_mean()[chosen].mean())
        return chosen

    def posterior_mean(self) -> np.ndarray:
        return (self.a + 1.0) / (self.a + self.b + 2.0)

    def _observe(self, idx, correct, total, completions):
        unselected = np.ones(len(self.ids), dtype=bool)
        unselected[idx] = False
        self.a[unselected] *= self.l2
        self.b[unselected] *= self.l2
        self.a[idx] = self.l1 * self.a[idx] + correct
        self.b[idx] = self.l1 * self.b[idx] + (total - correct)

    def _state(self):
        return {"a": self.a.tolist(), "b": self.b.tolist(),
                "batch_pass_rate": self._batch_pass_rate, "batch_gain": self._batch_gain}

    def _load(self, state):
        self.a = np.asarray(state["a"], dtype=np.float64)
        self.b = np.asarray(state["b"], dtype=np.float64)
        self._batch_pass_rate = float(state["batch_pass_rate"])
        self._batch_gain = float(state["batch_gain"])

    def _stats(self):
        if self.step == 0:
            return {}
        return {"batch_est_pass_rate": self._batch_pass_rate, "batch_info_gain": self._batch_gain,
                "mean_evidence": float(np.mean(self.a + self.b))}


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
        self.alpha = _check_number("alpha", alpha, 0.0, math.inf)
        self.beta = _check_number("beta", beta, 0.0, math.inf)
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ValueError("alpha and beta are both 0: VPS would be 0 for every prompt")
        self.lam = _check_number("lam", lam, 0.0, 1.0)
        self.refresh_every = _check_int("refresh_every", refresh_every, 1)
        self.unseen_pass_rate = _check_number("unseen_pass_rate", unseen_pass_rate, 0.0, 1.0)
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
        weighted = _top_k(keys, n_weighted)
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
        vps_entropy = _entropy(self.vps) if total > 0 else 0.0
        return {**self._batch, "vps_entropy": vps_entropy, "mean_vps": float(self.vps.mean())}


# ---------------------------------------------------------------- factory

SAMPLERS = {"uniform": UniformSampler, "vade": VadeSampler, "vas": VasSampler}
_COMMON_PARAMS = ("batch_size", "window")


def make_sampler(name: str, ids: list[str], *, seed: int = 0,
                 prior_counts: dict[str, tuple[int, int]] | None = None, **params) -> PromptSampler:
    """Build a sampler by name.

    ``prior_counts`` maps id -> (n_correct, n_rollouts), e.g. from a difficulty pass.
    ``params``: ``batch_size`` (default for ``next_batch``, checked against len(ids)),
    ``window`` (batches in the selection-entropy window, 50), plus the sampler's own:
    vade ``l1``, ``l2``; vas ``alpha``, ``beta``, ``lam``, ``refresh_every``, ``unseen_pass_rate``.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}")
    cls = SAMPLERS[name]
    unknown = sorted(set(params) - set(cls.PARAMS) - set(_COMMON_PARAMS))
    if unknown:
        accepted = ", ".join(cls.PARAMS + _COMMON_PARAMS)
        raise ValueError(f"unknown params {unknown} for sampler {name!r}; accepted: {accepted}")
    return cls(ids, seed=seed, prior_counts=prior_counts, **params)
