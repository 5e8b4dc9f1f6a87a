"""Group split: every row of one image, and of its near-copies, lands on the same side.

Hashing a row id (image + question) to pick its side puts different questions about one image
on both sides of the split, and a model then meets its test images in training (issue 9: most
images of a multi-question set had rows in train and test). The unit of the split is the image
group instead, as in scikit-learn's ``GroupShuffleSplit`` and in deduplicated benchmark splits
(e.g. "Do ImageNet Classifiers Generalize to ImageNet?", Recht et al., 2019, which removed
near-duplicates across splits):

- the **image key** of a row is the sha256 of its image bytes (for a multi-image row, the first
  image: the one whose perceptual hash the row carries);
- an image's **group key** is the smallest image key among itself and its confirmed near-copies
  (``curation.images.duplicates``: each confirmed pair gives both images the smaller key, and the pipeline
  keeps the minimum per image). One hop, not a transitive closure: in a chain a~b~c where a and c are not
  copies of each other, b joins a's group and c joins b's, so b and c, copies of each other, may sit on
  two sides. A chain needs a copy of a copy that drifted past the near-copy test (none in the mini
  recipe: its manifest counts ``rows_grouped_with_a_near_copy``); a transitive closure would need all
  confirmed pairs in one place;
- :func:`split_of` hashes the group key, so the side depends on the group alone: re-runs, row
  order and worker count cannot move a row.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from curation.errors import SightlineError

SPLITS = ("train", "val", "test")


def image_key(images: bytes | Sequence[bytes]) -> str:
    """sha256 hex of the row's image bytes; for a list of images, of the first one."""
    if not isinstance(images, (bytes, bytearray, memoryview)):
        if not images:
            raise SightlineError("a row without images has no image key")
        images = images[0]
    if not images:
        raise SightlineError("an empty image has no image key")
    return hashlib.sha256(bytes(images)).hexdigest()


def _unit_interval(group_key: str, seed: str) -> float:
    """A uniform number in [0, 1) from the group key: 48 bits of sha256, like the old row split."""
    return int(hashlib.sha256((seed + group_key).encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def split_of(group_key: str, test_fraction: float, val_fraction: float = 0.0, seed: str = "") -> str:
    """``"test"``, ``"val"`` or ``"train"`` for a group: test below ``test_fraction``, val in the
    next ``val_fraction``, train above. Deterministic; ``seed`` reshuffles all groups at once."""
    if not (0.0 <= test_fraction <= 1.0 and 0.0 <= val_fraction <= 1.0) or test_fraction + val_fraction > 1.0:
        raise SightlineError(f"split fractions must be in [0, 1] with test + val <= 1, got test={test_fraction} "
                             f"val={val_fraction}")
    u = _unit_interval(group_key, seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_leaks(rows: Iterable[tuple[str, str]]) -> list[str]:
    """Image keys that occur with more than one split in ``(image_key, split)`` rows, sorted.

    An empty list means no image is on two sides (what ``sightline data verify`` checks).
    """
    seen: dict[str, str] = {}
    leaks: set[str] = set()
    for key, split in rows:
        if split not in SPLITS:
            raise SightlineError(f"unknown split {split!r} for image {key[:12]}; expected one of {', '.join(SPLITS)}")
        first = seen.setdefault(key, split)
        if first != split:
            leaks.add(key)
    return sorted(leaks)
