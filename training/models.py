"""Model loading: real Qwen2-VL / Qwen2.5-VL checkpoints and the tiny local Qwen2-VL.

No model hub is reachable here, so the CPU default is a Qwen2-VL *architecture* with tiny
dimensions, built locally and saved with ``save_pretrained``: a byte-level BPE trained on the
synthetic corpus with Qwen's special tokens, Qwen2-VL's own chat template, and the PIL image
processor. Loading it is then the same ``from_pretrained(path)`` path a real checkpoint takes.

transformers 5.x's default Qwen2-VL image and video processors need torchvision, which has no
CPU build here, and ``AutoProcessor.from_pretrained(dir)`` then silently returns the bare
tokenizer. So the processor is always built explicitly: tokenizer + ``Qwen2VLImageProcessorPil``
+ chat template, no video processor.

    sightline train tiny-model --out models/tiny
    model, processor = load_model_and_processor("models/tiny")
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from curation.errors import SightlineError

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
    from training.prompts import FORMAT_INSTRUCTION, LETTERS

    if texts is None:
        from curation.synthetic import corpus

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


def build_tiny_model(out_dir: str | Path, *, texts: Iterable[str] | None = None, vocab_size: int = 512,
                     text_hidden: int = 128, text_layers: int = 2, vision_depth: int = 2, vision_hidden: int = 64,
                     image_size: int = 112, seed: int = 0) -> Path:
    """Build and save a randomly initialised tiny Qwen2-VL (model, tokenizer, processor) at ``out_dir``.

    ``texts`` trains the BPE (default: ``curation.synthetic.corpus``); ``vocab_size`` counts the
    added tokens too (the BPE may stop short on a small corpus; the model matches the tokenizer).
    The image processor keeps an ``image_size`` square at full resolution: (image_size/28)^2
    image tokens, 16 for 112x112.
    """
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from trl.chat_template_utils import qwen2_5_vl_chat_template  # byte-identical to Qwen2-VL's own

    assert text_hidden % 32 == 0, "text_hidden must be a multiple of 32 (head size 32)"
    assert vision_hidden % 16 == 0, "vision_hidden must be a multiple of 16 (head size 16)"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _train_tokenizer(_tokenizer_corpus(texts, seed), vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    factor = PATCH_SIZE * MERGE_SIZE
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=factor * factor, max_pixels=max(factor * factor, image_size * image_size),
        patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    tokenizer.chat_template = qwen2_5_vl_chat_template
    processor = _qwen_classes("qwen2_vl")[1](image_processor=image_processor, tokenizer=tokenizer,
                                             chat_template=qwen2_5_vl_chat_template)

    heads = text_hidden // 32
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": text_hidden, "intermediate_size": 4 * text_hidden,
            "num_hidden_layers": text_layers, "num_attention_heads": heads, "num_key_value_heads": heads,
            "max_position_embeddings": 4096, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(32)},
            "bos_token_id": None, "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config={
            "depth": vision_depth, "embed_dim": vision_hidden, "hidden_size": text_hidden, "num_heads": vision_hidden // 16,
            "mlp_ratio": 4, "patch_size": PATCH_SIZE, "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)  # preprocessor_config.json, as real checkpoints ship it
    info = {"builder": "training.models.build_tiny_model", "vocab_size": len(tokenizer),
            "text_hidden": text_hidden, "text_layers": text_layers, "vision_depth": vision_depth,
            "vision_hidden": vision_hidden, "image_size": image_size, "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters())}
    (out / TINY_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out


# --------------------------------------------------------------------------- loading

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _dtype(dtype: str | torch.dtype | None) -> Any:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise SightlineError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _image_only(processor_cls):
    """``processor_cls`` without its video processor (whose transformers class needs torchvision).

    ProcessorMixin takes its sub-processors from the ``__init__`` signature, so dropping the
    argument drops the part. It keeps the parent's name, which ``save_pretrained`` writes into
    the configs, so a saved checkpoint stays a standard folder.
    """

    class ImageOnly(processor_cls):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            processor_cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    ImageOnly.__name__ = ImageOnly.__qualname__ = processor_cls.__name__
    return ImageOnly


def _qwen_classes(model_type: str):
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

        return Qwen2VLForConditionalGeneration, _image_only(Qwen2VLProcessor)
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

        return Qwen2_5_VLForConditionalGeneration, _image_only(Qwen2_5_VLProcessor)
    return None


def _chat_template(path: Path, tokenizer) -> str | None:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text()).get("chat_template")
    return None


def load_processor(path: str | Path, *, trust_remote_code: bool = False):
    """The processor of a Qwen2-VL-family folder, built explicitly (PIL image processor, no video part)."""
    path = Path(path)
    model_type = _model_type(path)
    classes = _qwen_classes(model_type)
    if classes is None:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    clear_saved_truncation(tokenizer)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    return classes[1](image_processor=image_processor, tokenizer=tokenizer, chat_template=_chat_template(path, tokenizer))


def clear_saved_truncation(tokenizer) -> None:
    """Forget a truncation/padding setting a trainer's collator left in ``tokenizer.json``.

    A processor call with ``truncation=True, max_length=N`` sets it on the Rust tokenizer, and
    ``save_pretrained`` writes it out; later calls then warn (or, with truncation on, cut prompts).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "no_truncation"):
        backend.no_truncation()
        backend.no_padding()
    for key in ("max_length", "truncation_strategy", "stride"):  # defaults loading copied from it
        getattr(tokenizer, "init_kwargs", {}).pop(key, None)


def _model_type(path: Path) -> str:
    if not path.exists():
        raise SightlineError(f"no model at {path} (build the tiny one with `sightline train tiny-model --out {path}`)")
    config = path / "config.json"
    if not path.is_dir() or not config.is_file():
        raise SightlineError(f"{path} is not a model folder (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise SightlineError(f"{config} is not a valid model config: {e}") from e
    if not model_type:
        raise SightlineError(f"{config} has no model_type")
    return model_type


def load_model_and_processor(path: str | Path, *, dtype: str | torch.dtype | None = None, device: str | None = None,
                             trust_remote_code: bool = False, for_training: bool = False) -> tuple[Any, Any]:
    """Load a vision-language checkpoint folder and its processor.

    Qwen2-VL and Qwen2.5-VL (tiny or real) get their own model class (chosen from
    ``config.model_type``) and an explicitly built processor; other model types fall back to
    ``AutoModelForImageTextToText`` / ``AutoProcessor``. ``dtype``: None (float32), "auto",
    "bfloat16", ... ``device``: None leaves the model where it loads (trainers place it),
    "auto" picks cuda when present. ``for_training`` puts it in train mode without KV cache;
    otherwise eval mode with left padding for batched generation.
    """
    path = Path(path)
    model_type = _model_type(path)
    classes = _qwen_classes(model_type)
    try:
        processor = load_processor(path, trust_remote_code=trust_remote_code)
        if classes is None:
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(path, dtype=_dtype(dtype),
                                                                trust_remote_code=trust_remote_code)
        else:
            model = classes[0].from_pretrained(path, dtype=_dtype(dtype), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise SightlineError(f"could not load the model at {path}: {e}") from e
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device is not None:
        model.to(device)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if for_training:
        model.train()
        model.config.use_cache = False
    else:
        model.eval()
        tokenizer.padding_side = "left"
    return model, processor


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
