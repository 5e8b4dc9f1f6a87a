"""Value-level tests for the mixed-group sampler (training/sampling/mixed.py); shared behaviour is in test_sampling.py."""

import json
import math

import numpy as np
import pytest

from training.sampling import make_sampler
from training.sampling.mixed import beta_moment, expected_mixed_probability, mixed_probability


def _beta_fn(a: float, b: float) -> float:
    return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


@pytest.mark.parametrize("a,b,g", [(1.0, 1.0, 8), (5.0, 5.0, 8), (1.0, 9.0, 8), (3.4, 1.4, 4), (0.6, 20.2, 16)])
def test_beta_moment_is_the_ratio_of_beta_functions(a, b, g):
    got = beta_moment(np.array([a]), np.array([b]), g)[0]
    assert got == pytest.approx(_beta_fn(a + g, b) / _beta_fn(a, b), rel=1e-10)
    # and the expectation of P(mixed) agrees with a numerical integral over the Beta density
    p = np.linspace(0.0, 1.0, 200_001)[1:-1]
    density = p ** (a - 1) * (1 - p) ** (b - 1) / _beta_fn(a, b)
    integral = np.trapezoid(mixed_probability(p, g) * density, p)
    assert expected_mixed_probability(np.array([a]), np.array([b]), g)[0] == pytest.approx(integral, abs=2e-3)


def test_mixed_probability_values():
    assert mixed_probability(np.array([0.5]), 8)[0] == pytest.approx(1 - 2 / 256)
    assert mixed_probability(np.array([0.05, 0.95]), 8) == pytest.approx([1 - 0.95**8 - 0.05**8] * 2)
    assert mixed_probability(np.array([0.0, 1.0]), 8).tolist() == [0.0, 0.0]
    # flat Beta(1, 1): E[p^G] = 1 / (G + 1), so E[P(mixed)] = 1 - 2 / (G + 1)
    assert expected_mixed_probability(np.ones(1), np.ones(1), 8)[0] == pytest.approx(7 / 9)


def test_posteriors_start_from_priors_and_decay_like_vade():
    s = make_sampler("mixed", ["p", "q", "r"], prior_counts={"p": (2, 4), "r": (5, 5)})
    assert np.c_[s.a, s.b].tolist() == [[2, 2], [0, 0], [5, 0]]
    s.update({"p": [1.0, 0.0, 1.0, 1.0]})  # l1 = 0.2 for p; q and r decay by l2 = 0.999
    assert np.allclose(np.c_[s.a, s.b], [[0.2 * 2 + 3, 0.2 * 2 + 1], [0, 0], [5 * 0.999, 0]])
    s.update({"r": [0.7, 0.2]}, completions={"r": ["x", "y"]})  # 0.7 > 0.5 correct, 0.2 wrong
    assert np.allclose(np.c_[s.a, s.b], [[3.4 * 0.999, 1.4 * 0.999], [0, 0], [0.2 * 4.995 + 1, 1]])
    custom = make_sampler("mixed", ["p", "q"], prior_counts={"p": (4, 8), "q": (4, 8)}, l1=0.5, l2=0.9)
    custom.update({"p": [1.0, 1.0]})
    assert np.allclose(np.c_[custom.a, custom.b], [[0.5 * 4 + 2, 0.5 * 4], [0.9 * 4, 0.9 * 4]])


def test_scores_the_expected_chance_of_a_mixed_group_for_the_seen_group_size():
    s = make_sampler("mixed", ["p", "q"], prior_counts={"p": (3, 8), "q": (8, 8)})
    assert s.current_group_size == 8
    assert s.p_mixed() == pytest.approx(expected_mixed_probability(np.array([4.0, 9.0]), np.array([6.0, 1.0]), 8))
    s.update({"p": [1.0, 0.0, 0.0, 0.0]})  # groups of 4 from now on
    assert s.current_group_size == 4
    a, b = np.array([0.2 * 3 + 1 + 1, 8 * 0.999 + 1]), np.array([0.2 * 5 + 3 + 1, 0 + 1])
    assert s.p_mixed() == pytest.approx(expected_mixed_probability(a, b, 4))
    fixed = make_sampler("mixed", ["p", "q"], group_size=16)
    fixed.update({"p": [1.0, 0.0]})
    assert fixed.current_group_size == 16


