"""A judge for open answers: does a response mean what a sentence-length gold says?

No rule decides an ``open`` gold ("The dog is asleep on the sofa."); the frameworks people use for
multimodal RL wire a generative judge for these (verl's generative reward model behind a server,
EasyR1's custom ``compute_score``, OpenMMReasoner's judge in answer verification). Here the judge is
one more generation backend:

- ``transformers`` / ``vllm``: a local instruction model reads one fixed prompt (``JUDGE_PROMPT``,
  versioned as ``JUDGE_PROMPT_VERSION`` and recorded in the manifest), greedy (temperature 0:
  deterministic), batched, and must answer with one word. The verdict is parsed strictly:
  anything but ``CORRECT`` or ``WRONG`` is ``judge_error``, which is never counted correct.
- ``program``: a judge written as a program for templated sentence golds (the synthetic families):
  the response's final answer must be what the gold sentence states (its number, its yes / no, its
  option), like the program teachers it needs no model; a gold it cannot read is ``judge_error``.
- ``none`` (the default): no judge; open rows stay out of rl / val / test.

Verdicts: ``judged_correct``, ``judged_wrong``, ``judge_error``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from curation.answers import readers
from curation.answers.numeric import read_number
from curation.answers.verify import extract_answer, verify
from curation.errors import SightlineError
from curation.generation.teachers import Request, TeacherSpec, make_teacher

JUDGE_BACKENDS = ("none", "program", "transformers", "vllm")
JUDGE_PROMPT_VERSION = "judge-v1"
JUDGE_PROMPT = (
    "You are grading an answer to a question about an image. You cannot see the image; the reference "
    "answer is correct.\n\n"
    "Question: {question}\n"
    "Reference answer: {gold}\n"
    "Candidate answer: {answer}\n\n"
    "Does the candidate answer say the same thing as the reference answer? Extra detail that does not "
    "contradict the reference is fine; a different or missing key fact is wrong.\n"
    "Reply with exactly one word: CORRECT or WRONG.")
VERDICTS = ("judged_correct", "judged_wrong", "judge_error")
MAX_ANSWER_CHARS = 4000  # a longer response is cut (from the start: its final answer sits at the end)
_WORD = re.compile(r"[*_`\"'\s.:!]*(CORRECT|WRONG)[*_`\"'\s.:!]*", re.IGNORECASE)


@dataclass
class JudgeSpec(TeacherSpec):
    """The ``judge:`` section of the data and train recipes (a teacher's keys, less the sampling ones: a judge
    is greedy and writes one verdict)."""
    role: str = field(default="judge", init=False)
    backend: str = field(default="none", metadata={
        "help": "none | program (templated sentence golds, no model) | transformers | vllm"})
    model: str | None = field(default=None, metadata={
        "help": "local checkpoint folder of an instruction model (transformers, vllm); nothing is downloaded"})
    n: int = field(default=1, init=False)
    temperature: float = field(default=0.0, metadata={"help": "must be 0: a judge is deterministic (greedy)"})
    top_p: float = field(default=1.0, init=False)
    max_new_tokens: int = field(default=8, metadata={"help": "tokens for the one-word verdict (CORRECT / WRONG)"})
    batch_size: int = field(default=16, metadata={"help": "judgments per generate call"})
    error_rate: float = field(default=0.0, init=False)
    seed: int = field(default=0, init=False)
    dtype: str | None = field(default=None, metadata={"help": "weights dtype: None (float32), auto, bfloat16"})
    device: str | None = field(default=None, metadata={"help": "transformers: cpu, cuda or None (auto)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code shipped in the checkpoint folder"})
    engine_args: dict = field(default_factory=dict, metadata={
        "help": "vllm: extra vllm.LLM(...) arguments, e.g. {max_model_len: 4096, gpu_memory_utilization: 0.25}"})

    def check(self) -> None:
        if self.backend not in JUDGE_BACKENDS:
            raise SightlineError(f"judge: backend must be one of {', '.join(JUDGE_BACKENDS)}, got {self.backend!r}")
        if self.temperature != 0:
            raise SightlineError("judge: temperature must be 0 (a judge is deterministic)")
        if self.backend in ("transformers", "vllm") and not self.model:
            raise SightlineError(f"judge: backend {self.backend!r} needs `model:` (a local checkpoint path)")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise SightlineError("judge: batch_size and max_new_tokens must be >= 1")

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    @property
    def judge_id(self) -> str:
        """What is recorded per trace and in the manifest: backend, model and prompt version."""
        what = "program" if self.backend == "program" else f"{self.backend}:{self.model}"
        return f"{what}@{JUDGE_PROMPT_VERSION}"

    def record(self, prompt_version: str = JUDGE_PROMPT_VERSION) -> dict:
        return {"backend": self.backend, "model": self.model if self.backend in ("transformers", "vllm") else None,
                "prompt_version": prompt_version, "prompt": JUDGE_PROMPT if self.enabled else None,
                "sampling": {"temperature": 0.0, "max_new_tokens": self.max_new_tokens}}


@dataclass(frozen=True)
class JudgeItem:
    key: str                          # stable id (row id + answer hash): seeds nothing, names the request
    question: str
    gold: str
    answer: str
    choices: tuple[str, ...] | None = None


def parse_verdict(text: str | None) -> str:
    """``judged_correct`` / ``judged_wrong`` for a reply that is the one word (markdown and a full stop
    allowed), else ``judge_error``: a reply that says more is not read for a verdict."""
    if not isinstance(text, str):
        return "judge_error"
    m = _WORD.fullmatch(text.strip())
    if m is None:
        return "judge_error"
    return "judged_correct" if m.group(1).upper() == "CORRECT" else "judged_wrong"


def judge_prompt(item: JudgeItem) -> str:
    answer = item.answer if len(item.answer) <= MAX_ANSWER_CHARS else item.answer[-MAX_ANSWER_CHARS:]
    final = extract_answer(answer)
    shown = final if final is not None and len(answer) > 400 else answer  # long traces: the final answer
    return JUDGE_PROMPT.format(question=item.question.strip(), gold=item.gold.strip(), answer=shown.strip())


# ---------------------------------------------------------------------------- the program judge

_NUMBER_TOKEN = re.compile(r"-?\d+(?:[.,]\d+)?%?")
_MATH = re.compile(r"\$([^$]+)\$")


def program_verdict(item: JudgeItem) -> str:
    """Whether the response's final answer is what the gold sentence states (see module doc)."""
    final = extract_answer(item.answer)
    if final is None or not final.strip():
        return "judged_wrong"
    final = final.strip()
    gold = item.gold.strip()
    if verify(item.answer, gold, choices=list(item.choices) if item.choices else None).correct:
        return "judged_correct"  # a short gold after all, or the whole sentence given back
    choices = list(item.choices) if item.choices else None
    if choices:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:len(choices)]
        picked = readers.read_choice(final, choices, letters)
        stated = [c for c in choices if _states(gold, c)]
        if len(stated) != 1:
            return "judge_error"
        return "judged_correct" if picked is not None and choices[letters.index(picked)] == stated[0] \
            else "judged_wrong"
    polarity = readers.gold_yes_no(final)
    if polarity is not None:
        said = readers.read_yes_no(gold)
        if said is None:
            return "judge_error"
        return "judged_correct" if said == polarity else "judged_wrong"
    if read_number(final) is not None:
        found = _MATH.findall(gold) or _NUMBER_TOKEN.findall(gold) or \
            [w for w in readers.normalize_text(gold).split() if w.isdigit()]  # "five" -> "5"
        distinct = {f.strip() for f in found}
        if len(distinct) != 1:
            return "judge_error"  # no value, or several: no rule reads which one is the answer
        value = distinct.pop()
        return "judged_correct" if verify(f"<answer>{final}</answer>", value).correct else "judged_wrong"
    return "judged_correct" if _states(gold, final) else "judged_wrong"


