"""The judge: strict verdict parsing, the program judge against the rule verifier on sentence-form
golds of the synthetic families, and a transformers judge's mechanics with a tiny local model."""
import random

import pytest

from curation.answers.verify import verify
from curation.errors import SightlineError
from curation.generation.judge import (
    VERDICTS,
    Judge,
    JudgeItem,
    JudgeSpec,
    judge_prompt,
    parse_verdict,
    program_verdict,
)
from curation.synthetic import generate
from curation.synthetic import sentence_gold as synthetic_sentence


def test_parse_verdict_is_strict():
    assert parse_verdict("CORRECT") == parse_verdict(" correct. ") == parse_verdict("**Correct**") == "judged_correct"
    assert parse_verdict("WRONG") == parse_verdict("wrong!") == "judged_wrong"
    for bad in ("", None, "I think it is correct", "CORRECT or WRONG", "Correct, because ...", "yes", "INCORRECT"):
        assert parse_verdict(bad) == "judge_error", bad


def test_spec_checks():
    with pytest.raises(SightlineError, match="temperature must be 0"):
        JudgeSpec(backend="program", temperature=0.7)
    with pytest.raises(SightlineError, match="needs `model:`"):
        JudgeSpec(backend="transformers")
    with pytest.raises(SightlineError, match="backend must be one of"):
        JudgeSpec(backend="gpt")
    assert JudgeSpec(backend="program").judge_id == "program@judge-v1"


def sentence_gold(r: dict) -> str:
    """A sentence stating the synthetic row's short gold (the generator's ``open_share`` writes the same)."""
    return synthetic_sentence(r["answer"], r["answer_type"], r["choices"])


def responses(r: dict, other: dict, rng: random.Random) -> list[str]:
    g = r["answer"]
    out = [f"<think>reading the image</think><answer>{g}</answer>"]
    if r["answer_type"] == "yes_no":
        out.append(f"<answer>{'no' if g == 'yes' else 'yes'}</answer>")
    elif r["answer_type"] == "multiple_choice":
        wrong = rng.choice([chr(65 + i) for i in range(len(r["choices"])) if chr(65 + i) != g])
        out += [f"<answer>{wrong}</answer>", f"<answer>{r['choices'][ord(g) - 65]}</answer>"]
    else:
        out.append(f"<answer>{other['answer']}</answer>")
    return out


def test_program_judge_agrees_with_the_rule_verifier_on_sentence_golds():
    rows = [r for level in (1, 2, 3) for r in generate(200, seed=5, level=level)]
    rng = random.Random(0)
    both = agree = errors = total = 0
    for i, r in enumerate(rows):
        other = next(o for o in rows[i + 1:] + rows if o["answer_type"] == r["answer_type"]
                     and o["answer"] != r["answer"])
        for resp in responses(r, other, rng):
            total += 1
            rule = verify(resp, r["answer"], choices=r.get("choices"), answer_type=r["answer_type"])
            judged = program_verdict(JudgeItem(r["id"], r["question"], sentence_gold(r), resp,
                                               tuple(r["choices"]) if r.get("choices") else None))
            if judged == "judge_error":
                errors += 1
                continue
            if rule.reason == "needs_judge":
                continue
            both += 1
            agree += rule.correct == (judged == "judged_correct")
    assert total > 1200 and both / total > 0.95
    assert agree / both >= 0.99, (agree, both)
    print(f"program judge vs rule verifier: {agree}/{both} agree, {errors} judge_error of {total}")


def test_program_judge_on_open_golds_and_errors():
    item = JudgeItem("k", "What is on the sofa?", "A dog is sleeping on the sofa.", "<answer>a dog</answer>")
    assert program_verdict(item) == "judged_correct"
    assert program_verdict(JudgeItem("k", "Q", "A dog is sleeping.", "<answer>a cat</answer>")) == "judged_wrong"
    assert program_verdict(JudgeItem("k", "Q", "It has 3 legs and 2 eyes.", "<answer>3</answer>")) == "judge_error"
    assert "Reference answer: A dog is sleeping." in judge_prompt(JudgeItem("k", "Q", "A dog is sleeping.", "x"))


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    import torch

    from curation.synthetic import corpus
    from tests.training.conftest import TINY
    from training.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("judge") / "tiny", texts=list(corpus(100, seed=0)), **TINY)


def test_transformers_judge_mechanics_with_a_tiny_model(tiny_judge):
    """Random weights say nothing useful: what is tested is batching, greedy determinism and that any
    reply other than the one word is judge_error, never correct."""
    judge = Judge(JudgeSpec(backend="transformers", model=str(tiny_judge), batch_size=3, max_new_tokens=4)).load()
    items = [JudgeItem(f"k{i}", "What is shown?", "A red square.", f"<answer>{w}</answer>")
             for i, w in enumerate(["a red square", "a blue circle", "red", "nothing", "square"])]
    first, second = judge.judge(items), judge.judge(items)
    assert first == second and len(first) == 5 and set(first) <= set(VERDICTS)
    assert first.count("judge_error") >= 4   # a random model does not answer with the one word


