"""Shared machinery of the prompt samplers: id bookkeeping, validation, RNG, JSON state, stats."""

from __future__ import annotations

import math
import zlib
from collections import Counter

import numpy as np

from training.sampling.metrics import effective_group_ratio, entropy_nats

CORRECT_THRESHOLD = 0.5
STATE_VERSION = 1


def check_number(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004 - one error type for bad params
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def rng_to_json(rng: np.random.Generator) -> dict:
    st = rng.bit_generator.state
    # 128-bit PCG64 words as decimal strings: exact in any JSON reader, not only Python's.
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def rng_from_json(d: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": d["bit_generator"],
                               "state": {"state": int(d["state"]), "inc": int(d["inc"])},
                               "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}
    return rng


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
        self.seed = check_int("seed", seed, 0)
        self.window = check_int("window", window, 1)
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
            h = entropy_nats(np.bincount(picks, minlength=len(self.ids)).astype(np.float64))
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
                "rng": rng_to_json(self._rng), "recent": self._recent,
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
        self._rng = rng_from_json(state["rng"])
        self._recent = [[int(i) for i in b] for b in state["recent"]]
        self._last_update = {k: float(v) for k, v in state["last_update"].items()}
        self._load(state)

    # ---- helpers and hooks
    def _check_batch_size(self, batch_size) -> int:
        k = check_int("batch_size", batch_size, 1)
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
            n = check_number(f"prior_counts[{pid!r}] n_rollouts", n, 0.0, math.inf)
            c = check_number(f"prior_counts[{pid!r}] n_correct", c, 0.0, n)
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


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    # Stable sort: ties go to the smaller index (= sorted id), the same on every rank.
    return np.argsort(-score, kind="stable")[:k]