def _states(sentence: str, phrase: str) -> bool:
    """The sentence contains the phrase as whole words, not negated."""
    words = readers.normalize_text(sentence).split()
    target = readers.normalize_text(phrase).split()
    if not target or readers.NEGATION.search(sentence.lower()):
        return False
    return any(words[i:i + len(target)] == target for i in range(len(words) - len(target) + 1))


# ---------------------------------------------------------------------------- judges


def require_local_model(spec: JudgeSpec) -> None:
    """A model judge that runs in this process (GRPO's reward, eval) needs its folder here: checked before a trainer
    or an evaluation starts, not at its first verdict. (The curate graph's judge runs on the workers, where a
    cloud runner's model lives: ``pipelines.curate.run`` checks a local ``transformers`` one.)"""
    if spec.enabled and spec.backend in ("transformers", "vllm") and not Path(spec.model).exists():
        raise SightlineError(f"judge: model path {spec.model} does not exist (a local checkpoint folder)")


class Judge:
    """Batched verdicts from one ``JudgeSpec``; model backends load once (``load``)."""

    def __init__(self, spec: JudgeSpec):
        spec.check()
        if not spec.enabled:
            raise SightlineError("judge: backend is none")
        self.spec = spec
        self.backend = None
        self.failed_batches = 0            # generate calls that raised (a batch, then its items one by one)
        self.last_error: str | None = None  # the latest such failure, "Type: message" (said once per kind)

    def load(self) -> Judge:
        if self.spec.backend in ("transformers", "vllm") and self.backend is None:
            self.backend = make_teacher(self.spec).load()
        return self

    def judge(self, items: list[JudgeItem]) -> list[str]:
        """One verdict per item, in order. A batch that fails is retried item by item, so only the items that
        fail alone (e.g. a prompt past the engine's context) are ``judge_error``."""
        if self.spec.backend == "program":
            return [program_verdict(it) for it in items]
        self.load()
        out: list[str] = []
        size = self.spec.batch_size
        for start in range(0, len(items), size):
            batch = items[start:start + size]
            verdicts = self._generate(batch)
            if verdicts is None:
                verdicts = [(self._generate([it]) or ["judge_error"])[0] for it in batch] if len(batch) > 1 \
                    else ["judge_error"]
            out += verdicts
        return out

    def _generate(self, batch: list[JudgeItem]) -> list[str] | None:
        try:
            texts = self.backend.generate([Request(key=it.key, prompt=judge_prompt(it)) for it in batch])
        except Exception as e:  # noqa: BLE001 -- a judge failure is a verdict (judge_error), never a crash
            self._failed(e, len(batch))
            return None
        return [parse_verdict((t or [""])[0]) for t in texts]

    def _failed(self, error: Exception, n: int) -> None:
        """Count a failed batch and say the first of each kind, so judge_error never hides its cause."""
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:300]
        first = self.last_error is None or not self.last_error.startswith(type(error).__name__)
        self.failed_batches += 1
        self.last_error = message
        if first:
            logging.getLogger("sightline.judge").warning(
                "judge %s: a batch of %d failed (%s); its items are judge_error", self.spec.judge_id, n, message)


