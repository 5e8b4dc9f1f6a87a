"""Value-level tests for training/sampling/ (numpy only, well under a second each); mixed: test_sampling_mixed.py."""

import json
import math

import numpy as np
import pytest

from training.sampling import (
    effective_group_ratio,
    make_sampler,
    self_bleu_diversity,
)

IDS = [f"q{i:02d}" for i in range(30)]


def _rewards(pid: str, step: int) -> list[float]:
    """Deterministic fake group of 4 rewards: some mixed, some all-equal."""
    k = (int(pid[1:]) + step) % 5
    return [1.0] * k + [0.0] * (4 - k)


def _texts(pid: str, step: int) -> list[str]:
    k = int(pid[1:]) % 3
    return [f"step {step} answer {j * k}" for j in range(4)]


def _drive(sampler, steps: int, start: int = 0, batch_size: int = 7) -> list[list[str]]:
    batches = []
    for t in range(start, start + steps):
        batch = sampler.next_batch(batch_size)
        batches.append(batch)
        sampler.update({pid: _rewards(pid, t) for pid in batch},
                       completions={pid: _texts(pid, t) for pid in batch})
    return batches


# ---------------------------------------------------------------- vade


def test_vade_posteriors_update_and_decay_by_the_formulas():
    s = make_sampler("vade", ["p", "q", "r"], seed=0, prior_counts={"p": (2, 4), "r": (5, 5)})
    a, b = dict(zip(s.ids, s.a)), dict(zip(s.ids, s.b))
    assert (a["p"], b["p"], a["q"], b["q"], a["r"], b["r"]) == (2, 2, 0, 0, 5, 0)

    # step 1: p selected with rewards [1, 0, 1, 1]; q, r decay
    s.next_batch(1)
    s.update({"p": [1.0, 0.0, 1.0, 1.0]})
    exp = {"p": (0.2 * 2 + 3, 0.2 * 2 + 1), "q": (0.0, 0.0), "r": (5 * 0.999, 0.0)}
    assert np.allclose(np.c_[s.a, s.b], [exp[k] for k in s.ids])
    assert exp["p"] == pytest.approx((3.4, 1.4))

    # step 2: r selected with [0, 0, 1]
    s.next_batch(2)
    s.update({"r": [0.0, 0.0, 1.0]})
    exp = {"p": (3.4 * 0.999, 1.4 * 0.999), "q": (0.0, 0.0), "r": (0.2 * 4.995 + 1, 0.2 * 0 + 2)}
    assert np.allclose(np.c_[s.a, s.b], [exp[k] for k in s.ids])

    # step 3: p all wrong, q with 0.7 (> 0.5: correct) and 0.2 (wrong); r decays
    s.update({"q": [0.7, 0.2], "p": [0.0, 0.0]})
    exp = {"p": (0.2 * 3.3966, 0.2 * 1.3986 + 2), "q": (1.0, 1.0), "r": (1.999 * 0.999, 2 * 0.999)}
    assert np.allclose(np.c_[s.a, s.b], [exp[k] for k in s.ids])
    assert exp["p"] == pytest.approx((0.67932, 2.27972))


def test_vade_custom_decays():
    s = make_sampler("vade", ["p", "q"], prior_counts={"p": (4, 8), "q": (4, 8)}, l1=0.5, l2=0.9)
    s.update({"p": [1.0, 1.0]})
    assert np.allclose(np.c_[s.a, s.b], [[0.5 * 4 + 2, 0.5 * 4], [0.9 * 4, 0.9 * 4]])


