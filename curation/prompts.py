"""Teacher prompts, versioned: the version string is recorded on every row and in the manifest."""
from __future__ import annotations

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
