"""The tiny local Qwen2-VL: a randomly initialised model, tokenizer and processor built here.

No model hub is reachable here, so the CPU default is a Qwen2-VL *architecture* with tiny
dimensions, built locally and saved with ``save_pretrained``: a byte-level BPE trained on the
synthetic corpus with Qwen's special tokens, Qwen2-VL's own chat template, and the PIL image
processor. Loading it is then the same ``from_pretrained(path)`` path a real checkpoint takes
(``curation.generation.models.load_model_and_processor``).

    sightline train tiny-model --out models/tiny
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from curation.generation.models import qwen_classes
from curation.generation.prompts import FORMAT_INSTRUCTION, LETTERS
from curation.synthetic import corpus

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
# Plain added tokens (not "special"): decoding with skip_special_tokens=True keeps them, so the
# verifier still sees the tags, and each tag costs one token instead of four or five.
FORMAT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
SYSTEM_PROMPT = "You are a helpful assistant."  # what Qwen2-VL's template inserts by default
PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2  # Qwen2-VL's; one image token = 28x28 pixels
TINY_INFO = "sightline_tiny.json"


# --------------------------------------------------------------------------- tiny model

def _train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE with Qwen2's pre-tokenizer, wrapped as a ``Qwen2Tokenizer``."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    n_added = len(SPECIAL_TOKENS) + len(FORMAT_TOKENS)
    assert vocab_size >= 256 + n_added, f"vocab_size must be >= {256 + n_added} (256 bytes + added tokens)"
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - n_added, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tok = Qwen2Tokenizer(vocab=model_json["vocab"], merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])
    return tok


def _tokenizer_corpus(texts: Iterable[str] | None, seed: int) -> list[str]:
    if texts is None:
        texts = corpus(3000, seed)
    # Added tokens are split off before BPE runs, so train on the pieces between them: "<think>In"
    # must teach the merge "In", not ">In".
    tags = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS + FORMAT_TOKENS) + ")")
    texts = [piece for t in texts if t for piece in tags.split(t) if piece and not tags.fullmatch(piece)]
    # The chat scaffolding appears in every sample: let BPE see it often enough to merge it.
    scaffold = [SYSTEM_PROMPT, FORMAT_INSTRUCTION, "system\n", "user\n", "assistant\n"]
    scaffold += [f"\n{c}. " for c in LETTERS[:8]]
    return texts + scaffold * max(2, len(texts) // 20)


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width) in Qwen2-VL's 1:1.5:1.5 ratio."""
    half = head_dim // 2
    hw = (half - half // 4) // 2
    return [half - 2 * hw, hw, hw]


@dataclass
class TinyModelConfig:
    """The ``tiny_model`` recipe section: ``build_tiny_model``'s keyword arguments (``texts`` aside).

    Mirrors the builder's signature field for field, defaults included (a test holds the two in
    step): add a keyword there, add it here.
    """
    vocab_size: int = field(default=512, metadata={"help": "tokens, added ones included (the BPE may stop short on a "
                                                           "small corpus; the model matches the tokenizer)"})
    text_hidden: int = field(default=128, metadata={"help": "text decoder width (a multiple of 32: head size 32)"})
    text_layers: int = field(default=2, metadata={"help": "text decoder layers"})
    vision_depth: int = field(default=2, metadata={"help": "vision tower blocks"})
    vision_hidden: int = field(default=64, metadata={"help": "vision tower width (a multiple of 16: head size 16)"})
    image_size: int = field(default=112, metadata={"help": "square image side kept at full resolution: "
                                                           "(image_size / (patch_size x merge_size))^2 image tokens"})
    patch_size: int = field(default=PATCH_SIZE, metadata={"help": "vision patch side in pixels (Qwen2-VL: 14); 8 on "
                                                                  "112 px gives 49 image tokens instead of 16"})
    merge_size: int = field(default=MERGE_SIZE, metadata={"help": "patches merged per side into one image token (Qwen2-VL: 2)"})
    seed: int = field(default=0, metadata={"help": "weights init seed (default: run.seed)"})

    def __post_init__(self):
        if self.text_hidden % 32 or self.vision_hidden % 16:
            raise ValueError("text_hidden must be a multiple of 32 and vision_hidden of 16 (head sizes 32 and 16)")
        if self.patch_size < 2 or self.merge_size < 1:
            raise ValueError(f"patch_size must be >= 2 and merge_size >= 1, got {self.patch_size} and {self.merge_size}")


def _qwen2_vl_config(vocab: int, ids: dict[str, int], *, text_hidden: int, text_layers: int, vision_depth: int,
                     vision_hidden: int, patch_size: int, merge_size: int):
    """Qwen2-VL's architecture at tiny sizes: head sizes 32 (text) and 16 (vision), tied embeddings."""
    from transformers import Qwen2VLConfig

    heads = text_hidden // 32
    return Qwen2VLConfig(
        text_config={
            "vocab_size": vocab, "hidden_size": text_hidden, "intermediate_size": 4 * text_hidden,
            "num_hidden_layers": text_layers, "num_attention_heads": heads, "num_key_value_heads": heads,
            "max_position_embeddings": 4096, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(32)},
            "bos_token_id": None, "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config={
            "depth": vision_depth, "embed_dim": vision_hidden, "hidden_size": text_hidden, "num_heads": vision_hidden // 16,
            "mlp_ratio": 4, "patch_size": patch_size, "spatial_merge_size": merge_size,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_model(out_dir: str | Path, config: TinyModelConfig | None = None, *, texts: Iterable[str] | None = None,
                     vocab_size: int = 512, text_hidden: int = 128, text_layers: int = 2, vision_depth: int = 2,
                     vision_hidden: int = 64, image_size: int = 112, patch_size: int = PATCH_SIZE,
                     merge_size: int = MERGE_SIZE, seed: int = 0) -> Path:
    """Build and save a randomly initialised tiny Qwen2-VL (model, tokenizer, processor) at ``out_dir``.

    ``config`` (a recipe's ``tiny_model`` section), when given, supplies every size keyword.
    ``texts`` trains the BPE (default: ``curation.synthetic.corpus``); ``vocab_size`` counts the
    added tokens too (the BPE may stop short on a small corpus; the model matches the tokenizer).
    The image processor keeps an ``image_size`` square at full resolution (it never upscales):
    (image_size / (patch_size * merge_size))^2 image tokens, 16 for 112x112 with Qwen2-VL's 14 x 2,
    49 with ``patch_size=8``. Smaller patches are the cheap way to more image tokens: the vision
    tower's cost grows with patches, the decoder's only with merged tokens.
    """
    if config is not None:
        return build_tiny_model(out_dir, texts=texts, **dataclasses.asdict(config))
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from trl.chat_template_utils import qwen2_5_vl_chat_template  # byte-identical to Qwen2-VL's own

    assert text_hidden % 32 == 0, "text_hidden must be a multiple of 32 (head size 32)"
    assert vision_hidden % 16 == 0, "vision_hidden must be a multiple of 16 (head size 16)"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _train_tokenizer(_tokenizer_corpus(texts, seed), vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    factor = patch_size * merge_size
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=factor * factor, max_pixels=max(factor * factor, image_size * image_size),
        patch_size=patch_size, merge_size=merge_size, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    tokenizer.chat_template = qwen2_5_vl_chat_template
    processor = qwen_classes("qwen2_vl")[1](image_processor=image_processor, tokenizer=tokenizer,
                                             chat_template=qwen2_5_vl_chat_template)

    config = _qwen2_vl_config(len(tokenizer), ids, text_hidden=text_hidden, text_layers=text_layers,
                              vision_depth=vision_depth, vision_hidden=vision_hidden, patch_size=patch_size,
                              merge_size=merge_size)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)  # preprocessor_config.json, as real checkpoints ship it
    info = {"builder": "training.tiny_model.build_tiny_model", "vocab_size": len(tokenizer),
            "text_hidden": text_hidden, "text_layers": text_layers, "vision_depth": vision_depth,
            "vision_hidden": vision_hidden, "image_size": image_size, "patch_size": patch_size,
            "merge_size": merge_size, "image_tokens": (image_size // factor) ** 2, "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters())}
    (out / TINY_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out
