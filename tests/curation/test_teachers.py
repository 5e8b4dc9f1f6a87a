import pytest

from curation.errors import SightlineError
from curation.loader import build
from curation.recipe import CaptionTeacher, DistillTeacher
from curation.generation.teachers import ProgramTeacher, Request, TeacherSpec, make_teacher


def test_spec_errors_are_clear():
    with pytest.raises(SightlineError, match="needs `model:`"):
        build(DistillTeacher, {"backend": "transformers"})
    with pytest.raises(SightlineError, match="unknown config key"):
        build(CaptionTeacher, {"backend": "program", "modle": "x"})
    with pytest.raises(SightlineError, match="backend must be one of"):
        build(CaptionTeacher, {"backend": "openai"})
    spec = build(DistillTeacher, {"backend": "vllm", "model": "/m/r1", "n": 4, "temperature": 0.6})
    assert spec.model_id == "vllm:/m/r1"
    assert spec.record("distill-v1") == {"backend": "vllm", "model": "vllm:/m/r1", "prompt_version": "distill-v1",
                                         "sampling": {"n": 4, "temperature": 0.6, "top_p": 0.95,
                                                      "max_new_tokens": 512, "seed": 0}}


def test_program_teachers_are_deterministic_and_need_a_scene():
    from curation.synthetic import generate
    from curation.answers.verify import verify

    rows = list(generate(6, seed=3))
    reasoner = make_teacher(build(DistillTeacher, {"n": 3, "error_rate": 0.5})).load()
    reqs = [Request(key=r["id"], prompt="p", scene=r["scene"], n=3) for r in rows]
    a, b = reasoner.generate(reqs), reasoner.generate(reqs)
    assert a == b and all(len(x) == 3 for x in a)
    verdicts = [verify(t, r["answer"], choices=r["choices"], answer_type=r["answer_type"]).correct
                for r, ts in zip(rows, a) for t in ts]
    assert 0 < sum(verdicts) < len(verdicts)  # error_rate 0.5: some right, some deliberately wrong
    captioner = ProgramTeacher(TeacherSpec(role="caption"))
    assert captioner.generate([reqs[0]])[0][0]
    with pytest.raises(ValueError, match="needs a synthetic scene"):
        captioner.generate([Request(key="x", prompt="p")])
