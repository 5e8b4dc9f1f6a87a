"""Counter names: every count a pipeline keeps is a (stage, outcome) pair, plus a detail for open sets.

Beam's counters are strings, so ``Count(...).name`` writes ``"<stage>.<outcome>"`` or
``"<stage>.<outcome>.<detail>"`` (the detail: a source's name, a split, a trace status, a reason) and
``Count.parse`` reads one back. Nothing else builds or splits a counter name: the DoFns count ``Count``s
and ``curation.accounting`` reads them by stage and outcome, never by a string prefix.
"""
from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

NAMESPACE = "sightline"  # Beam metrics namespace of every count


class Stage(StrEnum):
    """One name per stage, in the order rows meet them (``difficulty``: the later policy pass)."""

    INGEST = "ingest"
    VALIDATE = "validate"
    DEDUP = "dedup"
    DECONTAM = "decontam"
    SPLIT = "split"
    CAPTION = "caption"
    DISTILL = "distill"
    VERIFY = "verify"      # counts traces, not rows
    SELECT = "select"      # counts traces, not rows
    DIFFICULTY = "difficulty"


class Outcome(StrEnum):
    """What happened to a stage's rows (or traces, rollouts, microseconds)."""

    IN = "in"                        # rows the stage met (detail at ingest: the source's name)
    OUT = "out"                      # rows it kept
    REJECTED = "rejected"            # rows it sent to ``rejects``
    SKIPPED = "skipped"              # rows let through untouched (no teacher can serve them)
    FAILED = "failed"                # rows a teacher failed on, let through without its output (detail: why)
    TURNS_LEFT_OUT = "turns_left_out"  # ingest: later chat exchanges a ``turns: first`` source left out
    DUPLICATES = "duplicates"        # dedup: rows dropped as duplicates ...
    EXACT = "exact"                  # ... of which byte-identical image and question
    NEAR = "near"                    # ... of which a confirmed near-copy
    GROUPED_ROWS = "grouped_rows"    # dedup: rows whose image joined a near-copy's split group
    PLACED = "placed"                # split: rows per side (detail: train | val | test)
    KEPT_OUT = "kept_out"            # split: rows kept out of rl/val/test (detail: the reason)
    TRACES = "traces"                # verify: traces checked
    CORRECT = "correct"              # verify: correct traces; difficulty: correct rollouts
    STATUS = "status"                # verify: traces per selection status (detail: the status)
    JUDGED = "judged"                # verify: needs_judge traces a judge decided (detail: the verdict)
    ROLLOUTS = "rollouts"            # difficulty: rollouts sampled
    USECS = "usecs"                  # microseconds inside the stage's rule, summed over workers
    TEACHER_USECS = "teacher_usecs"  # microseconds inside a teacher


class Count(NamedTuple):
    stage: Stage
    outcome: Outcome
    detail: str = ""

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.outcome}" + (f".{self.detail}" if self.detail else "")

    @classmethod
    def parse(cls, name: str) -> Count:
        """The ``Count`` a counter name was written from; ValueError for a name no ``Count`` writes."""
        stage, outcome, *detail = name.split(".", 2)
        return cls(Stage(stage), Outcome(outcome), detail[0] if detail else "")


def model_namespace(stage: Stage | str) -> str:
    """Where Beam's RunInference puts a model stage's timings (a handler's ``get_metrics_namespace``)."""
    return f"{NAMESPACE}_{Stage(stage)}"


def stage_of_model_namespace(namespace: str) -> Stage | None:
    """The stage whose ``model_namespace`` this is, or None for any other namespace."""
    return next((s for s in Stage if model_namespace(s) == namespace), None)


def counts_of(counters: dict[str, int]) -> dict[Count, int]:
    """Beam's ``{counter name: value}`` of our namespace as ``{Count: value}``."""
    return {Count.parse(name): value for name, value in counters.items()}
