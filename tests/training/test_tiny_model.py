import json

import pytest
import torch
from PIL import Image

from curation.errors import SightlineError
from curation.generation.models import load_model_and_processor
from training.tiny_model import FORMAT_TOKENS, SPECIAL_TOKENS


def _user(text="How many shapes are there?"):
    return [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": text}]}]


def test_tiny_model_reloads_with_from_pretrained_and_gives_finite_logits(tiny_model_dir):
    from transformers import Qwen2VLForConditionalGeneration

    model, processor = load_model_and_processor(tiny_model_dir)
    direct = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)  # the plain HF path works too
    vocab = len(processor.tokenizer)
    assert model.config.text_config.vocab_size == vocab <= 400
    text = processor.apply_chat_template(_user(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=[Image.new("RGB", (112, 112), "red")], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
        logits_direct = direct(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], vocab)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, logits_direct)
    info = json.loads((tiny_model_dir / "sightline_tiny.json").read_text())
    assert info["parameters"] == sum(p.numel() for p in model.parameters())


# 28x28 pixels per token; a larger image is scaled down under max_pixels = 112^2 (smart_resize floors: 84x84)
@pytest.mark.parametrize("size,tokens", [((112, 112), 16), ((56, 56), 4), ((112, 56), 8), ((300, 300), 9)])
def test_chat_template_and_processor_give_the_expected_image_tokens(tiny_model_dir, size, tokens):
    model, processor = load_model_and_processor(tiny_model_dir)
    text = processor.apply_chat_template(_user(), add_generation_prompt=True, tokenize=False)
    assert text.count("<|image_pad|>") == 1 and text.endswith("<|im_start|>assistant\n")
    enc = processor(text=[text], images=[Image.new("RGB", size, "blue")], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == tokens
    assert enc["image_grid_thw"].prod().item() == 4 * tokens  # 2x2 patches merge into one token


def test_special_and_format_tokens_are_single_ids_and_survive_decoding(tiny_model_dir):
    _, processor = load_model_and_processor(tiny_model_dir)
    tok = processor.tokenizer
    for t in SPECIAL_TOKENS + FORMAT_TOKENS:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    trace = "<think>There are 3 circles.</think><answer>3</answer>"
    ids = tok(trace + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == trace  # tags kept, <|im_end|> dropped
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_load_refuses_missing_paths_and_non_model_folders(tmp_path):
    with pytest.raises(SightlineError, match="no model at"):
        load_model_and_processor(tmp_path / "nope")
    with pytest.raises(SightlineError, match="not a model folder"):
        load_model_and_processor(tmp_path)


def test_qwen2_5_vl_folder_loads_with_its_own_classes(tiny_model_dir, tmp_path):
    """A (tiny) Qwen2.5-VL checkpoint folder: model class picked from config.model_type."""
    import shutil

    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    src = json.loads((tiny_model_dir / "config.json").read_text())
    t = src["text_config"]
    cfg = Qwen2_5_VLConfig(
        text_config={k: t[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                       "num_attention_heads", "num_key_value_heads", "rope_parameters",
                                       "eos_token_id", "pad_token_id")},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": t["hidden_size"],
                           "fullatt_block_indexes": [0], "window_size": 56},
        image_token_id=src["image_token_id"], video_token_id=src["video_token_id"],
        vision_start_token_id=src["vision_start_token_id"], vision_end_token_id=src["vision_end_token_id"])
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "preprocessor_config.json"):
        shutil.copy(tiny_model_dir / f, tmp_path / f)
    model, processor = load_model_and_processor(tmp_path, dtype="float32")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    text = processor.apply_chat_template(_user(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=[Image.new("RGB", (112, 112), "green")], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 1 and enc["input_ids"].shape[1] < out.shape[1] <= enc["input_ids"].shape[1] + 3


def test_smaller_patches_give_more_image_tokens_and_a_working_model(tmp_path):
    """patch_size=8 on 112 px: 14x14 patches merged 2x2 -> 49 image tokens (16 with Qwen2-VL's 14)."""
    from curation.synthetic import corpus
    from training.tiny_model import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(vocab_size=400, text_hidden=64, text_layers=1, vision_depth=1, vision_hidden=32,
                          image_size=112, patch_size=8)
    path = build_tiny_model(tmp_path / "p8", cfg, texts=list(corpus(200, seed=0)))
    model, processor = load_model_and_processor(path)
    text = processor.apply_chat_template(_user(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=[Image.new("RGB", (112, 112), "red")], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 49
    assert enc["pixel_values"].shape == (196, 3 * 2 * 8 * 8)  # channels x temporal x patch x patch
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()
    info = json.loads((path / "sightline_tiny.json").read_text())
    assert (info["patch_size"], info["merge_size"], info["image_tokens"]) == (8, 2, 49)
    with pytest.raises(ValueError, match="patch_size"):
        TinyModelConfig(patch_size=1)
