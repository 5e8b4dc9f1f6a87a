"""Teachers enrich, never destroy: control-token look-alikes never reach another prompt, and a
teacher's failure leaves the row without a caption or trace instead of rejecting it."""
import io

import pytest
from PIL import Image

from curation.generation.assemble import TeacherFailed, captioned, distilled
from curation.generation.distill import SelectConfig
from curation.generation.prompts import distill_prompt, neutralise_control_tokens
from curation.generation.teachers import Request, TeacherSpec, make_teacher

ROW = {"id": "r1", "source": "s", "source_id": "0", "question": "How many?", "answer": "3", "choices": None,
       "answer_type": "integer", "split": "train", "images": []}


def test_neutralise_control_tokens():
    assert neutralise_control_tokens("<|vision_start|><|image_pad|>A red  square<|im_end|>") == "A red square"
    assert neutralise_control_tokens("x <｜end▁of▁sentence｜> y </s> [INST] <image> z") == "x y z"
    assert neutralise_control_tokens("<think>a</think><answer>3</answer>") == "<think>a</think><answer>3</answer>"
    assert neutralise_control_tokens("3 < 5 and 7 > 2") == "3 < 5 and 7 > 2"


def test_teacher_failures_keep_the_row():
    out = captioned(ROW, ["<|image_pad|>A red square<|image_pad|>"], None, "t")
    assert out["caption"] == "A red square" and "<|" not in distill_prompt(out["caption"], "How many?")
    assert captioned(ROW, ["<|image_pad|> <|im_end|>"], None, "t") == TeacherFailed(
        "empty_caption", "the caption teacher returned no text")
    assert isinstance(captioned(ROW, None, "CUDA out of memory", "t"), TeacherFailed)
    teacher = {"model": "m", "prompt_version": "v", "sampling": {}}
    assert distilled(ROW, None, "ValueError: boom", teacher, SelectConfig()) == TeacherFailed(
        "distill_failed", "ValueError: boom")
    assert distilled(ROW, [], None, teacher, SelectConfig()).reason == "no_traces"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from curation.synthetic import corpus
    from tests.training.conftest import TINY
    from training.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("cap") / "tiny", texts=list(corpus(100, seed=0)), **TINY)


def test_a_captioner_that_emits_its_special_tokens_passes_none_on(tiny):
    """A real (tiny) VLM made to emit <|image_pad|> and <|vision_start|> (a generation bias): its captions
    carry none of them, so the reasoner's processor never sees a control token in the text."""
    teacher = make_teacher(TeacherSpec(role="caption", backend="transformers", model=str(tiny), temperature=0.0,
                                       max_new_tokens=6)).load()
    vocab = teacher.tokenizer.get_vocab()
    specials = [vocab[t] for t in ("<|image_pad|>", "<|vision_start|>") if t in vocab]
    assert specials, "the tiny Qwen2-VL tokenizer has the vision tokens"
    teacher.model.generation_config.sequence_bias = {(t,): 40.0 for t in specials}
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 0, 0)).save(buf, "PNG")
    request = Request(key="k", prompt="Describe the image.", image=buf.getvalue())
    inputs = teacher._inputs([request])
    emitted = teacher.model.generate(**inputs, max_new_tokens=6, do_sample=False,
                                     pad_token_id=teacher.tokenizer.pad_token_id)[0, inputs["input_ids"].shape[1]:]
    assert set(emitted.tolist()) & set(specials), "the biased model emits the special tokens"
    texts = teacher.generate([request])
    assert len(texts) == 1
    caption = texts[0][0]
    assert "<|" not in caption and "image_pad" not in caption
    out = captioned(ROW, [caption], None, "tiny")
    assert isinstance(out, (dict, TeacherFailed))  # an all-special caption is a teacher failure, not a reject
