"""Chat-shaped rows: LLaVA / ShareGPT ``conversations`` (``from`` / ``value``), OpenAI-style
``messages`` (``role`` / ``content``, the content a string or a list of ``{type: text | image |
image_url}`` parts), multi-turn.

A conversation is read as its question / answer *exchanges* (one or more user turns, then the
assistant's turn; system turns are skipped). ``turns: first`` (the default) makes one row of the
first exchange and counts the exchanges it leaves out; ``turns: all`` makes one row per exchange,
whose question carries the earlier exchanges as context. A row keeps only the images referenced
up to its exchange (``<image>`` placeholders and image parts, counted in order) when those
references account for every image of the row; otherwise it keeps them all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from curation.sources.paths import MISSING, parse_path, resolve

USER_ROLES = ("user", "human")
ASSISTANT_ROLES = ("assistant", "gpt", "bot", "model")
ROLE_KEYS = ("role", "from")
TEXT_KEYS = ("content", "value", "text")
IMAGE_PARTS = ("image", "image_url", "input_image")
_PLACEHOLDER = re.compile(r"<\s*(?:image|img)(?:[ _-]?\d+)?\s*/?>", re.IGNORECASE)
CONTEXT_HEADER = "Conversation so far:"


@dataclass
class Exchange:
    """One question / answer pair of a conversation and the image references of its user turns."""
    question: str
    answer: str
    image_refs: int = 0
    part_images: list = field(default_factory=list)  # image values found in the parts themselves


@dataclass
class ChatTurn:
    """Exchange ``index`` of a conversation as one row: the exchange, those before it, and the
    image values its parts hold (when the images sit in the messages themselves)."""
    exchange: Exchange
    index: int
    all: list[Exchange]

    @property
    def earlier(self) -> list[Exchange]:
        return self.all[:self.index]

    @property
    def part_images(self) -> list:
        return part_images(self.all, self.index)

    def image_limit(self, n_images: int) -> int | None:
        return image_limit(self.all, self.index, n_images)


def turns_of(exchanges_: list[Exchange], mode: str) -> list[ChatTurn]:
    """The rows a conversation makes: its first exchange (``first``) or every one (``all``)."""
    keep = exchanges_ if mode == "all" else exchanges_[:1]
    return [ChatTurn(e, i, exchanges_) for i, e in enumerate(keep)]


def conversation_path(s: dict, columns: dict) -> str | None:
    """The chat list a source's rows are read from: the ``conversation`` key, or the list that
    both the question and the answer columns point into (``conversations[0].value`` and
    ``conversations[1].value``); None for rows that are not chats."""
    if s.get("conversation"):
        return s["conversation"]
    q, a = columns["question"], columns["answer"]
    if isinstance(q[1], list) or isinstance(a[1], list):
        return None
    qs, as_ = q[1], a[1]
    if len(qs) >= 2 and len(as_) >= 2 and isinstance(qs[-2], int) and isinstance(as_[-2], int) \
            and qs[:-2] == as_[:-2]:
        return q[0][:q[0].rindex("[")]
    return None


def _role(turn: dict) -> str | None:
    for key in ROLE_KEYS:
        value = turn.get(key)
        if isinstance(value, str):
            return value.strip().lower()
    return None


def _content(turn: dict) -> tuple[str | None, int, list]:
    """(text, image references, image values in parts) of one turn; text None when it has none."""
    for key in TEXT_KEYS:
        if key not in turn:
            continue
        value = turn[key]
        if isinstance(value, str):
            return value, len(_PLACEHOLDER.findall(value)), []
        if isinstance(value, list):
            texts, refs, images = [], 0, []
            for part in value:
                if isinstance(part, str):
                    texts.append(part)
                    refs += len(_PLACEHOLDER.findall(part))
                elif isinstance(part, dict):
                    kind = part.get("type")
                    if kind == "text" and isinstance(part.get("text"), str):
                        texts.append(part["text"])
                        refs += len(_PLACEHOLDER.findall(part["text"]))
                    elif kind in IMAGE_PARTS:
                        refs += 1
                        image = part.get(kind) if kind != "input_image" else part.get("image_url")
                        if isinstance(image, dict) and "url" in image:
                            image = image["url"]
                        if image is not None:
                            images.append(image)
            return "\n".join(t for t in texts if t.strip()), refs, images
    return None, 0, []


def exchanges(turns: Any) -> list[Exchange] | str:
    """The complete exchanges of a chat list, or why it is not one."""
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return "the conversation is not a list of turns (objects with role/from and content/value)"
    out: list[Exchange] = []
    asked: list[str] = []
    refs, images = 0, []
    for turn in turns:
        role = _role(turn)
        text, n, parts = _content(turn)
        if role in USER_ROLES:
            if text is not None and text.strip():
                asked.append(text)
            refs, images = refs + n, images + parts
        elif role in ASSISTANT_ROLES and asked:
            if text is None or not text.strip():
                asked, refs, images = [], 0, []
                continue
            out.append(Exchange("\n".join(asked), text, refs, images))
            asked, refs, images = [], 0, []
    return out


def strip_placeholders(text: str) -> str:
    return " ".join(_PLACEHOLDER.sub(" ", text).split(" ")).strip()


def with_context(earlier: list[Exchange], question: str) -> str:
    """The question of a later exchange, the earlier ones before it as context."""
    if not earlier:
        return question
    lines = [CONTEXT_HEADER]
    for e in earlier:
        lines += [f"User: {strip_placeholders(e.question)}", f"Assistant: {e.answer.strip()}"]
    return "\n".join(lines) + "\n\n" + question


def image_limit(exchanges_: list[Exchange], k: int, n_images: int) -> int | None:
    """How many of the row's ``n_images`` the exchange ``k`` keeps (those referenced up to it), or
    None to keep them all (the references do not account for every image)."""
    total = sum(e.image_refs for e in exchanges_)
    if total == 0 or total != n_images:
        return None
    return max(1, sum(e.image_refs for e in exchanges_[:k + 1]))


def part_images(exchanges_: list[Exchange], upto: int) -> list:
    return [im for e in exchanges_[:upto + 1] for im in e.part_images]


def read_turns(record: dict, path: str) -> Any:
    value = resolve(record, path, parse_path(path))
    return None if value is MISSING else value


__all__ = [
    "ChatTurn",
    "Exchange",
    "conversation_path",
    "exchanges",
    "image_limit",
    "part_images",
    "read_turns",
    "turns_of",
    "with_context",
]