def test_vade_prefers_pass_rate_near_one_third():
    prior = {}
    for i in range(10):
        prior[f"third{i}"] = (30, 90)
        prior[f"zero{i}"] = (0, 90)
        prior[f"one{i}"] = (90, 90)
    chosen = {"third": 0, "zero": 0, "one": 0}
    for seed in range(40):
        s = make_sampler("vade", sorted(prior), seed=seed, prior_counts=prior)
        for _ in range(5):
            batch = s.next_batch(12)
            assert sum(pid.startswith("third") for pid in batch) == 10  # every p~1/3 prompt, every time
            for pid in batch:
                chosen[pid.rstrip("0123456789")] += 1
    assert chosen["third"] == 40 * 5 * 10
    # per prompt: each p~1/3 prompt in every batch, the other 20 share the 2 leftover slots
    assert chosen["third"] / 10 > 5 * (chosen["zero"] + chosen["one"]) / 20
    # p ~ 0 (score ~ p) beats p ~ 1 (score ~ (1-p)^2) for the two leftover slots
    assert chosen["zero"] > chosen["one"]


def test_vade_stats_report_the_chosen_batch():
    s = make_sampler("vade", IDS, seed=3, prior_counts={pid: (1, 8) for pid in IDS[:10]})
    batch = s.next_batch(5)
    idx = [s.ids.index(pid) for pid in batch]
    st = s.stats()
    assert st["batch_est_pass_rate"] == pytest.approx(np.mean((s.a[idx] + 1) / (s.a[idx] + s.b[idx] + 2)))
    assert 0 < st["batch_info_gain"] <= 4 / 27 + 1e-12  # max of p(1-p)^2 is 4/27 at p = 1/3


# ---------------------------------------------------------------- vas


def test_vas_draws_pass_rate_near_half_more_often():
    prior = {}
    for i in range(10):
        prior[f"mid{i}"] = (4, 8)
        prior[f"low{i}"] = (1, 8)
        prior[f"high{i}"] = (7, 8)
    s = make_sampler("vas", sorted(prior), seed=0, prior_counts=prior, lam=1.0)
    vps = dict(zip(s.ids, s.vps))
    assert vps["mid0"] == pytest.approx(0.8 * 0.25)
    assert vps["low0"] == pytest.approx(0.8 * (1 / 8) * (7 / 8)) == pytest.approx(vps["high0"])
    counts = {"mid": 0, "low": 0, "high": 0}
    for _ in range(300):
        for pid in s.next_batch(5):
            counts[pid.rstrip("0123456789")] += 1
    assert counts["mid"] > 1.5 * counts["low"] and counts["mid"] > 1.5 * counts["high"]


def test_vas_scores_refresh_every_t_steps_and_extremes_fall_out():
    prior = {"mid": (4, 8), "solved": (8, 8), "hard": (0, 8)}
    s = make_sampler("vas", ["mid", "solved", "hard"], prior_counts=prior, lam=1.0, refresh_every=3)
    # VPS = 0 for the solved/hard prompts: with lam = 1 and B = 1 only "mid" is drawn
    assert [s.next_batch(1) for _ in range(3)] == [["mid"]] * 3
    s.update({"hard": [1.0, 0.0, 0.0, 0.0], "mid": [1.0, 1.0, 1.0, 1.0]})
    assert s.vps.tolist() == pytest.approx([0.0, 0.8 * 0.25, 0.0])  # frozen until the refresh
    assert s.next_batch(1) == ["hard"]  # step 3: refresh, "mid" is now solved
    assert s.vps.tolist() == pytest.approx([0.8 * 0.25 * 0.75, 0.0, 0.0])


def test_vas_diversity_raises_vps():
    s = make_sampler("vas", ["same", "diverse"], prior_counts={"same": (8, 8), "diverse": (8, 8)},
                     refresh_every=1)
    same = ["the answer is 4"] * 4
    diverse = ["the answer is 4", "so we get x = 4", "compute 2 + 2 first", "it equals four"]
    s.update({"same": [1.0] * 4, "diverse": [1.0] * 4}, completions={"same": same, "diverse": diverse})
    s.next_batch(1)  # refresh_every=1: scores recomputed at the next batch
    vps = dict(zip(s.ids, s.vps))
    assert vps["same"] == 0.0
    assert vps["diverse"] == pytest.approx(0.2 * self_bleu_diversity(diverse)) and vps["diverse"] > 0.1


