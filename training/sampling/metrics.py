"""Group statistics the samplers and the GRPO trainer log: effective-group ratio, self-BLEU diversity."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


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


def entropy_nats(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
