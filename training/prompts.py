"""The user-turn text every Sightline prompt uses: question, lettered options, format instruction.

The curate pipeline (sft/rl/test rows) and training (evaluation, rollouts) both build prompts
with ``user_prompt``, so a model is trained and scored on the same wording. The format is
DeepSeek-R1's: reasoning inside ``<think></think>``, the final answer inside ``<answer></answer>``.
"""
from __future__ import annotations

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


def user_message(question: str, choices: list[str] | None = None) -> dict:
    """The user turn of sft/rl/test rows: one image part, then the ``user_prompt`` text."""
    return {"role": "user", "content": [{"type": "image", "text": None},
                                        {"type": "text", "text": user_prompt(question, choices)}]}


def assistant_message(trace: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": trace}]}
