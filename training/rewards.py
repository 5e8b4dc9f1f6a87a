"""GRPO reward functions, TRL-style: ``(completions, **columns) -> list[float]``.

``accuracy_reward`` calls ``curation.answers.verify.verify``, the function the curate pipeline's verify
stage and ``sightline eval`` call too, so the reward, the data filter and the reported accuracy
cannot drift apart (nanochat's habit). Completions may be plain strings or TRL's conversational
form ``[{"role": "assistant", "content": ...}]``; dataset columns (``solution``, ``choices``,
``answer_type``) arrive as lists aligned with ``completions``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def completion_text(completion: Any) -> str:
    """The assistant text of one completion: a string, a message, or a list of messages/parts."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        if "content" in completion:
            return completion_text(completion["content"])
        return (completion.get("text") or "") if completion.get("type", "text") == "text" else ""
    if isinstance(completion, (list, tuple)):
        parts = []
        for item in completion:
            if isinstance(item, dict) and item.get("role") not in (None, "assistant"):
                continue  # a conversational completion holds only assistant turns; skip anything else
            parts.append(completion_text(item))
        return "".join(parts)
    return str(completion)


def _column(values: Sequence | None, i: int) -> Any:
    if values is None:
        return None
    return values[i] if isinstance(values, (list, tuple)) else values