def test_prefers_learnable_prompts_and_is_flat_in_the_middle():
    """P(mixed) barely separates p = 1/3 (VADE's peak) from p = 1/2, and ranks hard-but-learnable over hopeless."""
    prior = {}
    for i in range(10):
        prior[f"third{i}"] = (33, 100)
        prior[f"half{i}"] = (50, 100)
        prior[f"hard{i}"] = (5, 100)      # p ~ 0.05: P(mixed) ~ 0.37 with G = 8
        prior[f"hopeless{i}"] = (0, 100)  # P(mixed) ~ 0.07
        prior[f"solved{i}"] = (100, 100)
    s = make_sampler("mixed", sorted(prior), prior_counts=prior)
    score = dict(zip(s.ids, s.p_mixed()))
    assert score["half0"] == pytest.approx(0.990, abs=1e-3) and score["third0"] == pytest.approx(0.955, abs=1e-3)
    assert score["hard0"] == pytest.approx(0.374, abs=1e-3)
    assert score["hopeless0"] == pytest.approx(score["solved0"]) == pytest.approx(0.073, abs=1e-3)
    kinds = sorted(pid.rstrip("0123456789") for pid in s.next_batch(25))
    assert kinds == ["half"] * 10 + ["hard"] * 5 + ["third"] * 10
    vade = make_sampler("vade", sorted(prior), prior_counts=prior)  # for contrast: VADE's gain peaks at 1/3
    assert sum(pid.startswith("third") for pid in vade.next_batch(10)) >= 8


def test_ids_awaiting_results_go_last_until_their_update_or_max_lag():
    ids = [f"q{i}" for i in range(6)]
    prior = {pid: (4, 8) for pid in ids[:3]} | {pid: (1, 8) for pid in ids[3:]}
    s = make_sampler("mixed", ids, prior_counts=prior, max_lag=1)
    assert sorted(s.next_batch(3)) == ids[:3]
    assert sorted(s.next_batch(3)) == ids[3:]  # the first batch's results are still out: the others go first
    # no results for batch 0 after max_lag = 1 more batch: its ids are eligible again, batch 1's are not
    assert sorted(s.next_batch(3)) == ids[:3] and s.drawn_at.tolist() == [2, 2, 2, 1, 1, 1]
    s.update({pid: [1.0, 0.0] * 4 for pid in ids[:3]})
    assert s.drawn_at.tolist() == [-1, -1, -1, 1, 1, 1]

    u = make_sampler("mixed", ids, prior_counts=prior)  # max_lag = 4
    first = u.next_batch(3)
    u.update({pid: [1.0, 0.0] * 4 for pid in first})  # results in: the same ids may come straight back
    assert sorted(u.next_batch(3)) == sorted(first) == ids[:3]
    no_lag = make_sampler("mixed", ids, prior_counts=prior, max_lag=0)
    assert sorted(no_lag.next_batch(3)) == sorted(no_lag.next_batch(3)) == ids[:3]


def test_thompson_scores_a_draw_and_ties_follow_the_seed():
    prior = {f"q{i}": (4, 8) for i in range(20)}
    expected = [make_sampler("mixed", sorted(prior), seed=seed, prior_counts=prior).next_batch(5) for seed in (0, 0, 1)]
    assert expected[0] == expected[1] and expected[0] != expected[2]  # all equal scores: seeded order
    t = make_sampler("mixed", sorted(prior), seed=0, prior_counts=prior, score="thompson")
    batch = t.next_batch(5)
    st = t.stats()
    assert 0 < st["batch_p_mixed"] <= 1 and st["batch_p_mixed"] != pytest.approx(t.p_mixed()[0])
    assert st["batch_est_pass_rate"] == pytest.approx(5 / 10) and len(set(batch)) == 5


def test_stats_and_json_state():
    s = make_sampler("mixed", ["a", "b", "c"], prior_counts={"a": (1, 8), "b": (4, 8)})
    assert s.stats() == {"step": 0.0}
    batch = s.next_batch(2)
    s.update({batch[0]: [1.0, 0.0, 1.0, 0.0]})
    st = s.stats()
    assert st["mean_p_mixed"] == pytest.approx(float(s.p_mixed().mean()))
    assert st["mean_evidence"] == pytest.approx(float(np.mean(s.a + s.b)))
    state = json.loads(json.dumps(s.state_dict(), allow_nan=False))
    assert state["seen_group_size"] == 4 and state["sampler"] == "mixed"
    assert state["params"] == {"l1": 0.2, "l2": 0.999, "group_size": None, "score": "expected", "max_lag": 4}


@pytest.mark.parametrize("kw,match", [
    ({"score": "mean"}, "score must be one of expected, thompson"),
    ({"group_size": 1}, "group_size must be an integer >= 2"),
    ({"max_lag": -1}, "max_lag must be an integer >= 0"),
    ({"l1": 0.0}, r"l1 must be in \(0.0, 1.0\]"),
    ({"l2": 1.5}, "l2 must be in"),
    ({"alpha": 0.8}, r"unknown params \['alpha'\] for sampler 'mixed'"),
])
def test_rejects_bad_params(kw, match):
    with pytest.raises(ValueError, match=match):
        make_sampler("mixed", ["a", "b"], **kw)
