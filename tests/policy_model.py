"""A tiny policy that writes well-formed answers, taught here by real gradient steps (no weights download).

A freshly built tiny model writes token soup, which the verifier never accepts, so a test of rejection
sampling (keep the correct rollouts) would see nothing kept. ``taught_policy`` builds the tiny Qwen2-VL
and trains it for a few seconds, with plain AdamW steps on the completion tokens, to answer any
counting prompt with one of ``ANSWERS`` (the same image and prompt for all three, so it learns to
sample them about a third each). With gold answer 3, two of them are correct (a short and a long
trace: "shortest first" has something to choose) and one is wrong.
"""
from __future__ import annotations

from pathlib import Path

ANSWERS = ("<think>3 shapes</think><answer>3</answer>",
           "<think>I count 3 shapes in all</think><answer>3</answer>",
           "<think>4 shapes</think><answer>4</answer>")
TINY = {"vocab_size": 400, "text_hidden": 64, "text_layers": 1, "vision_depth": 1, "vision_hidden": 32,
        "image_size": 112}


def taught_policy(out_dir: str | Path, *, steps: int = 60, lr: float = 3e-3, seed: int = 0) -> Path:
    """The tiny model at ``out_dir`` after ``steps`` full-batch steps on the three ``ANSWERS``; its folder."""
    import torch

    from curation.generation.models import load_model_and_processor
    from curation.generation.prompts import assistant_message, user_message
    from curation.synthetic import corpus, generate
    from training.tiny_model import build_tiny_model

    path = build_tiny_model(out_dir, texts=[*corpus(60, seed=0), *ANSWERS], seed=seed, **TINY)
    torch.manual_seed(seed)
    model, processor = load_model_and_processor(path, for_training=True)
    ex = next(iter(generate(1, seed=seed, families=["counting"])))
    from PIL import Image
    import io

    image = Image.open(io.BytesIO(ex["images"][0]["bytes"])).convert("RGB")
    prompt = [user_message(ex["question"], ex["choices"])]
    prefix = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    texts = [processor.apply_chat_template(prompt + [assistant_message(a)], tokenize=False) for a in ANSWERS]
    inputs = processor(text=texts, images=[image] * len(texts), padding=True, padding_side="right",
                       return_tensors="pt")
    start = processor(text=[prefix], images=[image], return_tensors="pt")["input_ids"].shape[1]
    labels = inputs["input_ids"].clone()
    labels[:, :start] = -100
    labels[inputs["attention_mask"] == 0] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(path)
    return path
