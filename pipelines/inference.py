"""The one Beam RunInference model handler: teachers (caption, distill) and the policy (difficulty).

An adapter over ``curation.generation.rollouts``: the backend is loaded once per worker, rows are batched by
``BatchElements`` up to the spec's ``batch_size``, and each batch is generated with the per-row retry
of ``texts_or_errors``. Rows come out as ``PredictionResult(row, {"texts": [...]} or {"error": ...})``.
RunInference's own model-time metrics go to ``<namespace>_<stage>``, which the runner adds to the
stage's counts.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from curation.generation.rollouts import Progress, generator_for, request_for, texts_or_errors
from curation.generation.teachers import TeacherSpec
from schemas.counters import model_namespace


class GenerationHandler(ModelHandler[dict, PredictionResult, Any]):
    """Rows in, ``PredictionResult(row, {"texts"} | {"error"})`` out, for any ``TeacherSpec`` role."""

    def __init__(self, spec: TeacherSpec, progress_every: int = 0):
        super().__init__()
        self.spec = spec
        self.progress = Progress(spec, progress_every)

    def load_model(self):
        return generator_for(self.spec).load()

    def run_inference(self, batch: Sequence[dict], model, inference_args=None) -> Iterable[PredictionResult]:
        outs = texts_or_errors(model, [request_for(row, self.spec) for row in batch])
        line = self.progress.add(len(batch))
        if line:
            print(line, file=sys.stderr, flush=True)
        return [PredictionResult(example=row, inference=o, model_id=self.spec.model_id) for row, o in zip(batch, outs)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.spec.batch_size}

    def get_metrics_namespace(self) -> str:
        return model_namespace(self.spec.stage)

    def share_model_across_processes(self) -> bool:
        return False


