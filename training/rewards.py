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

from curation.answers.verify import format_ok, verify
from curation.errors import SightlineError
from curation.generation.judge import Judge, JudgeItem, require_local_model


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
                     length_soft: int = 0, judge: Any = None) -> list[Callable[..., list[float]]]:
    """Reward callables by name (``accuracy``, ``format``, ``length``) for a GRPO recipe.

    The length penalty is -1 past the limit; TRL's ``reward_weights`` scale it like every other reward.
    With ``judge`` (the recipe's ``judge:`` section, a ``JudgeSpec`` whose backend is not ``none``),
    ``accuracy`` is ``make_judge_reward``: the same rule verdict for closed rows, the judge for ``open`` ones.
    """
    out = []
    for n in names:
        if n == "accuracy" and judge is not None and judge.enabled:
            out.append(make_judge_reward(judge))
        elif n == LENGTH_REWARD:
            assert length_stages is not None, "the length reward needs length_stages"
            out.append(make_length_penalty(length_stages, soft=length_soft))
        elif n in REWARDS:
            out.append(REWARDS[n])
        else:
            raise SightlineError(f"unknown reward {n!r}; known: {', '.join(REWARD_NAMES)}")
    return out


# ---------------------------------------------------------------------------- judge (open answers)


def prompt_question(prompt: Any) -> str:
    """The text a prompt asks: a string, or the text parts of the last user turn of a conversational prompt."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict):
        content = prompt.get("content", prompt.get("text"))
        if isinstance(content, str):
            return content
        return "".join(p.get("text") or "" for p in content or [] if isinstance(p, dict) and p.get("type", "text") == "text")
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"] if isinstance(prompt, (list, tuple)) else []
    return prompt_question(users[-1]) if users else ""


def make_judge_reward(judge_spec: Any, *, cache_size: int = 100_000, name: str = "judge_accuracy"
                      ) -> Callable[..., list[float]]:
    """Accuracy for every row, with a judge for the ``open`` ones (sentence golds no rule decides).

    Rows whose ``answer_type`` is not ``open`` get ``accuracy_reward``'s rule verdict; open rows are
    judged in one batch per call (``curation.generation.judge.Judge``), each verdict cached by
    (prompt id, sha256 of the completion): GRPO's k completions of a prompt repeat within a group and
    across steps and epochs, and a repeat is a cache hit (the judge is not asked twice). ``judge_error``
    scores 0, like a wrong answer. The function's ``stats`` holds the judge calls, cache hits and
    seconds spent (``judge_stats`` prints calls per second and the hit rate, ``judge_record`` is the
    JSON a run writes); inside GRPO each call logs ``judge/calls`` and ``judge/cache_hit_rate`` through
    TRL's ``log_metric``.
    """
    import hashlib
    import time
    from collections import OrderedDict

    require_local_model(judge_spec)  # a missing judge fails here, before any training step
    judge = Judge(judge_spec)
    cache: OrderedDict = OrderedDict()
    stats = {"judge": judge_spec.judge_id, "calls": 0, "hits": 0, "seconds": 0.0, "errors": 0, "last_error": None}

    def judge_accuracy(completions: list, solution: Sequence[str], answer_type: Sequence | None = None,
                       choices: Sequence | None = None, prompts: Sequence | None = None, id: Sequence | None = None,
                       prompt: Sequence | None = None, log_metric: Callable | None = None,
                       **kwargs: Any) -> list[float]:
        prompts = prompts if prompts is not None else prompt  # TRL passes `prompts`; a dataset row has `prompt`
        rule = accuracy_reward(completions, solution, choices=choices, answer_type=answer_type)
        todo: dict[tuple, JudgeItem] = {}
        keys: dict[int, tuple] = {}
        verdicts: dict[tuple, bool] = {}
        hits = 0
        for i, c in enumerate(completions):
            if _column(answer_type, i) != "open":
                continue
            text = completion_text(c)
            question = prompt_question(_column(prompts, i))
            pid = _column(id, i) or hashlib.sha256(question.encode()).hexdigest()[:16]
            key = (pid, hashlib.sha256(text.encode()).hexdigest())
            keys[i] = key
            if key in cache:
                hits += 1
                verdicts[key] = cache[key]
                cache.move_to_end(key)
            elif key in todo:
                hits += 1  # the same completion twice in one group: judged once
            else:
                chs = _column(choices, i)
                todo[key] = JudgeItem(f"{key[0]}:{key[1][:12]}", question, str(solution[i]), text,
                                      tuple(chs) if chs else None)
        if todo:
            t = time.perf_counter()
            for key, verdict in zip(todo, judge.judge(list(todo.values())), strict=True):
                verdicts[key] = cache[key] = verdict == "judged_correct"
                stats["errors"] += verdict == "judge_error"
                while len(cache) > cache_size:
                    cache.popitem(last=False)
            stats["seconds"] += time.perf_counter() - t
            stats["last_error"] = judge.last_error
        stats["calls"] += len(todo)
        stats["hits"] += hits
        if log_metric is not None and keys:
            log_metric("judge/calls", float(len(todo)))
            log_metric("judge/cache_hit_rate", hits / len(keys))
        return [(1.0 if verdicts[keys[i]] else 0.0) if i in keys else r
                for i, r in enumerate(rule)]

    judge_accuracy.stats = stats  # type: ignore[attr-defined]
    judge_accuracy.__name__ = judge_accuracy.__qualname__ = name
    return judge_accuracy


def judge_record(reward: Callable) -> dict:
    """A judge reward's totals as a run records them: the judge, calls, cache hits, calls/s, hit rate, and the
    judgments that came back ``judge_error`` (with the latest failure's message, when a batch failed)."""
    s = getattr(reward, "stats", None) or {"judge": None, "calls": 0, "hits": 0, "seconds": 0.0}
    asked = s["calls"] + s["hits"]
    return {"judge": s.get("judge"), "calls": s["calls"], "cache_hits": s["hits"],
            "calls_per_s": round(s["calls"] / s["seconds"], 1) if s["seconds"] > 0 else None,
            "cache_hit_rate": round(s["hits"] / asked, 4) if asked else None, "seconds": round(s["seconds"], 3),
            "judge_errors": s.get("errors", 0), "last_error": s.get("last_error")}


def judge_stats(reward: Callable) -> str:
    """``judge <id>: N calls, X calls/s, cache hit rate Y%[, E judge errors (last: ...)]`` for a reward made by
    ``make_judge_reward``."""
    r = judge_record(reward)
    rate = f"{r['calls_per_s']:.0f}" if r["calls_per_s"] is not None else "-"
    hit = f"{100 * r['cache_hit_rate']:.0f}%" if r["cache_hit_rate"] is not None else "-"
    errors = (f", {r['judge_errors']} judge errors" + (f" (last failure: {r['last_error']})" if r["last_error"] else "")
              if r["judge_errors"] else "")
    return f"judge {r['judge']}: {r['calls']} calls, {rate} calls/s, cache hit rate {hit}{errors}"
