"""The data recipe (`sightline data --config F --set k=v`): one typed object for the curate pipeline.

Loaded by ``curation.loader.load`` like every other recipe: an unknown key or a bad value is one
line naming it, raised before anything is read or written. Sections are the stages' own config
classes (``ValidateConfig``, ``TeacherSpec``, ``SelectConfig``, ...), passed to them as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curation.errors import SightlineError
from curation.generation.distill import SelectConfig
from curation.generation.judge import JudgeSpec
from curation.generation.teachers import TeacherSpec
from curation.images.validate import ValidateConfig
from curation.loader import apply_overrides, build, read_yaml
from curation.sources import validate_spec
from curation.images.hashes import DEFAULT_THRESHOLD

DEDUP_SCOPES = ("question", "question_answer", "image")


@dataclass
class SyntheticConfig:
    n: int = field(default=0, metadata={"help": "synthetic problems to generate (0: none)"})
    seed: int = field(default=0, metadata={"help": "generator seed: row i is the same for the same seed"})
    image_size: int = field(default=112, metadata={"help": "rendered image side in pixels"})
    families: list[str] | None = field(default=None, metadata={"help": "task families (None: all)"})
    level: int | list[int] | None = field(default=None, metadata={
        "help": "difficulty 1..3, or [low, high], or None for 1..3"})
    chunk: int = field(default=250, metadata={"help": "rows generated per Beam element"})
    open_share: float = field(default=0.0, metadata={
        "help": "share of rows whose gold is a sentence (answer_type open, learnable only with a judge); the "
                "program teachers still answer them"})


@dataclass
class IngestConfig:
    max_reject_fraction: float = field(default=0.5, metadata={
        "help": "stop before publishing when more than this share of a source's rows is rejected at ingest"})


@dataclass
class DedupConfig:
    threshold: int | None = field(default=None, metadata={
        "help": "perceptual-hash distance that makes two images candidates (None: curation.images.hashes's default)"})
    scope: str = field(default="question", metadata={
        "help": "which rows may be duplicates: question (near-copy image AND same normalized question, the "
                "default), question_answer (also the same answer), image (near-copy image, any question)"})
    confirm: bool = field(default=True, metadata={
        "help": "confirm each hash candidate on a 128 px thumbnail before dropping (False: the hash decides)"})

    def __post_init__(self):
        if self.scope not in DEDUP_SCOPES:
            raise SightlineError(f"dedup.scope must be one of {', '.join(DEDUP_SCOPES)}, got {self.scope!r}")
        if self.threshold is None:
            self.threshold = DEFAULT_THRESHOLD
        if not 0 <= self.threshold <= 32:
            raise SightlineError(f"dedup.threshold must be in 0..32, got {self.threshold}")


@dataclass
class DecontamConfig:
    eval_sets: list = field(default_factory=list, metadata={
        "help": "source specs of evaluation sets whose images and questions must not appear in the data"})


@dataclass
class CaptionTeacher(TeacherSpec):
    role: str = field(default="caption", init=False)


@dataclass
class DistillTeacher(TeacherSpec):
    role: str = field(default="distill", init=False)
    n: int = 2


@dataclass
class RLConfig:
    keep_open: bool = field(default=False, metadata={
        "help": "keep open-ended (sentence-answer) rows in rl/val/test; their rewards need a judge"})


@dataclass
class WriteConfig:
    row_group_bytes: int = field(default=1 << 20, metadata={
        "help": "Parquet row-group buffer of each table's writer (the pass that writes the tables holds one per "
                "table: 1 MB keeps that under ~20 MB; 8 MB cost ~100 MB of RSS at 20,000 rows)"})
    record_batch_size: int = field(default=256, metadata={"help": "rows per Arrow record batch"})
    file_bytes: int = field(default=128 << 20, metadata={
        "help": "start a new shard of a table after this many bytes of row groups: a Parquet writer keeps every "
                "row group's metadata until its file closes (one 1,000,000-row examples file: +60 MB of RSS, "
                "measured), so without a cap the pass that writes the tables grows with the rows"})


@dataclass
class RunnerConfig:
    workers: int = field(default=1, metadata={"help": "local Beam worker processes (1: in-process)"})
    accelerator: str | None = field(default=None, metadata={
        "help": "Beam resource hint on the model teacher stages only (Dataflow), e.g. "
                "'type:nvidia-l4;count:1;install-nvidia-driver' (docs/dataflow.md); ignored by local runners"})
    min_ram: str | None = field(default=None, metadata={
        "help": "Beam resource hint: least worker memory for the model teacher stages, e.g. '32GB'"})


@dataclass
class DataRecipe:
    name: str = field(default="mini", metadata={"help": "dataset name: versions go to <output_root>/<name>"})
    output_root: str = field(default="data", metadata={"help": "folder (or gs://, s3://) holding datasets"})
    seed: int = field(default=0, metadata={"help": "seed of the teachers' sampling"})
    test_fraction: float = field(default=0.15, metadata={"help": "share of split groups held out as test"})
    val_fraction: float = field(default=0.0, metadata={"help": "share of split groups held out as val"})
    split_salt: str = field(default="", metadata={"help": "changes which groups land in val/test"})
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    sources: list = field(default_factory=list, metadata={"help": "file sources (see docs/sources.md)"})
    ingest: IngestConfig = field(default_factory=IngestConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    caption: CaptionTeacher = field(default_factory=CaptionTeacher)
    distill: DistillTeacher = field(default_factory=DistillTeacher)
    select: SelectConfig = field(default_factory=SelectConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    judge: JudgeSpec = field(default_factory=JudgeSpec, metadata={
        "help": "a judge for open (sentence) answers: backend none | program | transformers | vllm; with one, "
                "open rows are learnable and needs_judge traces get judged_correct / judged_wrong"})
    write: WriteConfig = field(default_factory=WriteConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    def __post_init__(self):
        if not (0 <= self.test_fraction < 1 and 0 <= self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise SightlineError("test_fraction and val_fraction must be in [0, 1) and sum to less than 1")
        if not self.synthetic.n and not self.sources:
            raise SightlineError("no input: set synthetic.n > 0 or list file sources under `sources:`")
        self.sources = [validate_spec(s) for s in self.sources]
        for spec in (self.caption, self.distill, self.judge):
            spec.check()
        if self.runner.workers < 1:
            raise SightlineError("runner.workers must be >= 1")
        w = self.write
        if min(w.row_group_bytes, w.record_batch_size, w.file_bytes) < 1 or w.file_bytes < w.row_group_bytes:
            raise SightlineError(f"write: row_group_bytes, record_batch_size and file_bytes must be >= 1 and "
                                 f"file_bytes >= row_group_bytes, got {w.row_group_bytes}, {w.record_batch_size}, "
                                 f"{w.file_bytes}")

    @property
    def root(self) -> str:
        return f"{self.output_root.rstrip('/')}/{self.name}" if "://" in self.output_root \
            else str(Path(self.output_root) / self.name)


def load_data_recipe(path: str | Path | None, overrides: list[str] | None = None) -> DataRecipe:
    """The recipe at ``path`` with ``--set`` overrides; a source's relative ``path`` / ``image_root``
    resolve against the recipe file's folder (as a reader of the recipe expects), not the shell's."""
    values = apply_overrides(read_yaml(path), overrides)
    if path:
        values["sources"] = [relative_to_recipe(s, Path(path).parent) for s in values.get("sources") or []]
    return build(DataRecipe, values)


def relative_to_recipe(spec, folder: Path):
    """``spec`` with relative ``path`` / ``image_root`` / ``conversation``-free keys made absolute under
    ``folder`` when they exist there (a path that exists from the working folder keeps working)."""
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    for key in ("path", "image_root"):
        value = out.get(key)
        if isinstance(value, str) and value and "://" not in value:
            p = Path(value).expanduser()
            if p.is_absolute():
                continue
            here = folder / p
            if key == "image_root" or not Path(value).exists():
                out[key] = str(here)
    return out
