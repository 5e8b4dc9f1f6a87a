"""The verifier on bad input, format checks and its time bound (the answer forms are in test_verify.py)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from curation.answers import math_check
from curation.answers.verify import (
    MAX_SECONDS,
    Verdict,
    format_ok,
    verify,
)
from tests.curation.test_verify import check


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("response, gold, reason", [
    (None, "5", "no_answer"), ("", "5", "no_answer"), ("   \n", "5", "no_answer"),
    ("5", "", "empty_gold"), ("5", "  ", "empty_gold"), ("5", None, "empty_gold"),
    ("5", "<answer></answer>", "empty_gold"),
    (123, "5", "bad_input"), (["5"], "5", "bad_input"), (b"5", "5", "bad_input"), ("5", ["5"], "bad_input"),
])
def test_bad_input_never_raises(response, gold, reason):
    v = verify(response, gold)
    assert (v.correct, v.reason) == (False, reason)


def test_odd_but_usable_input():
    assert check("5", 5).correct and check("0.5", 0.5).correct
    assert check("yes", True).correct and not check("yes", False).correct
    assert check("<answer> 5 </answer>", "<answer>5</answer>").correct          # R1-V style gold
    assert check("B", "B", choices=("x", "y")).correct                           # any sequence
    assert check("B", "B", choices="xy").correct                                 # a string is ignored
    assert check("B", "B", choices=["x", None]).correct                          # unusable options ignored
    assert check("B", "B", answer_type=7).correct                                # unusable hint ignored


# ----------------------------------------------------------------------------- format

@pytest.mark.parametrize("response", [
    "<think>2+3=5</think><answer>5</answer>",
    "  <think>\nlong\nthought\n</think>\n\n<answer> B </answer>\n",
    "<think></think><answer>yes</answer>",
])
def test_format_ok(response):
    assert format_ok(response)


@pytest.mark.parametrize("response", [
    None, "", "5", "<answer>5</answer>", "<think>x</think>", "<think>x</think><answer></answer>",
    "<think>x</think><answer>  </answer>", "<answer>5</answer><think>x</think>",
    "<think>x</think> so <answer>5</answer>", "intro <think>x</think><answer>5</answer>",
    "<think>x</think><answer>5</answer> extra", "<think>x</think><answer>5</answer><answer>6</answer>",
    "<think>a<think>b</think><answer>5</answer>", "<think>x</think><answer>5",
    "<think>x<answer>5</answer></think>",
])
def test_format_not_ok(response):
    assert not format_ok(response)


# ----------------------------------------------------------------------------- time bound

ADVERSARIAL = [
    ("\\boxed{10^{10^{10}}}", "5"),
    ("<answer>9^{9^{9^{9}}}</answer>", "5"),
    ("<answer>{10}^{{10}^{10}}</answer>", "5"),
    ("<answer>2**2**2**2**2**2</answer>", "5"),
    ("<answer>(10^{10})!</answer>", "5"),
    ("<answer>100000!</answer>", "5"),
    ("<answer>x^{10^{10}}</answer>", "x"),
    ("<answer>" + "(" * 200 + "1" + ")" * 200 + "</answer>", "1"),
    ("<answer>\\int_0^1 e^{-x^2}\\sin(x^{7})\\,dx</answer>", "0.2"),
    ("word " * 20_000 + "\n" + "x" * 100_000, "5"),                   # 200k characters
    ("answer" + " " * 100_000 + "is 5", "5"),
    ("<answer>" * 10_000 + "C", "C"),
    ("\\boxed{" * 2_000 + "1", "1"),
]


@pytest.mark.parametrize("response, gold", ADVERSARIAL)
def test_time_bound_in_worker_thread(response, gold):
    result = {}

    def work():
        started = time.monotonic()
        result["verdict"] = verify(response, gold, answer_type="math")
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "verify() did not come back"
    assert isinstance(result["verdict"], Verdict)
    assert result["seconds"] < MAX_SECONDS, result


@pytest.mark.parametrize("response, gold, choices", [
    ("<answer>A" + " " * 1990 + "x</answer>", "A, C", ["x", "y", "z"]),      # blank runs in list readers
    ("<answer>x" + " " * 1990 + "and</answer>", "A, C", ["x", "y", "z"]),
    ("<answer>" + "A , " * 490 + "</answer>", "A, C", ["x", "y", "z"]),
    ("<answer>" + "(A)" * 600 + "</answer>", "B", ["x", "y"]),
    ("<answer>" + "is " * 600 + "</answer>", "red", None),
], ids=["spaces", "spaces-and", "list", "brackets", "copulas"])
def test_choice_and_sentence_readers_are_fast(response, gold, choices):
    started = time.monotonic()
    assert not verify(response, gold, choices=choices).correct
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("question", [
    "(A) " * 30_000, "A. x\n" * 30_000, "(A) x (B) " * 20_000, "A." + " " * 100_000 + "x\nB. y",
], ids=["labels", "lines", "inline", "blank"])
def test_options_in_long_questions_are_fast(question):
    started = time.monotonic()
    verify("B", "B", question=question)
    assert time.monotonic() - started < 3.0  # a quadratic pattern took 4-14 s here; linear code takes ms


def test_slow_math_verify_times_out(monkeypatch):
    monkeypatch.setattr(math_check, "_math_verify", lambda gold, pred: time.sleep(1.8) or True)
    result = {}
    worker = threading.Thread(target=lambda: result.update(v=verify("x^2+y", "y+x^2"), t=time.monotonic()))
    started = time.monotonic()
    worker.start()
    worker.join(10)
    assert result["v"] == Verdict(False, "x^2+y", "timeout")
    assert result["t"] - started < MAX_SECONDS
    while math_check._abandoned and time.monotonic() - started < 5:   # the abandoned sleeper ends
        time.sleep(0.05)
    assert math_check._abandoned == 0


def test_abandoned_workers_are_capped(monkeypatch):
    monkeypatch.setattr(math_check, "_abandoned", math_check.MAX_ABANDONED)
    started = time.monotonic()
    assert verify("x^2+y", "y+x^2").reason == "timeout"      # refused at once, no new thread
    assert time.monotonic() - started < 0.1
    assert verify("5 cm", "5").correct                          # the fast readers still work


def test_math_verify_errors_become_verdicts(monkeypatch):
    def broken(gold, pred):
        raise RuntimeError("boom")
    monkeypatch.setattr(math_check, "_math_verify", broken)
    assert verify("x^2+y", "y+x^2") == Verdict(False, "x^2+y", "error")


# ----------------------------------------------------------------------------- concurrency

def test_concurrent_calls_agree_with_sequential():
    cases = []
    for i in range(40):
        cases += [
            (f"<answer>{'ABCD'[i % 4]}</answer>", "ABCD"[(i // 4) % 4], ["1", "2", "3", "4"], None),
            (f"\\boxed{{{i} cm}}", str(i + i % 2), None, "integer"),
            ("Yes, it is." if i % 3 else "No.", "yes", None, "yes_no"),
            (f"\\frac{{{i}}}{{4}}", str(i / 4), None, "number"),
        ]
    for i in range(6):
        gold = f"x^2+{2 * i}x+{i * i}" if i % 2 else f"x^2+{i}x+{i * i + 1}"
        cases.append((f"(x+{i})^2", gold, None, "math"))
    expected = [verify(r, g, choices=c, answer_type=t) for r, g, c, t in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda c: verify(c[0], c[1], choices=c[2], answer_type=c[3]), cases * 2))
    assert got == expected * 2
    reasons = {v.reason for v in expected}
    assert reasons >= {"match_choice", "match_number", "match_yes_no", "match_math", "mismatch"}