# ---------------------------------------------------------------------------- the verify stage


def _traces(gold: str, answers: list[str], choices=None) -> list[dict]:
    from curation.answers.verify import verify

    out = []
    for i, a in enumerate(answers):
        v = verify(a, gold, choices=choices, answer_type="open")
        out.append({"trace_id": f"t{i}", "question": "How many shapes?", "answer": gold, "choices": choices,
                    "trace": a, "correct": bool(v.correct), "verdict_reason": v.reason})
    return out


def test_judge_traces_decides_only_what_the_rule_left_to_a_judge():
    from curation.generation.judge import judge_traces

    gold = "Looking at the picture, it is 3."
    traces = _traces(gold, ["<think>1, 2, 3</think><answer>3</answer>", "<answer>4</answer>", "no answer here"])
    assert [t["verdict_reason"] for t in traces] == ["needs_judge", "needs_judge", "needs_judge"]
    assert judge_traces([dict(t) for t in traces], None) == [t | {"judge": None} for t in traces]  # no judge
    judged = judge_traces(traces, Judge(JudgeSpec(backend="program")))
    assert [(t["correct"], t["verdict_reason"], t["judge"]) for t in judged] == [
        (True, "judged_correct", "program@judge-v1"), (False, "judged_wrong", "program@judge-v1"),
        (False, "judged_wrong", "program@judge-v1")]
    closed = [{"trace_id": "c", "answer": "3", "trace": "<answer>3</answer>", "correct": True,
               "verdict_reason": "match_number"}]
    assert judge_traces(closed, Judge(JudgeSpec(backend="program")))[0]["judge"] is None  # the rule decided


def test_distilled_selects_a_judged_trace_of_an_open_row():
    import json

    from curation.generation.assemble import distilled
    from curation.generation.distill import SelectConfig
    from curation.synthetic import generate_one, solution_from_scene

    row = dict(generate_one(0, seed=2, families=["counting"], open_share=1.0), split="train")
    assert row["answer_type"] == "open" and row["answer"].endswith(".")
    right = solution_from_scene(json.loads(row["scene"]))
    wrong = right.replace(f"<answer>{json.loads(row['scene'])['answer']}</answer>", "<answer>99</answer>")
    teacher = {"model": "program:solution", "prompt_version": "v", "sampling": {}}
    plain = distilled(row, [wrong, right], None, teacher, SelectConfig(), rewrite=False)
    assert plain.sft == [] and {t["verdict_reason"] for t in plain.traces} == {"needs_judge"}
    out = distilled(row, [wrong, right], None, teacher, SelectConfig(), rewrite=False,
                    judge=Judge(JudgeSpec(backend="program")))
    assert [(t["verdict_reason"], t["status"]) for t in out.traces] == [("judged_wrong", "incorrect"),
                                                                        ("judged_correct", "selected")]
    assert len(out.sft) == 1 and out.sft[0]["messages"][1]["content"][0]["text"] == right


def test_distilled_batch_judges_many_rows_in_one_call():
    import json

    from curation.generation.assemble import Distilled, TeacherFailed, distilled_batch
    from curation.generation.distill import SelectConfig
    from curation.synthetic import generate, solution_from_scene

    class Counted(Judge):  # the program judge, counting its calls (a spy: it judges as the program judge does)
        def __init__(self, spec):
            super().__init__(spec)
            self.calls = []

        def judge(self, items):
            self.calls.append(len(items))
            return super().judge(items)

    rows = [dict(r, split="train") for r in generate(3, seed=2, families=["counting"], open_share=1.0)]
    results = []
    for r in rows[:2]:
        right = solution_from_scene(json.loads(r["scene"]))
        results.append((r, [right.replace("</answer>", "0</answer>"), right], None))
    results.append((rows[2], None, "OOM"))
    teacher = {"model": "program:solution", "prompt_version": "v", "sampling": {}}
    judge = Counted(JudgeSpec(backend="program"))
    outs = distilled_batch(results, teacher, SelectConfig(), rewrite=False, judge=judge)
    assert judge.calls == [4]  # both rows' traces in one call
    assert isinstance(outs[2], TeacherFailed) and all(isinstance(o, Distilled) for o in outs[:2])
    for (row, texts, _), out in zip(results, outs[:2]):
        assert [t["verdict_reason"] for t in out.traces] == ["judged_wrong", "judged_correct"]
        assert [t["status"] for t in out.traces] == ["incorrect", "selected"]
        assert len(out.sft) == 1 and out.sft[0]["id"] == row["id"]
        assert out.sft[0]["messages"][1]["content"][0]["text"] == texts[1]
