"""Model loading and batched generation for Qwen2-VL-family checkpoints (tiny or real).

One implementation below every caller: model teachers (``curation.generation.teachers``), the difficulty
pass, evaluation and the trainers all load with ``load_model_and_processor`` and roll out with
``generate_texts``, so a policy is scored exactly as it is sampled.

transformers 5.x's default Qwen2-VL image and video processors need torchvision, which has no
CPU build here, and ``AutoProcessor.from_pretrained(dir)`` then silently returns the bare
tokenizer. So the processor is always built explicitly: tokenizer + ``Qwen2VLImageProcessorPil``
+ chat template, no video processor.

    model, processor = load_model_and_processor("models/tiny")
    texts = generate_texts(model, processor, prompts, images, max_new_tokens=96)
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from curation.errors import SightlineError

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


def qwen_classes(model_type: str):
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
    classes = qwen_classes(model_type)
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
    classes = qwen_classes(model_type)
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


# --------------------------------------------------------------------------- generation


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def generate_texts(model, processor, prompts: list[list[dict]], images: list[list], *, max_new_tokens: int = 160,
                   batch_size: int = 32, progress: bool = True, desc: str = "generate", **generate_kwargs: Any) -> list[str]:
    """Greedy (unless ``generate_kwargs`` say otherwise) completions of conversational prompts with images.

    ``prompts[i]`` is a message list whose image parts are placeholders (``{"type": "image"}``);
    ``images[i]`` are the PIL images for them, in order. Returns the decoded new text of each.
    """
    import torch
    from tqdm.auto import tqdm

    assert len(prompts) == len(images), "one image list per prompt"
    tokenizer = getattr(processor, "tokenizer", processor)
    gen = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    gen.update(generate_kwargs)
    if not gen.get("do_sample"):
        gen.update(temperature=None, top_p=None, top_k=None)  # silence sampling defaults of real checkpoints
    device = next(model.parameters()).device
    out: list[str] = []
    order = list(range(len(prompts)))
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", disable=not progress, leave=False)
    for idx in _batches(order, batch_size):
        texts = [processor.apply_chat_template(prompts[i], add_generation_prompt=True, tokenize=False) for i in idx]
        flat = [im.convert("RGB") if hasattr(im, "convert") else im for i in idx for im in (images[i] or [])]
        inputs = processor(text=texts, images=flat or None, padding=True, padding_side="left", return_tensors="pt")
        inputs = inputs.to(device)
        with torch.inference_mode():
            ids = model.generate(**inputs, **gen)
        new = ids[:, inputs["input_ids"].shape[1]:]
        out.extend(processor.batch_decode(new, skip_special_tokens=True))
        bar.update(len(idx))
    bar.close()
    return out
