"""Prompts, versioned: the student's user turn (a data contract) and the teachers' prompts.

The student turn: the curate pipeline builds sft/rl/test rows with ``user_message`` and training
(evaluation, rollouts) reads those rows, so a model is trained and scored on the same wording. The
format is DeepSeek-R1's: reasoning inside ``<think></think>``, the final answer inside
``<answer></answer>``. Teacher prompts (caption, distill) carry their own version strings, recorded
on every row and in the manifest.
"""
from __future__ import annotations

import re

# ---------------------------------------------------------------- the student's turn

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FORMAT_INSTRUCTION = (
    "Think step by step inside <think></think>, then give the final answer inside <answer></answer>."
)
# Bumped whenever the wording changes, so a version's manifest can say which prompt built it.
PROMPT_VERSION = "v1"


def user_prompt(question: str, choices: list[str] | None = None) -> str:
    """``question``, then ``A. first option`` lines when there are choices, then the format instruction."""
    assert question and question.strip(), "a prompt needs a question"
    lines = [question.strip()]
    if choices:
        assert len(choices) <= len(LETTERS), f"at most {len(LETTERS)} options, got {len(choices)}"
        lines += [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices)]
    lines.append(FORMAT_INSTRUCTION)
    return "\n".join(lines)


def user_message(question: str, choices: list[str] | None = None, n_images: int = 1) -> dict:
    """The user turn of sft/rl/test rows: one image part per image, then the ``user_prompt`` text."""
    return {"role": "user", "content": [{"type": "image", "text": None} for _ in range(n_images)]
            + [{"type": "text", "text": user_prompt(question, choices)}]}


def assistant_message(trace: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": trace}]}


# ---------------------------------------------------------------- teachers

CAPTION_PROMPT_VERSION = "caption-v1"
DISTILL_PROMPT_VERSION = "distill-v1"

# Dense, structured, and explicitly not solving (as VLAA-Thinking and Vision-R1 caption).
CAPTION_PROMPT = (
    "Describe this image in detail so that someone who cannot see it could answer questions about it. "
    "Cover the setting, every object with its color, shape and position, all numbers, text, labels, "
    "axes and values. Be exact and structured. Do not answer or solve any question."
)

DISTILL_PROMPT = (
    "You are given a detailed description of an image and a question about the image.\n\n"
    "Description:\n{caption}\n\nQuestion:\n{question}\n{options}\n"
    "Think step by step from the description, then give the final answer. "
    "Write your reasoning inside <think></think> and only the final answer inside <answer></answer>"
    "{answer_hint}."
)


def options_block(choices: list[str] | None) -> str:
    if not choices:
        return ""
    return "Options:\n" + "\n".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices)) + "\n"


def distill_prompt(caption: str, question: str, choices: list[str] | None = None) -> str:
    hint = " (the option letter)" if choices else ""
    return DISTILL_PROMPT.format(caption=caption, question=question, options=options_block(choices), answer_hint=hint)


# Chat-template control tokens of common model families: "<|image_pad|>", "<|im_end|>", "<｜end▁of▁sentence｜>",
# "</s>", "[INST]", "<start_of_turn>", and image placeholders. A teacher that writes one (a captioner echoing its
# own special tokens) must not pass it into the next model's prompt, whose processor would read it as a control
# token ("Found 1 <|image_pad|> tokens in the text but no images were passed").
_CONTROL = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|</?s>|<unk>|<pad>|\[/?INST\]|<</?SYS>>"
                      r"|<(?:start|end)_of_turn>|<\s*(?:image|img|video)(?:[ _-]?\d+)?\s*/?>", re.IGNORECASE)


def neutralise_control_tokens(text: str) -> str:
    """``text`` without anything that looks like a model's control token; spacing tidied."""
    if not text:
        return text
    cleaned = _CONTROL.sub(" ", text)
    if cleaned == text:
        return text
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip()