def test_self_bleu_diversity_values():
    assert self_bleu_diversity(["a b c d"] * 3) == 0.0
    assert self_bleu_diversity(["a b c d", "e f g h"]) == 1.0
    assert self_bleu_diversity(["only one"]) == 0.0 and self_bleu_diversity(["x y", ""]) == 0.0
    # "a b c d" vs "a b c e": clipped precisions 3/4, (2+1)/(3+1), (1+1)/(2+1), (0+1)/(1+1)
    bleu = (0.75 * 0.75 * (2 / 3) * 0.5) ** 0.25
    assert self_bleu_diversity(["a b c d", "a b c e"]) == pytest.approx(1 - bleu)


# ---------------------------------------------------------------- all samplers

SAMPLER_KW = [("uniform", {}), ("vade", {}), ("vas", {"refresh_every": 2}), ("mixed", {}),
              ("mixed", {"score": "thompson"})]


@pytest.mark.parametrize("name,kw", SAMPLER_KW)
def test_state_dict_round_trip_through_json(name, kw):
    prior = {pid: (i % 5, 4 + i % 3) for i, pid in enumerate(IDS[::2])}
    a = make_sampler(name, IDS, seed=5, prior_counts=prior, **kw)
    json.dumps(a.state_dict(), allow_nan=False)  # strict JSON before the first batch too
    _drive(a, 5)  # 35 draws from 30 ids: uniform crosses an epoch boundary
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = make_sampler(name, IDS, seed=123, prior_counts=prior, **kw)  # seed overwritten by the state
    b.load_state_dict(state)
    assert b.stats() == a.stats()
    assert _drive(a, 8, start=5) == _drive(b, 8, start=5)
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


