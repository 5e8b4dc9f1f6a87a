"""The learnable-row rule (curation.answers.learnable): each exclusion reason, and the synthetic
families all learnable."""
from curation.answers.learnable import EXCLUSIONS, exclusion
from curation.generation.assemble import rl_eligible
from curation.synthetic import generate


def row(**kw):
    return {"question": "How many?", "answer": "3", "answer_type": "integer", "choices": None, **kw}


def test_each_exclusion_reason():
    assert exclusion(row()) is None
    assert exclusion(row(answer_type=None))[0] == "no_answer_type"
    open_row = row(answer="The dog sleeps on the red sofa by the window.", answer_type="open")
    assert exclusion(open_row)[0] == "open_answer"
    assert exclusion(open_row, judge=True) is None and exclusion(open_row, keep_open=True) is None
    # a gold its own verifier cannot match: over the answer length bound, tags inside, an empty box, blank
    assert exclusion(row(answer="x" * 2500, answer_type="text"))[0] == "gold_does_not_verify"
    assert exclusion(row(answer="a</answer>b", answer_type="text"))[0] == "gold_does_not_verify"
    assert exclusion(row(answer="\\boxed{}", answer_type="math"))[0] == "gold_does_not_verify"
    assert exclusion(row(answer=" "))[0] == "gold_does_not_verify"
    assert {r for r in EXCLUSIONS} == {"no_answer_type", "open_answer", "gold_does_not_verify"}
    verdict = rl_eligible(row(answer_type=None))
    assert verdict.reason == "no_answer_type"


def test_real_gold_shapes_verify_against_themselves():
    for gold, kind, choices in (("$r=5$", "math", None), ("Volume $=1633.63 \\mathrm{~cm}^{3}$", "math", None),
                                ("B", "multiple_choice", ["x", "y"]), ("A, C", "multi_choice", ["x", "y", "z"]),
                                ("1.5", "number", None), ("yes", "yes_no", None), ("cat", "text", None)):
        assert exclusion(row(answer=gold, answer_type=kind, choices=choices)) is None, gold


def test_every_synthetic_row_is_learnable():
    rows = [r for level in (1, 2, 3) for r in generate(60, seed=3, level=level)]
    assert [exclusion(r) for r in rows] == [None] * len(rows)