# ---------------------------------------------------------------------------- the verify stage


def judge_traces(traces: list[dict], judge: Judge | None) -> list[dict]:
    """The verify stage's second opinion: each trace whose rule verdict is ``needs_judge`` (an ``open`` gold)
    gets the judge's verdict, in one batch: ``correct`` is True only for ``judged_correct``, ``verdict_reason``
    becomes the verdict and ``judge`` the judge's id. Other traces, and all of them without a judge, are
    left as the rule wrote them (``judge`` None)."""
    for t in traces:
        t.setdefault("judge", None)
    todo = [t for t in traces if t.get("verdict_reason") == "needs_judge"]
    if judge is None or not todo:
        return traces
    items = [JudgeItem(t["trace_id"], t.get("question") or "", t["answer"], t["trace"] or "",
                       tuple(t["choices"]) if t.get("choices") else None) for t in todo]
    for t, verdict in zip(todo, judge.judge(items), strict=True):
        t.update(correct=verdict == "judged_correct", verdict_reason=verdict, judge=judge.spec.judge_id)
    return traces


__all__ = ["JUDGE_BACKENDS", "JUDGE_PROMPT", "JUDGE_PROMPT_VERSION", "VERDICTS", "Judge", "JudgeItem",
           "JudgeSpec", "judge_prompt", "judge_traces", "parse_verdict", "program_verdict", "require_local_model"]
