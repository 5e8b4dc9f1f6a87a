"""Generation shared by teachers and the policy: requests from rows, the per-row retry, progress, the
policy's transformers backend on a tiny Qwen2-VL, and the vLLM conversation of an rl prompt."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from curation.loader import build
from curation.generation.prompts import CAPTION_PROMPT, user_message
from curation.recipe import CaptionTeacher, DistillTeacher
from curation.generation.rollouts import PolicyRollouts, Progress, generator_for, request_for, texts_or_errors
from curation.synthetic import generate
from curation.generation.teachers import ProgramTeacher, Request, TeacherSpec, VLLMTeacher, vllm_conversation
from tests.training.conftest import TINY, synthetic_tables


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def _policy(**kw) -> TeacherSpec:
    return TeacherSpec(role="policy", **({"backend": "transformers", "model": "/m", "n": 3} | kw))


def test_requests_from_rows_per_role():
    row = {**next(iter(generate(1, seed=0))), "caption": "Two red circles."}
    cap = request_for(row, build(CaptionTeacher, {}))
    assert (cap.key, cap.prompt, cap.image, cap.n) == (row["id"], CAPTION_PROMPT, row["images"][0]["bytes"], 1)
    dis = request_for(row, build(DistillTeacher, {"n": 3}))
    assert dis.n == 3 and "Two red circles." in dis.prompt and row["question"] in dis.prompt and dis.scene
    rl = synthetic_tables(1, 0)["rl"][0]
    pol = request_for(rl, _policy())
    assert (pol.key, pol.messages, pol.images, pol.n, pol.prompt) == (
        rl["id"], rl["prompt"], (rl["images"][0]["bytes"],), 3, "")


def test_a_failing_row_is_one_error_and_its_batch_mates_still_generate():
    """The program reasoner needs a scene: the row without one fails alone, with the reason."""
    teacher = ProgramTeacher(build(DistillTeacher, {"n": 2}))
    rows = [{**r, "caption": ""} for r in generate(3, seed=4)]
    requests = [request_for(r, teacher.spec) for r in rows]
    requests[1] = Request(key="no-scene", prompt="?", n=2)
    out = texts_or_errors(teacher, requests)
    assert [len(o.get("texts") or []) for o in out] == [2, 0, 2]
    assert out[1] == {"error": "ValueError: program teacher needs a synthetic scene (use a model teacher for real "
                               "sources)"}
    assert out[0]["texts"] == teacher.generate([requests[0]])[0]  # what it gives alone, batch or retry
    assert texts_or_errors(teacher, requests[1:2]) == [out[1]]


def test_progress_line_every_n_rows():
    p = Progress(_policy(backend="vllm"), every=4)
    assert p.add(3) is None
    line = p.add(2)
    assert line.startswith("  difficulty: 5 rows x 3 samples (") and line.endswith("rows/s, vllm:/m)")
    assert p.add(2) is None and p.add(1) is not None  # 8 crosses the next multiple
    assert Progress(build(CaptionTeacher, {}), every=0).add(100) is None


def test_generator_per_role_and_backend():
    assert isinstance(generator_for(_policy()), PolicyRollouts)
    assert isinstance(generator_for(_policy(backend="vllm")), VLLMTeacher)
    assert isinstance(generator_for(build(CaptionTeacher, {})), ProgramTeacher)
    assert _policy().stage == "difficulty" and build(DistillTeacher, {}).stage == "distill"


def test_vllm_conversation_of_an_rl_prompt_places_images_in_order():
    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    msgs = [{"role": "system", "content": "Be brief."}, user_message("Which is red?", ["left", "right"], n_images=2)]
    conv = vllm_conversation(Request(key="k", messages=msgs, images=(red, blue), n=4))
    assert conv[0] == {"role": "system", "content": "Be brief."}
    parts = conv[1]["content"]
    assert [p["type"] for p in parts] == ["image_pil", "image_pil", "text"]
    assert parts[0]["image_pil"].getpixel((0, 0)) == (255, 0, 0) and parts[1]["image_pil"].getpixel((0, 0)) == (0, 0, 255)
    assert parts[2]["text"].startswith("Which is red?\nA. left\nB. right")
    with pytest.raises(ValueError, match="2 image parts but the row has 1 images"):
        vllm_conversation(Request(key="k", messages=msgs, images=(red,)))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from curation.synthetic import corpus
    from training.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("tiny"), texts=list(corpus(200, seed=0)), **TINY)
    return generator_for(_policy(model=str(model), n=2, max_new_tokens=6, device="cpu", seed=3)).load()


def test_policy_rollouts_k_per_prompt_seeded_and_bad_rows_isolated(tiny_policy):
    rows = synthetic_tables(3, 0, seed=2)["rl"]
    requests = [request_for(r, tiny_policy.spec) for r in rows]
    texts = tiny_policy.generate(requests)
    assert [len(t) for t in texts] == [2, 2, 2] and all(isinstance(s, str) for t in texts for s in t)
    assert tiny_policy.generate(requests) == texts  # seeded per batch: a re-run samples the same
    broken = Request(key=requests[1].key, messages=requests[1].messages, images=(b"not an image",), n=2)
    out = texts_or_errors(tiny_policy, [requests[0], broken, requests[2]])
    assert [sorted(o) for o in out] == [["texts"], ["error"], ["texts"]]
    assert out[1]["error"].startswith("UnidentifiedImageError")
    assert out[0]["texts"] == tiny_policy.generate([requests[0]])[0]
    missing = Request(key="m", messages=requests[0].messages, images=(), n=2)
    assert texts_or_errors(tiny_policy, [missing])[0]["error"] == \
        "ValueError: the prompt has 1 image parts but the row has 0 images"