def accuracy_reward(completions: list, solution: Sequence[str], choices: Sequence | None = None,
                    answer_type: Sequence | None = None, **kwargs: Any) -> list[float]:
    """1.0 when the final answer verifies against ``solution`` (``curation.answers.verify.verify``), else 0.0."""
    from curation.answers.verify import verify

    assert len(solution) == len(completions), "one solution per completion"
    out = []
    for i, c in enumerate(completions):
        chs = _column(choices, i)
        verdict = verify(completion_text(c), solution[i], choices=list(chs) if chs is not None else None,
                         answer_type=_column(answer_type, i))
        out.append(1.0 if verdict.correct else 0.0)
    return out


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 for ``<think>...</think><answer>...</answer>`` (``curation.answers.verify.format_ok``), else 0.0."""
    from curation.answers.verify import format_ok

    return [1.0 if format_ok(completion_text(c)) else 0.0 for c in completions]


# ---------------------------------------------------------------------------- length


def stage_limit(stages: Sequence[Sequence[int]], step: int) -> int:
    """The maximum length in force at ``step``: ``stages`` is ``[[start_step, max_len], ...]`` sorted by start."""
    assert stages, "at least one stage"
    limit = stages[0][1]
    for start, max_len in stages:
        if step >= start:
            limit = max_len
    return int(limit)


def overlong_penalty(length: int, limit: int, soft: int = 0, penalty: float = 1.0) -> float:
    """0 up to ``limit - soft``, then linearly down to ``-penalty`` at ``limit``, ``-penalty`` beyond.

    ``soft = 0`` is the hard cut of PTST (Vision-R1); ``soft > 0`` is DAPO's soft overlong punishment.
    """
    if length > limit:
        return -penalty
    if soft > 0 and length > limit - soft:
        return -penalty * (length - (limit - soft)) / soft
    return 0.0


def make_length_penalty(stages: Sequence[Sequence[int]] | int, *, soft: int = 0, penalty: float = 1.0,
                        name: str = "length_penalty") -> Callable[..., list[float]]:
    """Vision-R1's Progressive Thinking Suppression Training (PTST) as a reward term.

    Vision-R1 (Huang et al., 2025) trains GRPO in stages whose maximum completion length grows
    (4K -> 8K -> 16K tokens) so the policy first learns to reason briefly and correctly, then
    longer. In one GRPO run the same schedule is a penalty: a completion longer than the limit
    of the current stage (``stages = [[start_step, max_len], ...]``, or one int for a fixed
    limit) earns ``-penalty``. Lengths count tokens from TRL's ``completion_ids``; without
    them, characters of the completion text.
    """
    schedule = [[0, int(stages)]] if isinstance(stages, int) else sorted([list(map(int, s)) for s in stages])

    def length_penalty(completions: list, completion_ids: Sequence | None = None, trainer_state: Any = None,
                       **kwargs: Any) -> list[float]:
        step = getattr(trainer_state, "global_step", 0) or 0
        limit = stage_limit(schedule, step)
        lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                   else [len(completion_text(c)) for c in completions])
        return [overlong_penalty(n, limit, soft, penalty) for n in lengths]

    length_penalty.__name__ = length_penalty.__qualname__ = name
    return length_penalty


REWARDS: dict[str, Callable[..., list[float]]] = {"accuracy": accuracy_reward, "format": format_reward}
LENGTH_REWARD = "length"  # built per recipe from its length_stages (make_length_penalty)
REWARD_NAMES = (*REWARDS, LENGTH_REWARD)


def reward_functions(names: Sequence[str], *, length_stages: Sequence[Sequence[int]] | int | None = None,
                     length_soft: int = 0) -> list[Callable[..., list[float]]]:
    """Reward callables by name (``accuracy``, ``format``, ``length``) for a GRPO recipe.

    The length penalty is -1 past the limit; TRL's ``reward_weights`` scale it like every other reward.
    """
    out = []
    for n in names:
        if n == LENGTH_REWARD:
            assert length_stages is not None, "the length reward needs length_stages"
            out.append(make_length_penalty(length_stages, soft=length_soft))
        elif n in REWARDS:
            out.append(REWARDS[n])
        else:
            from curation.errors import SightlineError

            raise SightlineError(f"unknown reward {n!r}; known: {', '.join(REWARD_NAMES)}")
    return out


# ---------------------------------------------------------------------------- judge (open answers)


def make_judge_reward(judge_spec: Any, *, cache_size: int = 100_000, name: str = "judge_accuracy"
                      ) -> Callable[..., list[float]]:
    """Accuracy for every row, with a judge for the ``open`` ones (sentence golds no rule decides).

    Rows whose ``answer_type`` is not ``open`` get ``accuracy_reward``'s rule verdict; open rows are
    judged in one batch per call (``curation.generation.judge.Judge``), each verdict cached by
    (prompt id, sha256 of the completion): GRPO's k completions of a prompt repeat across steps and
    epochs. ``judge_error`` scores 0, like a wrong answer. The function's ``stats`` holds the judge
    calls, cache hits and seconds spent (``judge_stats`` prints calls per second and the hit rate).
    """
    import hashlib
    import time
    from collections import OrderedDict

    from curation.generation.judge import Judge, JudgeItem

    judge = Judge(judge_spec)
    cache: OrderedDict = OrderedDict()
    stats = {"calls": 0, "hits": 0, "seconds": 0.0}

    def judge_accuracy(completions: list, solution: Sequence[str], answer_type: Sequence | None = None,
                       choices: Sequence | None = None, prompt: Sequence | None = None, id: Sequence | None = None,
                       **kwargs: Any) -> list[float]:
        rule = accuracy_reward(completions, solution, choices=choices, answer_type=answer_type)
        todo: dict[tuple, JudgeItem] = {}
        keys: dict[int, tuple] = {}
        for i, c in enumerate(completions):
            if _column(answer_type, i) != "open":
                continue
            text = completion_text(c)
            pid = _column(id, i) or hashlib.sha256(str(_column(prompt, i)).encode()).hexdigest()[:16]
            key = (pid, hashlib.sha256(text.encode()).hexdigest())
            keys[i] = key
            if key in cache:
                stats["hits"] += 1
                cache.move_to_end(key)
            elif key not in todo:
                question = completion_text(_column(prompt, i)) if prompt is not None else ""
                todo[key] = JudgeItem(f"{key[0]}:{key[1][:12]}", question, str(solution[i]), text)
        if todo:
            t = time.perf_counter()
            verdicts = judge.judge(list(todo.values()))
            stats["seconds"] += time.perf_counter() - t
            stats["calls"] += len(todo)
            for key, verdict in zip(todo, verdicts):
                cache[key] = verdict == "judged_correct"
                while len(cache) > cache_size:
                    cache.popitem(last=False)
        return [(1.0 if cache[keys[i]] else 0.0) if i in keys else r for i, r in enumerate(rule)]

    judge_accuracy.stats = stats  # type: ignore[attr-defined]
    judge_accuracy.__name__ = judge_accuracy.__qualname__ = name
    return judge_accuracy


def judge_stats(reward: Callable) -> str:
    """``judge: N calls, X calls/s, cache hit rate Y%`` for a reward made by ``make_judge_reward``."""
    s = getattr(reward, "stats", None) or {"calls": 0, "hits": 0, "seconds": 0.0}
    asked = s["calls"] + s["hits"]
    rate = s["calls"] / s["seconds"] if s["seconds"] > 0 else float("inf") if s["calls"] else 0.0
    return (f"judge: {s['calls']} calls, {rate:.0f} calls/s, cache hit rate "
            f"{100 * s['hits'] / asked if asked else 0:.0f}%")
