"""Open rows in eval: kept out of the rule-verified accuracy, judged apart when a judge is set, else counted as
not scored. Real parts: our store, the tiny policy taught to answer in the format, the program judge."""
from __future__ import annotations

import json

from curation.generation.judge import Judge, JudgeItem, JudgeSpec, program_verdict
from curation.store.versions import Store
from tests.training.conftest import synthetic_tables
from training.eval_report import open_summary, table
from training.evaluate import NOT_SCORED, EvalConfig, evaluate, main, score
from training.rewards import prompt_question

GOLD = "Looking at the picture, there are {} shapes in all."


def _rows():
    return [{"id": "c1", "task": "counting", "solution": "3", "answer_type": "integer", "choices": None},
            {"id": "o1", "task": "counting", "solution": GOLD.format(3), "answer_type": "open", "choices": None,
             "prompt": "How many shapes?"},
            {"id": "o2", "task": "counting", "solution": GOLD.format(4), "answer_type": "open", "choices": None},
            {"id": "o3", "task": "chart", "solution": "It is the square.", "answer_type": "open",
             "choices": ["circle", "square"]}]


RESPONSES = ["<answer>3</answer>", "<think>x</think><answer>3</answer>", "<answer>3</answer>", "<answer>B</answer>"]


def test_open_rows_never_enter_the_headline_and_are_not_scored_without_a_judge():
    s = score(RESPONSES, _rows())
    assert (s["n"], s["correct"], s["accuracy"]) == (1, 1, 1.0)  # the one rule-verified row
    assert s["per_task"] == {"counting": {"n": 1, "correct": 1, "accuracy": 1.0}}
    assert s["open"] == {"n": 3, "judge": None, "correct": None, "accuracy": None, "judge_errors": None,
                         "note": NOT_SCORED}
    assert [v["reason"] for v in s["verdicts"]] == ["match_number", NOT_SCORED, NOT_SCORED, NOT_SCORED]
    assert s["format_ok"] == 0.25  # over every row
    assert open_summary(s) == "3 open rows not scored (open, no judge)"


def test_a_judge_scores_open_rows_apart():
    s = score(RESPONSES, _rows(), judge=Judge(JudgeSpec(backend="program")))
    assert (s["n"], s["accuracy"]) == (1, 1.0)
    assert s["open"] == {"n": 3, "judge": "program@judge-v1", "correct": 2, "accuracy": 2 / 3, "judge_errors": 0,
                         "note": None}
    assert [v["reason"] for v in s["verdicts"][1:]] == ["judged_correct", "judged_wrong", "judged_correct"]
    text = table([s, score(RESPONSES, _rows())], labels=["judged", "plain"])
    head, _, judged, plain = text.splitlines()[:4]
    assert head.split()[:6] == ["model", "n", "overall", "format", "open", "counting"]
    assert judged.split()[1:5] == ["1", "100.0%", "25.0%", "66.7%"] and plain.split()[4] == "n/a"
    assert ("judged: 2/3 open rows judged correct by program@judge-v1; plain: 3 open rows not scored "
            "(open, no judge)") in text


def _open_store(root) -> Store:
    """Counting test rows: three open (sentence golds, 3 or 4 shapes), three with integer golds."""
    tables = synthetic_tables(4, 6, seed=5, families=["counting"])
    for i, r in enumerate(tables["test"]):
        gold = "3" if i % 3 else "4"
        if i % 2 == 0:
            r.update(solution=GOLD.format(gold), answer_type="open")
        else:
            r.update(solution=gold)
    store = Store(root)
    store.write_version(tables, config={"source": "tests/training/test_evaluate_open.py"})
    return store


def test_evaluate_judges_the_open_test_rows_of_a_real_model(taught_policy_dir, tmp_path, capsys):
    store = _open_store(tmp_path / "data" / "open")
    cfg = EvalConfig(batch_size=6, max_new_tokens=32, device="cpu", samples=6, image_probes=True)
    judged = evaluate(taught_policy_dir, store, "latest", cfg, progress=False, judge=JudgeSpec(backend="program"))
    test = store.read_table("test", 1).to_pylist()
    expected = sum(program_verdict(JudgeItem("k", prompt_question(r["prompt"]), r["solution"], s["response"]))
                   == "judged_correct" for r, s in zip(test, judged["samples"]) if r["answer_type"] == "open")
    assert judged["n"] == 3 and judged["open"]["n"] == 3 and judged["open"]["judge"] == "program@judge-v1"
    assert judged["open"]["correct"] == expected > 0  # the taught policy answers 3: the "3 shapes" golds
    assert "open" not in judged["probes"]["blank"] and judged["probes"]["blank"]["n"] == 3
    plain = evaluate(taught_policy_dir, store, "latest", cfg, progress=False)
    assert plain["open"]["note"] == NOT_SCORED and plain["accuracy"] == judged["accuracy"]

    out = tmp_path / "eval.json"
    assert main(["--model", str(taught_policy_dir), "--data", str(store.root), "--no-image-probes", "--device", "cpu",
                 "--max-new-tokens", "32", "--judge", "program", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{expected}/3 open rows judged correct by program@judge-v1" in printed
    saved = json.loads(out.read_text())
    assert saved["results"][0]["open"]["correct"] == expected
    assert saved["majority"]["open"]["judge"] == "program@judge-v1" and saved["majority"]["open"]["n"] == 3


def test_a_judge_whose_model_is_missing_fails_before_any_generation(tmp_path):
    import pytest

    from curation.errors import SightlineError

    spec = JudgeSpec(backend="transformers", model=str(tmp_path / "no-such-judge"))
    with pytest.raises(SightlineError, match="judge: model path .*no-such-judge does not exist"):
        evaluate(tmp_path / "no-such-policy", tmp_path / "no-data", "latest", EvalConfig(), judge=spec)
