"""Beam RunInference model handler over `curation.teachers`: batched, model loaded once per worker."""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from curation.prompts import CAPTION_PROMPT, distill_prompt
from curation.teachers import Request, TeacherSpec, make_teacher


def build_request(row: dict, spec: TeacherSpec) -> Request:
    if spec.role == "caption":
        return Request(key=row["id"], prompt=CAPTION_PROMPT, image=((row.get("images") or [{}])[0] or {}).get("bytes"),
                       scene=row.get("scene"), n=1)
    return Request(key=row["id"], prompt=distill_prompt(row.get("caption") or "", row["question"], row.get("choices")),
                   scene=row.get("scene"), n=spec.n)


class TeacherHandler(ModelHandler[dict, PredictionResult, Any]):
    """Rows in, PredictionResult(row, {"texts": [...]} or {"error": "..."}) out.

    A batch that fails is retried row by row, so one bad row becomes one reject with its
    reason instead of taking its batch-mates down with it.
    """

    def __init__(self, spec: TeacherSpec, progress_every: int = 0):
        super().__init__()
        self.spec = spec
        self.progress_every = progress_every
        self._done = 0
        self._t0 = None

    def load_model(self):
        return make_teacher(self.spec).load()

    def run_inference(self, batch: Sequence[dict], model, inference_args=None) -> Iterable[PredictionResult]:
        requests = [build_request(r, self.spec) for r in batch]
        try:
            outs = [{"texts": t} for t in model.generate(requests)]
        except Exception:  # isolate the failing rows
            outs = []
            for req in requests:
                try:
                    outs.append({"texts": model.generate([req])[0]})
                except Exception as e:
                    outs.append({"error": f"{type(e).__name__}: {e}"[:2000]})
        self._progress(len(batch))
        return [PredictionResult(example=row, inference=o, model_id=self.spec.model_id) for row, o in zip(batch, outs)]

    def _progress(self, n: int) -> None:
        if not self.progress_every:
            return
        if self._t0 is None:
            self._t0 = time.perf_counter()
        before, self._done = self._done, self._done + n
        if before // self.progress_every != self._done // self.progress_every:
            rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
            print(f"  {self.spec.role}: {self._done} rows ({rate:.0f}/s, {self.spec.model_id})", file=sys.stderr,
                  flush=True)

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.spec.batch_size}

    def get_metrics_namespace(self) -> str:
        return f"sightline_{self.spec.role}"

    def share_model_across_processes(self) -> bool:
        return False
