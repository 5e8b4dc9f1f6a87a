"""Shards -> TRL datasets.

``datasets.load_dataset("parquet", ...)`` turns a version's shards into one memory-mapped Arrow
file; the ``huggingface`` features in the parquet footers make image columns decode lazily, one
PIL image per row access, so a table never sits decoded in memory.

- ``sft_dataset``: ``messages`` + ``images`` (TRL's conversational language-modeling format).
- ``rl_dataset``: ``prompt`` + ``images`` + the columns reward functions and samplers read
  (``solution``, ``answer_type``, ``choices``, ``id``, ``task``, ``level``, pass-rate counts).
  ``table="test"`` gives the held-out split in the same layout.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from curation.errors import SightlineError
from curation.store.versions import Store

SFT_COLUMNS = ["messages", "images"]
RL_COLUMNS = ["id", "task", "level", "prompt", "images", "solution", "answer_type", "choices",
              "pass_rate", "n_rollouts", "n_correct"]


def as_store(data: str | os.PathLike | Store) -> Store:
    return data if isinstance(data, Store) else Store(data)


def default_cache_dir() -> Path:
    """Where the Arrow cache goes: $HF_DATASETS_CACHE, else under $TMPDIR (never inside the store)."""
    return Path(os.environ.get("HF_DATASETS_CACHE") or Path(tempfile.gettempdir()) / "sightline-datasets")


def load_table(data: str | os.PathLike | Store, table: str, version: int | str | None = "latest", *,
               columns: list[str] | None = None, limit: int | None = None, cache_dir: str | os.PathLike | None = None):
    """One table of one version as a ``datasets.Dataset`` (images decode lazily as PIL)."""
    import datasets

    store = as_store(data)
    v = store.resolve(version)
    # local_files: the shards themselves on a local root, a verified local cache of them on object storage
    files = [str(f) for f, e in zip(store.local_files(table, v), store.manifest(v)["files"][table]) if e["rows"]]
    if not files:
        raise SightlineError(f"table {table!r} of {store.root} v{v} is empty")
    progress = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()  # one small conversion, not worth three bars
    try:
        ds = datasets.load_dataset("parquet", data_files=files, split="train",
                                   cache_dir=str(cache_dir or default_cache_dir()))
    finally:
        if progress:
            datasets.utils.logging.enable_progress_bar()
    if columns is not None:
        ds = ds.select_columns(columns)
    if limit is not None:
        ds = ds.select(range(min(int(limit), len(ds))))
    return ds


def sft_dataset(data: str | os.PathLike | Store, version: int | str | None = "latest", *,
                limit: int | None = None, levels: list[int] | None = None, teachers: list[str] | None = None,
                cache_dir: str | os.PathLike | None = None):
    """The ``sft`` table as TRL's conversational format: ``messages`` (user turn with an image part) + ``images``.

    ``levels`` keeps the rows of those levels, ``teachers`` the rows whose teacher starts with one of the
    given prefixes (``policy`` for a loop round's own verified answers); ``limit`` applies after both.
    """
    if levels is None and teachers is None:
        return load_table(data, "sft", version, columns=SFT_COLUMNS, limit=limit, cache_dir=cache_dir)
    ds = load_table(data, "sft", version, cache_dir=cache_dir)
    if levels is not None and "level" not in ds.column_names:
        raise SightlineError(f"the sft table of {as_store(data).root} has no level column (written before "
                             "schema 3): re-curate it to filter by level")
    wanted = set(levels or ())
    prefixes = tuple(teachers or ())
    keep = [i for i, (level, teacher) in enumerate(zip(ds["level"] if levels is not None else [None] * len(ds),
                                                       ds["teacher"] if teachers is not None else [""] * len(ds)))
            if (levels is None or level in wanted) and (teachers is None or (teacher or "").startswith(prefixes))]
    if not keep:
        raise SightlineError(f"no sft rows of {as_store(data).root} match levels={levels} teachers={teachers}")
    if limit is not None:
        keep = keep[:int(limit)]
    return ds.select(keep).select_columns(SFT_COLUMNS)


def rl_dataset(data: str | os.PathLike | Store, version: int | str | None = "latest", *, table: str = "rl",
               limit: int | None = None, cache_dir: str | os.PathLike | None = None):
    """The ``rl`` (or ``val`` / ``test``) table: conversational ``prompt`` + ``images`` + reward/sampler columns."""
    assert table in ("rl", "val", "test"), f"rl_dataset reads the rl, val or test table, not {table!r}"
    return load_table(data, table, version, columns=RL_COLUMNS, limit=limit, cache_dir=cache_dir)
