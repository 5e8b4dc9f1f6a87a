"""Generation backends behind one interface: batched requests in, n texts per request out.

- ``program``: exact captions and templated chain-of-thought written from the synthetic
  generator's scene (a real teacher for synthetic data, like CLEVR programs or MAVIS).
- ``transformers``: any local VLM / LLM checkpoint path, CPU or GPU, batched ``generate``.
- ``vllm``: offline ``vllm.LLM`` engine (GPU: optional extra ``sightline[vllm]``; CPU, text only:
  ``vllm-cpu`` in its own venv, ``scripts/setup_vllm_cpu.sh``).

The same backends serve the ``policy`` role (the difficulty pass: k sampled rollouts of a trained
policy per rl prompt), whose requests carry the whole student conversation (``Request.messages``);
``curation.generation.rollouts`` adds the policy's transformers backend, the per-row retry and the progress
line that every caller shares. Backends are created from a spec (picklable) and load their model
lazily in ``load()`` so a Beam worker loads it once (``pipelines/inference.py``).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from curation.errors import SightlineError
from curation.generation.prompts import neutralise_control_tokens
from curation.synthetic import caption_from_scene, solution_from_scene

# caption and distill teachers write the data; the policy is the model being trained, sampled k times
# per rl prompt by the difficulty pass
ROLES = ("caption", "distill", "policy")
STAGE_OF_ROLE = {"caption": "caption", "distill": "distill", "policy": "difficulty", "judge": "verify"}
# none: the stage is skipped (no captions / no traces; examples, rl, val and test are still written);
# policy (distill only): a VLM policy checkpoint answers the student prompt with the image itself, no caption
BACKENDS = ("program", "transformers", "vllm", "policy", "none")
POLICY_BACKENDS = ("transformers", "vllm")
# the weight files of a checkpoint folder, as transformers writes them (sharded or not)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
HASH_CHARS = 12


@dataclass(frozen=True)
class Request:
    key: str                      # stable id (example id): seeds sampling deterministically
    prompt: str = ""              # the user message text (teachers)
    image: bytes | None = None    # for a captioning VLM
    scene: str | None = None      # for the program teachers
    n: int = 1                    # samples wanted
    messages: list | None = None  # a whole conversation instead of ``prompt`` (the policy's rl prompt);
    images: tuple = ()            # its ``{"type": "image"}`` parts are these image bytes, in order


@dataclass
class TeacherSpec:
    """What a teacher is; recorded per row and in the manifest."""
    role: str
    backend: str = "program"
    model: str | None = None              # local checkpoint path for transformers / vllm
    n: int = 1                            # samples per request (reasoner)
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int = 8
    error_rate: float = 0.0               # program reasoner only: share of deliberately wrong traces
    seed: int = 0
    dtype: str | None = None
    device: str | None = None
    trust_remote_code: bool = False
    engine_args: dict = field(default_factory=dict)  # extra vllm.LLM(...) arguments

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        if self.role not in ROLES:
            raise SightlineError(f"teacher role must be one of {ROLES}, got {self.role!r}")
        if self.backend not in BACKENDS:
            raise SightlineError(f"{self.role} teacher: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.role == "policy" and self.backend not in POLICY_BACKENDS:
            raise SightlineError(f"policy: backend must be one of {', '.join(POLICY_BACKENDS)}, got {self.backend!r}")
        if self.backend == "policy" and self.role != "distill":
            raise SightlineError(f"{self.role} teacher: backend 'policy' is a reasoning teacher (distill) only")
        if self.backend not in ("program", "none") and not self.model:
            raise SightlineError(f"{self.role} teacher: backend {self.backend!r} needs `model:` (a local checkpoint path)")
        if self.n < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise SightlineError(f"{self.role} teacher: n, batch_size and max_new_tokens must be >= 1")
        if self.backend not in ("program", "none") and self.temperature == 0 and self.n > 1:
            raise SightlineError(f"{self.role} teacher: temperature 0 (greedy) writes one text per row; set n: 1 "
                                 f"or a temperature above 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise SightlineError(f"{self.role} teacher: error_rate must be in [0, 1]")

    @property
    def stage(self) -> str:
        """The pipeline stage this generator serves (its counters and rejects are named after it)."""
        return STAGE_OF_ROLE[self.role]

    @property
    def reads_image(self) -> bool:
        """Does this reasoning teacher read the image itself (the student prompt, no caption, no rewrite)?"""
        return self.backend == "policy"

    @property
    def model_id(self) -> str:
        if self.backend == "none":
            return "none"
        if self.backend == "program":
            return "program:caption" if self.role == "caption" else f"program:solution(error_rate={self.error_rate:g})"
        if self.backend == "policy":
            return policy_id(self.model)
        return f"{self.backend}:{self.model}"

    def sampling(self) -> dict:
        if self.backend == "program":
            return {"n": self.n, "error_rate": self.error_rate, "seed": self.seed}
        return {"n": self.n, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed}

    def record(self, prompt_version: str) -> dict:
        out = {"backend": self.backend, "model": self.model_id, "prompt_version": prompt_version,
               "sampling": self.sampling()}
        if self.backend == "policy":
            out |= {"path": str(self.model), "content_hash": checkpoint_hash(self.model)}
        return out


# ---------------------------------------------------------------- a checkpoint as a teacher


def weight_files(path: str | Path) -> list[Path]:
    """The weight files of a checkpoint folder, sorted by name (optimizer and trainer state excluded)."""
    folder = Path(path)
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES
                   and not f.name.startswith(("optimizer", "scheduler", "rng_state", "training_args")))
    if not files:
        raise ValueError(f"{folder} has no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    return files


@lru_cache(maxsize=16)
def _hash(files: tuple[tuple[str, str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, full, size, _ in files:
        h.update(f"{name}\x00{size}\x00".encode())
        with open(full, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def checkpoint_hash(path: str | Path) -> str:
    """sha256 over the checkpoint's weight files (names, sizes and bytes, in name order).

    Cached per (file, size, mtime), so asking again for an unchanged checkpoint reads nothing.
    """
    return _hash(tuple((f.name, str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in weight_files(path)))


def policy_id(path: str | Path) -> str:
    """``policy:<checkpoint folder name>@<first 12 hex of checkpoint_hash>``: the teacher of a policy's traces.

    A re-trained checkpoint saved in the same folder is another teacher, so lineage names the weights.
    """
    return f"policy:{Path(path).resolve().name}@{checkpoint_hash(path)[:HASH_CHARS]}"


def _rng(seed: int, key: str, i: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{i}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ProgramTeacher:
    """Captions and solutions computed from the scene JSON of synthetic examples."""

    def __init__(self, spec: TeacherSpec):
        self.spec = spec

    def load(self) -> ProgramTeacher:
        return self

    def generate(self, requests: list[Request]) -> list[list[str]]:
        out = []
        for r in requests:
            if not r.scene:
                raise ValueError("program teacher needs a synthetic scene (use a model teacher for real sources)")
            if self.spec.role == "caption":
                out.append([caption_from_scene(r.scene)])
            else:
                out.append([solution_from_scene(r.scene, error_rate=self.spec.error_rate,
                                                rng=_rng(self.spec.seed, r.key, i)) for i in range(r.n)])
        return out


class TransformersTeacher:
    """A local checkpoint through transformers: a VLM (captions, images) or a text LLM (reasoning)."""

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.model = self.processor = self.tokenizer = None

    def load(self) -> TransformersTeacher:
        from pathlib import Path

        import torch  # noqa: F401
        from transformers import AutoConfig

        path = Path(self.spec.model)
        if not (path / "config.json").is_file():
            raise SightlineError(f"{self.spec.role} teacher: {path} is not a local checkpoint (no config.json)")
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=self.spec.trust_remote_code)
        if "vl" in cfg.model_type:  # Qwen2-VL / Qwen2.5-VL and the tiny model
            from curation.generation.models import load_model_and_processor

            self.model, self.processor = load_model_and_processor(
                path, dtype=self.spec.dtype, device=self.spec.device, trust_remote_code=self.spec.trust_remote_code)
            self.tokenizer = self.processor.tokenizer
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=self.spec.trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=self.spec.dtype or "auto", trust_remote_code=self.spec.trust_remote_code)
            if self.spec.device:
                self.model.to(self.spec.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        return self

    def _inputs(self, requests: list[Request]):
        import io

        from PIL import Image

        with_image = self.processor is not None and any(r.image for r in requests)
        texts, images = [], []
        for r in requests:
            content = ([{"type": "image"}] if with_image and r.image else []) + [{"type": "text", "text": r.prompt}]
            msgs = [{"role": "user", "content": content if self.processor is not None else r.prompt}]
            tmpl = self.processor if self.processor is not None else self.tokenizer
            texts.append(tmpl.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
            if with_image and r.image:
                images.append(Image.open(io.BytesIO(r.image)).convert("RGB"))
        if self.processor is not None:
            self.processor.tokenizer.padding_side = "left"
            return self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        return self.tokenizer(texts, return_tensors="pt", padding=True)

    def generate(self, requests: list[Request]) -> list[list[str]]:
        import torch

        n = max(r.n for r in requests)
        inputs = self._inputs(requests).to(self.model.device)
        torch.manual_seed(self.spec.seed + int(hashlib.sha256(requests[0].key.encode()).hexdigest()[:8], 16))
        sample = self.spec.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                **inputs, max_new_tokens=self.spec.max_new_tokens, do_sample=sample,
                temperature=self.spec.temperature if sample else None, top_p=self.spec.top_p if sample else None,
                num_return_sequences=n, pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        vocab = self.tokenizer.get_vocab()
        ends = {self.tokenizer.eos_token_id, vocab.get("<|im_end|>")} - {None}
        cleaned = []
        for ids in new.tolist():  # up to the end of the turn, special tokens skipped, look-alikes neutralised
            cut = next((j for j, tok in enumerate(ids) if tok in ends), len(ids))
            text = self.tokenizer.decode(ids[:cut], skip_special_tokens=True)
            cleaned.append(neutralise_control_tokens(text).strip())
        return [cleaned[i * n:(i * n) + r.n] for i, r in enumerate(requests)]


class VLLMTeacher:
    """Offline ``vllm.LLM`` engine, loaded once per worker; multimodal prompts pass the image.

    GPU: the registry's ``vllm``. CPU: ``vllm-cpu`` in its own venv (``scripts/setup_vllm_cpu.sh``),
    text models only there (vLLM's Qwen2-VL needs torchvision, which has no CPU build here).
    Each request gets its own ``SamplingParams``: ``n`` from the request and a seed derived from
    (spec seed, request key), so a row's samples do not depend on its batch-mates and two rows
    with the same prompt still get different samples (vLLM gives sample i the seed + i).
    """

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.llm = None

    def load(self) -> VLLMTeacher:
        try:
            from vllm import LLM
        except ImportError as e:
            raise SightlineError("backend 'vllm' needs the extra: pip install -e '.[vllm]' (GPU machines; "
                                 "CPU, text models only: scripts/setup_vllm_cpu.sh)") from e
        args = {"model": self.spec.model, "trust_remote_code": self.spec.trust_remote_code, "seed": self.spec.seed}
        if self.spec.dtype:
            args["dtype"] = self.spec.dtype
        args.update(self.spec.engine_args)
        self.llm = LLM(**args)
        return self

    def request_seed(self, key: str) -> int:
        return int(hashlib.sha256(f"{self.spec.seed}\x00{key}".encode()).hexdigest()[:8], 16)

    def sampling_params(self, request: Request | None = None):
        from vllm import SamplingParams

        n, seed = (self.spec.n, self.spec.seed) if request is None else (request.n, self.request_seed(request.key))
        return SamplingParams(n=n, temperature=self.spec.temperature, top_p=self.spec.top_p,
                              max_tokens=self.spec.max_new_tokens, seed=seed)

    def generate(self, requests: list[Request]) -> list[list[str]]:
        outs = self.llm.chat([vllm_conversation(r) for r in requests], [self.sampling_params(r) for r in requests],
                             use_tqdm=False)
        return [[neutralise_control_tokens(o.text).strip() for o in out.outputs][:r.n]
                for out, r in zip(outs, requests)]


def _rgb(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def check_image_parts(r: Request) -> None:
    """A conversation's image placeholders and its images must pair up one to one."""
    parts = sum(1 for m in r.messages or [] if isinstance(m["content"], list)
                for p in m["content"] if p.get("type") == "image")
    if parts != len(r.images):
        raise ValueError(f"the prompt has {parts} image parts but the row has {len(r.images)} images")


def vllm_conversation(r: Request) -> list[dict]:
    """vLLM's chat format: image parts as PIL images (``image_pil``), in the order the prompt places them."""
    if r.messages is None:
        content: Any = r.prompt
        if r.image:  # a PIL image part, then the text
            content = [{"type": "image_pil", "image_pil": _rgb(r.image)}, {"type": "text", "text": r.prompt}]
        return [{"role": "user", "content": content}]
    check_image_parts(r)
    images = iter(r.images)
    conversation = []
    for m in r.messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image_pil", "image_pil": _rgb(next(images))} if p.get("type") == "image"
                       else {"type": "text", "text": p.get("text") or ""} for p in content]
        conversation.append({"role": m["role"], "content": content})
    return conversation


def make_teacher(spec: TeacherSpec):
    return {"program": ProgramTeacher, "transformers": TransformersTeacher, "vllm": VLLMTeacher}[spec.backend](spec)