@pytest.mark.parametrize("name,kw", SAMPLER_KW)
def test_same_seed_same_batches_different_seed_differs(name, kw):
    runs = [_drive(make_sampler(name, IDS, seed=seed, **kw), 6) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name,kw", SAMPLER_KW)
def test_independent_of_id_order_and_results_order(name, kw):
    """What every rank needs: only the set of ids and the update contents matter."""
    a = make_sampler(name, IDS, seed=1, **kw)
    b = make_sampler(name, IDS[::-1], seed=1, **kw)
    for t in range(6):
        batch = a.next_batch(7)
        assert b.next_batch(7) == batch
        a.update({pid: _rewards(pid, t) for pid in batch})
        b.update({pid: _rewards(pid, t) for pid in reversed(batch)})
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


@pytest.mark.parametrize("name,kw", SAMPLER_KW)
def test_next_batch_returns_distinct_ids_of_the_requested_size(name, kw):
    s = make_sampler(name, IDS, seed=2, **kw)
    for t, size in enumerate([1, 7, 29, 30, 13, 30, 4]):
        batch = s.next_batch(size)
        assert len(batch) == size == len(set(batch)) and set(batch) <= set(IDS)
        s.update({pid: _rewards(pid, t) for pid in batch})
    with pytest.raises(ValueError, match="batch_size 31 > number of prompts 30"):
        s.next_batch(31)
    with pytest.raises(ValueError, match="batch_size"):
        s.next_batch(0)


def test_uniform_covers_every_id_once_per_epoch():
    s = make_sampler("uniform", IDS, seed=4)
    drawn = [pid for _ in range(3) for pid in s.next_batch(10)]
    assert sorted(drawn) == sorted(IDS)
    drawn = [pid for _ in range(4) for pid in s.next_batch(7)]  # 28 of the second epoch
    assert len(set(drawn)) == 28
    straddling = s.next_batch(7)  # the 2 ids left in epoch 2, then 5 of epoch 3
    assert set(straddling[:2]) == set(IDS) - set(drawn) and len(set(straddling)) == 7
    epoch3 = straddling[2:] + [pid for _ in range(5) for pid in s.next_batch(5)]
    assert sorted(epoch3) == sorted(IDS)  # epoch 3 still covers every id once


def test_lagged_feedback_for_ids_not_in_the_last_batch_is_accepted():
    s = make_sampler("vade", IDS, seed=0)
    first = s.next_batch(3)
    s.next_batch(3)
    s.update({pid: [1.0, 0.0] for pid in first})
    idx = [s.ids.index(pid) for pid in first]
    assert s.a[idx].tolist() == [1.0] * 3 and s.b[idx].tolist() == [1.0] * 3


def test_selection_entropy():
    s = make_sampler("uniform", ["a", "b", "c", "d"], seed=0, window=2)
    s.next_batch(2)
    s.next_batch(2)  # one epoch: all four ids once
    st = s.stats()
    assert st["selection_entropy"] == pytest.approx(math.log(4)) and st["selection_entropy_norm"] == 1.0
    v = make_sampler("vade", ["a", "b", "c", "d"], window=3,
                     prior_counts={"a": (30, 90), "b": (30, 90), "c": (0, 90), "d": (0, 90)})
    for _ in range(3):
        assert sorted(v.next_batch(2)) == ["a", "b"]
    assert v.stats()["selection_entropy"] == pytest.approx(math.log(2))
    assert v.stats()["selection_entropy_norm"] == pytest.approx(math.log(2) / math.log(4))


def test_effective_group_ratio():
    results = {"a": [1.0, 1.0], "b": [0.0, 1.0], "c": [0.2, 0.2, 0.3], "d": [1.0], "e": [0.0, 0.0]}
    assert effective_group_ratio(results) == pytest.approx(2 / 5)
    assert effective_group_ratio({}) == 0.0
    s = make_sampler("uniform", sorted(results))
    s.update(results)
    assert s.stats()["last_effective_group_ratio"] == pytest.approx(0.4)
    assert s.stats()["last_observed_pass_rate"] == pytest.approx(np.mean([1, 0.5, 0, 1, 0]))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name,ids,kw,match", [
    ("thompson", IDS, {}, "known samplers: mixed, uniform, vade, vas"),
    ("vade", IDS, {"l1": 0.0}, r"l1 must be in \(0.0, 1.0\]"),
    ("vade", IDS, {"l1": 1.5}, "l1 must be in"),
    ("vade", IDS, {"l2": -0.1}, "l2 must be in"),
    ("vade", IDS, {"l1": "0.2"}, "l1 must be a number"),
    ("uniform", IDS, {"batch_size": 31}, "batch_size 31 > number of prompts 30"),
    ("vade", [], {}, "ids is empty"),
    ("uniform", ["a", "a"], {}, "duplicate prompt ids"),
    ("vas", IDS, {"lam": 1.2}, "lam must be in"),
    ("vas", IDS, {"refresh_every": 0}, "refresh_every must be an integer >= 1"),
    ("vas", IDS, {"alpha": 0, "beta": 0}, "both 0"),
    ("uniform", IDS, {"l1": 0.2}, r"unknown params \['l1'\] for sampler 'uniform'"),
    ("vade", IDS, {"prior_counts": {"zz": (1, 2)}}, "unknown prompt id 'zz'"),
    ("vade", IDS, {"prior_counts": {"q00": (3, 2)}}, "n_correct must be in"),
    ("vade", IDS, {"seed": -1}, "seed must be an integer >= 0"),
])
def test_make_sampler_rejects_bad_arguments(name, ids, kw, match):
    with pytest.raises(ValueError, match=match):
        make_sampler(name, ids, **kw)


def test_l1_of_one_is_allowed_and_batch_size_default_is_used():
    s = make_sampler("vade", IDS, l1=1.0, batch_size=4)
    assert len(s.next_batch()) == 4


def test_update_and_load_reject_mismatches():
    s = make_sampler("vade", IDS)
    with pytest.raises(ValueError, match="unknown prompt id 'nope'"):
        s.update({"nope": [1.0]})
    with pytest.raises(ValueError, match="non-empty"):
        s.update({"q00": []})
    with pytest.raises(ValueError, match="state is for sampler 'vade', not 'vas'"):
        make_sampler("vas", IDS).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="different set of prompt ids"):
        make_sampler("vade", IDS[:-1]).load_state_dict(s.state_dict())
