"""Generation for every caller that samples a model over rows: the caption and distill teachers and the
policy's k rollouts per rl prompt (the difficulty pass) share this code.

- ``generator_for(spec)``: the backend of a ``TeacherSpec`` (``curation.generation.teachers``' program,
  transformers and vllm backends; for the ``policy`` role's transformers backend and the ``policy``
  distill backend, ``PolicyRollouts``, which samples exactly as evaluation decodes:
  ``curation.generation.models.generate_texts``).
- ``request_for(row, spec)``: a row as the backend's ``Request`` (teachers' prompts; the rl row's own
  conversation and images for the policy; the student's turn and images for the policy as reasoner).
- ``texts_or_errors(generator, requests)``: one batched call; a failing batch is retried request by
  request, so one bad row becomes one ``{"error": ...}`` (a reject with its reason downstream) instead
  of taking its batch-mates down with it.
- ``Progress``: the periodic progress line of a long generation stage.

The Beam adapter over these is ``pipelines/inference.py``; nothing here imports Beam.
"""
from __future__ import annotations

import hashlib
import time

from curation.generation.prompts import CAPTION_PROMPT, distill_prompt, user_message
from curation.generation.teachers import Request, TeacherSpec, check_image_parts, make_teacher

ERROR_CHARS = 2000  # an error detail long enough to debug, short enough for a rejects row


def request_for(row: dict, spec: TeacherSpec) -> Request:
    """The request ``spec``'s backend answers for ``row`` (an examples row for teachers, an rl row for the policy)."""
    if spec.role == "caption":
        return Request(key=row["id"], prompt=CAPTION_PROMPT, image=((row.get("images") or [{}])[0] or {}).get("bytes"),
                       scene=row.get("scene"), n=1)
    if spec.role == "distill" and spec.reads_image:  # the policy as reasoner: the student's own turn and images
        return Request(key=row["id"], messages=[user_message(row["question"], row.get("choices"),
                                                             n_images=len(row["images"]))],
                       images=tuple(im.get("bytes") for im in row["images"]), n=spec.n)
    if spec.role == "distill":
        return Request(key=row["id"], prompt=distill_prompt(row.get("caption") or "", row["question"],
                                                            row.get("choices")), scene=row.get("scene"), n=spec.n)
    return Request(key=row["id"], messages=row["prompt"], images=tuple(im.get("bytes") for im in row.get("images") or []),
                   n=spec.n)


def texts_or_errors(generator, requests: list[Request]) -> list[dict]:
    """``{"texts": [...]}`` per request, or ``{"error": "Type: message"}`` for a request that fails alone."""
    try:
        return [{"texts": t} for t in generator.generate(requests)]
    except Exception as e:  # noqa: BLE001 - isolate the failing rows
        if len(requests) == 1:
            return [{"error": f"{type(e).__name__}: {e}"[:ERROR_CHARS]}]
    out = []
    for request in requests:
        out += texts_or_errors(generator, [request])
    return out


class Progress:
    """Counts rows through a generation stage; ``add`` returns a line each time ``every`` more are done."""

    def __init__(self, spec: TeacherSpec, every: int):
        self.spec, self.every = spec, every
        self.done, self.started = 0, None

    def add(self, n: int) -> str | None:
        self.started = self.started or time.perf_counter()
        before, self.done = self.done, self.done + n
        if not self.every or before // self.every == self.done // self.every:
            return None
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        samples = f" x {self.spec.n} samples" if self.spec.n > 1 else ""
        return f"  {self.spec.stage}: {self.done} rows{samples} ({rate:.1f} rows/s, {self.spec.model_id})"


class PolicyRollouts:
    """The policy on transformers: ``spec.n`` sampled completions per rl prompt, batched.

    Prompts are rendered and decoded by ``curation.generation.models.generate_texts``, as evaluation scores a
    checkpoint, and sampled as GRPO's rollouts are (temperature, top_p, no top-k). Sampling is seeded
    per batch (spec seed + a hash of the batch's first id), so a re-run gives the same texts.
    """

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.model = self.processor = None

    def load(self) -> PolicyRollouts:
        from curation.generation.models import load_model_and_processor

        self.model, self.processor = load_model_and_processor(self.spec.model, dtype=self.spec.dtype,
                                                              device=self.spec.device,
                                                              trust_remote_code=self.spec.trust_remote_code)
        return self

    def generate(self, requests: list[Request]) -> list[list[str]]:
        import io

        import torch
        from PIL import Image

        from curation.generation.models import generate_texts

        for r in requests:
            check_image_parts(r)
        images = [[Image.open(io.BytesIO(b)).convert("RGB") for b in r.images] for r in requests]
        k = self.spec.n
        torch.manual_seed(self.spec.seed + int(hashlib.sha256(requests[0].key.encode()).hexdigest()[:8], 16))
        sampling = ({"do_sample": True, "temperature": self.spec.temperature, "top_p": self.spec.top_p, "top_k": 0}
                    if self.spec.temperature > 0 else {})  # temperature 0: greedy, as evaluation decodes
        texts = generate_texts(self.model, self.processor, [r.messages for r in requests], images,
                               max_new_tokens=self.spec.max_new_tokens, batch_size=len(requests), progress=False,
                               num_return_sequences=k, **sampling)
        assert len(texts) == k * len(requests), "generate returned the wrong number of sequences"
        return [texts[i * k:(i + 1) * k] for i in range(len(requests))]  # prompt-major, as HF returns them


def generator_for(spec: TeacherSpec):
    """The (unloaded) backend that serves ``spec``; ``.load()`` it once per worker."""
    if (spec.role == "policy" and spec.backend == "transformers") or spec.backend == "policy":
        return PolicyRollouts(spec)
    return make_teacher(spec)
