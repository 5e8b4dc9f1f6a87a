"""Benchmark decontamination: drop training rows whose image or question appears in an eval set.

An ``EvalIndex`` holds the eval images' 64-bit perceptual hashes and 64-bit digests of their
normalized questions, as numpy arrays, so it pickles to ~10 bytes per eval row and can be handed
to every Beam worker. Image lookups use the same multi-index bands as ``curation.images.hashes``
(Norouzi et al., CVPR 2012): the per-band sorted arrays are rebuilt lazily after unpickling, and
never travel. A row overlaps when its image lies within ``threshold`` bits of an eval image
(``eval_image_overlap``) or its normalized question equals an eval question
(``eval_question_overlap``).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from curation.images.hashes import DEFAULT_THRESHOLD, band_keys, band_widths, hash_from_hex, hash_hex, phash64
from curation.errors import SightlineError
from schemas.ids import normalize_question
from curation.images.decode import check_image
from curation.rejects import Reject
from curation.sources import read_source


def question_digest(question: str) -> int:
    """64-bit digest of the normalized question (collisions ~ pairs / 2^64: negligible)."""
    text = normalize_question(question).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class EvalIndex:
    """Eval images (hashes) and questions (digests), with the source eval set of each."""

    def __init__(self, hashes: Iterable[tuple[int, str]], questions: Iterable[tuple[int, str]], *,
                 threshold: int = DEFAULT_THRESHOLD, min_question_chars: int = 0,
                 skipped: dict[str, int] | None = None):
        band_widths(threshold)  # validates the threshold
        self.threshold, self.min_question_chars = threshold, min_question_chars
        self.skipped = dict(skipped or {})
        names: dict[str, int] = {}
        self._hashes, self._hash_set = self._pack(hashes, names)
        self._questions, self._question_set = self._pack(questions, names)
        self.sets = tuple(names)
        self._bands = None

    @staticmethod
    def _pack(pairs, names: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique values (uint64) and the eval set of each (its first occurrence)."""
        first: dict[int, int] = {}
        for value, name in pairs:
            first.setdefault(value, names.setdefault(name, len(names)))
        values = np.array(sorted(first), dtype=np.uint64)
        return values, np.array([first[int(v)] for v in values], dtype=np.uint16)

    # ------------------------------------------------------------ building

    @classmethod
    def from_rows(cls, rows: Iterable[dict], *, threshold: int = DEFAULT_THRESHOLD, name: str = "eval",
                  min_question_chars: int = 0, max_pixels: int = 16_000_000) -> EvalIndex:
        """From row dicts with ``question`` and ``image_hash`` (hex or int) or ``image`` (bytes or
        ``{bytes, path}``); each row's ``source`` names its eval set (else ``name``)."""
        hashes, questions, skipped = [], [], Counter()
        for row in rows:
            set_name = row.get("source") or name
            q = row.get("question")
            if isinstance(q, str) and len(normalize_question(q)) >= max(1, min_question_chars):
                questions.append((question_digest(q), set_name))
            elif q is not None:
                skipped["short_question"] += 1
            h = row.get("image_hash")
            image = (row.get("images") or [None])[0] if "images" in row else row.get("image")
            if h is None and image is not None:  # an examples row's first image, or a bare ``image``
                data = image.get("bytes") if isinstance(image, dict) else image
                check = check_image(data or b"", max_pixels=max_pixels, min_side=1)
                if check.ok:
                    h = phash64(check.image)
                else:
                    skipped[f"image_{check.reason}"] += 1
            if isinstance(h, str):
                h = hash_from_hex(h)
            if h is not None:
                hashes.append((int(h), set_name))
        return cls(hashes, questions, threshold=threshold, min_question_chars=min_question_chars,
                   skipped=dict(skipped))

    @classmethod
    def from_files(cls, paths: Iterable[str | Path | dict], *, threshold: int = DEFAULT_THRESHOLD,
                   min_question_chars: int = 0, max_pixels: int = 16_000_000) -> EvalIndex:
        """From eval sets on disk: paths (JSONL file, Parquet file or folder, ``save_to_disk``
        folder; the type is inferred) or full source specs. Rows need no answer."""
        skipped: Counter = Counter()

        def rows():
            for item in paths:
                spec = eval_spec(item)
                for kind, row in read_source(spec):
                    if kind == "example":
                        yield row
                    else:  # unreadable image etc.: the question still counts
                        skipped[f"{spec['name']}:{row['reason']}"] += 1
                        if row.get("question"):
                            yield {"source": spec["name"], "question": row["question"]}

        index = cls.from_rows(rows(), threshold=threshold, min_question_chars=min_question_chars,
                              max_pixels=max_pixels)
        index.skipped.update(skipped)
        return index

    # ------------------------------------------------------------ lookups

    def check(self, image_hash: int | None, question: str | None) -> tuple[str, str] | None:
        """``(reason, detail)`` if the row overlaps an eval set, else None."""
        if image_hash is not None and len(self._hashes):
            found = self.nearest_image(image_hash)
            if found is not None:
                dist, eval_hash, set_name = found
                return ("eval_image_overlap",
                        f"hamming {dist} <= {self.threshold} to eval image {hash_hex(eval_hash)} of {set_name!r}")
        if question and len(self._questions):
            normalized = normalize_question(question)
            if len(normalized) >= max(1, self.min_question_chars):
                d = np.uint64(question_digest(question))
                i = int(np.searchsorted(self._questions, d))
                if i < len(self._questions) and self._questions[i] == d:
                    return ("eval_question_overlap",
                            f"same normalized question as eval set {self.sets[self._question_set[i]]!r}")
        return None

    def nearest_image(self, image_hash: int) -> tuple[int, int, str] | None:
        """``(distance, eval_hash, eval_set)`` of the closest eval image within the threshold."""
        bands = self._band_index()
        h = np.uint64(image_hash)
        best = None
        for (band, value), (sorted_values, order) in zip(band_keys(image_hash, self.threshold), bands):
            lo, hi = np.searchsorted(sorted_values, value, "left"), np.searchsorted(sorted_values, value, "right")
            if lo == hi:
                continue
            cand = order[lo:hi]
            dist = np.bitwise_count(self._hashes[cand] ^ h)
            j = int(dist.argmin())
            if dist[j] <= self.threshold and (best is None or dist[j] < best[0]):
                best = (int(dist[j]), int(cand[j]))
        if best is None:
            return None
        return best[0], int(self._hashes[best[1]]), self.sets[self._hash_set[best[1]]]

    def _band_index(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per band: the band values sorted, and the hash positions in that order."""
        if self._bands is None:
            bands, shift = [], 64
            for width in band_widths(self.threshold):
                shift -= width
                values = (self._hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
                order = np.argsort(values, kind="stable")
                bands.append((values[order], order))
            self._bands = bands
        return self._bands

    # ------------------------------------------------------------ pickling and reporting

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_bands"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _bands=None)

    def summary(self) -> dict[str, Any]:
        per_set = {name: {"images": int((self._hash_set == i).sum()),
                          "questions": int((self._question_set == i).sum())}
                   for i, name in enumerate(self.sets)}
        return {"eval_sets": per_set, "images": len(self._hashes),
                "questions": len(self._questions), "threshold": self.threshold,
                "min_question_chars": self.min_question_chars, "skipped": dict(self.skipped)}


def eval_spec(item: str | Path | dict) -> dict:
    """A source spec for an eval set: a given spec (answers made optional) or a bare path."""
    if isinstance(item, dict):
        spec = dict(item)
        spec.setdefault("name", Path(str(spec.get("path", "eval"))).stem)
        spec.setdefault("require_answer", False)
        return spec
    path = Path(item).expanduser()
    if not path.exists():
        raise SightlineError(f"eval set: path does not exist: {path}")
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        kind = "hf_disk"
    elif path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet"))):
        kind = "parquet"
    elif path.suffix in (".jsonl", ".json"):
        kind = "auto"  # a .json eval set may be a JSON array or an object keyed by id
    else:
        raise SightlineError(f"eval set {path}: not a .jsonl file, Parquet file/folder or save_to_disk "
                             "folder; give a source spec with 'type' instead")
    return {"type": kind, "name": path.stem, "path": str(path), "require_answer": False}


def decontam_row(row: dict, index: EvalIndex | None) -> dict:
    """The row, or a ``Reject`` when its image or question overlaps an evaluation set (no index: kept)."""
    if index is None:
        return row
    found = index.check(hash_from_hex(row["image_hash"]), row["question"])
    return Reject(*found) if found else row
