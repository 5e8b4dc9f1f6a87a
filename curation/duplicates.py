"""Which images are near-copies, and which rows are duplicates: the dedup rule in steps a Beam graph can run.

1. Candidates: the distinct images' 64-bit perceptual hashes meet in multi-index hash bands
   (``curation.dedup.band_keys``, Norouzi et al. 2012); pairs within ``threshold`` bits are candidates.
   Each pair is *owned* by the first band its two hashes agree on, so exactly one bucket handles it.
2. Confirmation: a candidate pair is a near-copy only if its thumbnails agree
   (``curation.near_copy.same_image``); hashes propose, pixels decide. Only candidates' thumbnails
   travel, once to each bucket that owns one of their pairs.
3. Groups: every image's ``split_group`` is the smallest image key among itself and its confirmed
   near-copies (one hop), so all rows of one image and of its copies share a train/val/test side.
4. Duplicates: rows with the same group and the same normalized question (scope ``question``; also
   the same answer for ``question_answer``; any question for ``image``) are one problem; the row with
   the smallest id stays. ``exact``: byte-identical image and identical normalized question; else ``near``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from curation.near_copy import MIN_PIXELS, TAU
from schemas.ids import normalize_question

MEMBER_BYTES = 40  # a band member: the 32 bytes of the image key (sha256) and the 8 of its hash


# ---------------------------------------------------------------------------- candidates


def band_entries(image_key: str, image_hash: int, threshold: int) -> list[tuple[tuple[int, int], bytes]]:
    """``((band index, band value), member)`` for each multi-index band of an image's hash.

    The member is packed (``MEMBER_BYTES``): nine of them cross a shuffle per image, so they are
    bytes a combiner can concatenate, not Python tuples.
    """
    from curation.dedup import band_keys

    try:
        member = bytes.fromhex(image_key) + image_hash.to_bytes(8, "big")
    except ValueError:
        member = b""
    if len(member) != MEMBER_BYTES:
        raise ValueError(f"image key must be 64 hex digits (sha256), got {image_key!r}")
    return [(key, member) for key in band_keys(image_hash, threshold)]


def unpack_members(blob: bytes) -> tuple[list[str], np.ndarray]:
    """Packed members, concatenated (repeats allowed) -> (sorted distinct image keys, their hashes)."""
    members = sorted({blob[i:i + MEMBER_BYTES] for i in range(0, len(blob), MEMBER_BYTES)})
    hashes = np.frombuffer(b"".join(m[32:] for m in members), dtype=">u8").astype(np.uint64)
    return [m[:32].hex() for m in members], hashes


def owned_pairs(band: int, hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i[k], j[k])``, ``i < j``, of one bucket of band ``band`` whose hashes are within
    ``threshold`` bits and agree on no earlier band: every candidate pair is owned by one bucket only.

    Vectorised in blocks of ~4M distances; the cost is quadratic in the bucket size only.
    """
    from curation.dedup import HASH_BITS, band_widths

    n = len(hashes)
    out_i, out_j = [], []
    start, step = 0, max(1, 4_000_000 // max(n, 1))
    while start < n:
        stop = min(n, start + step)
        near = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, start:]) <= threshold  # columns j >= start
        near &= np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        i, j = np.nonzero(near)
        out_i.append(i + start)
        out_j.append(j + start)
        start = stop
    i, j = np.concatenate(out_i or [np.zeros(0, int)]), np.concatenate(out_j or [np.zeros(0, int)])
    x = hashes[i] ^ hashes[j]
    owned = np.ones(len(i), dtype=bool)
    shift = HASH_BITS
    for width in band_widths(threshold)[:band]:
        shift -= width
        owned &= ((x >> np.uint64(shift)) & np.uint64((1 << width) - 1)) != 0
    return i[owned], j[owned]


def bucket_pairs(band_key: tuple[int, int], packed: bytes, threshold: int) -> list[tuple[str, str]]:
    """The candidate pairs ``(a, b)``, ``a < b``, that one bucket owns (the hash-only rule: each is a near-copy)."""
    keys, hashes = unpack_members(packed)
    return [(keys[i], keys[j]) for i, j in zip(*owned_pairs(band_key[0], hashes, threshold))]


def pair_members(band_key: tuple[int, int], packed: bytes, threshold: int
                 ) -> list[tuple[str, tuple[tuple[int, int], int]]]:
    """``(image key, (band key, hash))`` for each image in a pair the bucket owns: where its thumbnail must go."""
    keys, hashes = unpack_members(packed)
    wanted = np.unique(np.concatenate(owned_pairs(band_key[0], hashes, threshold)))
    return [(keys[i], (band_key, int(hashes[i]))) for i in wanted]


def confirmed_in_bucket(band_key: tuple[int, int], members: Iterable[tuple[str, int, bytes]],
                        threshold: int) -> list[tuple[str, str]]:
    """The owned pairs of a bucket's ``(image key, hash, thumbnail)`` members that are near-copies."""
    by_key = {key: (h, thumb) for key, h, thumb in members}
    keys = sorted(by_key)
    hashes = np.array([by_key[k][0] for k in keys], dtype=np.uint64)
    ia, ib = owned_pairs(band_key[0], hashes, threshold)
    found = _confirmed(_Thumbnails([by_key[k][1] for k in keys]), ia, ib)
    return [(keys[ia[k]], keys[ib[k]]) for k in found]


def group_edges(a: str, b: str) -> list[tuple[str, str]]:
    """A confirmed near-copy pair -> (image, candidate group) for both; the group is the min over candidates."""
    g = min(a, b)
    return [(a, g), (b, g)]


# ---------------------------------------------------------------------------- duplicate rows


def duplicate_key(group: str, question: str, answer: str | None, scope: str) -> str:
    """The key under which rows compete: one problem = one near-copy group (+ question (+ answer))."""
    if scope == "image":
        text = ""
    else:
        text = normalize_question(question)
        if scope == "question_answer":
            text += "\x00" + normalize_question(answer or "")
    return group + ":" + hashlib.sha1(text.encode()).hexdigest()[:16]


def regrouped(key: str, group: str) -> str:
    """``duplicate_key(image, ...)`` -> ``duplicate_key(group, ...)``: the same problem, keyed by the image's group."""
    return group + key[key.index(":"):]


def duplicates_in_group(members: Iterable[tuple[str, str, str, str]]) -> list[dict]:
    """Rows ``(id, row_key, image_key, normalized question)`` of one key -> the drop decisions.

    The row with the smallest (id, row_key) stays; every other row is dropped, as ``exact`` when some
    row before it has the same image bytes and normalized question (a byte-identical repeat, even
    when the kept row is a re-encoded copy), else ``near``.
    """
    ms = sorted(set(members))
    kept_id = ms[0][0]
    seen = {(ms[0][2], ms[0][3])}
    drops = []
    for _, key, image, question in ms[1:]:
        drops.append({"kind": "exact" if (image, question) in seen else "near", "key": key, "kept": kept_id})
        seen.add((image, question))
    return drops


def row_key(row: dict) -> str:
    """Identity of one ingested row (two byte-identical rows of one source share an id, not a row key)."""
    return f"{row['id']}|{row['source']}|{row['source_id']}"


# ---------------------------------------------------------------------------- applying the decisions


def read_decisions(lines: Iterable[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Decision lines (JSON) -> (drops by row key, split group by image key for images with near-copies)."""
    import json

    drops: dict[str, dict] = {}
    groups: dict[str, str] = {}
    for line in lines:
        d = json.loads(line)
        if d["kind"] == "group":
            groups[d["key"]] = d["group"]
        else:
            drops[d["key"]] = d
    return drops, groups


def placed(row: dict, drops: dict[str, dict], groups: dict[str, str], test_fraction: float,
           val_fraction: float, salt: str = "") -> dict:
    """The row with its ``split_group`` and ``split``, or a ``Reject`` when it is a duplicate.

    The split is a hash of the group, never of the row: every row of an image (and of its near-copies)
    lands on the same side.
    """
    from curation.rejects import Reject
    from curation.split import split_of

    drop = drops.get(row_key(row))
    if drop is not None:
        return Reject(f"{drop['kind']}_duplicate", f"kept {drop['kept']}")
    group = groups.get(row["image_key"], row["image_key"])
    return dict(row, split_group=group, split=split_of(group, test_fraction, val_fraction, salt))


# ---------------------------------------------------------------------------- confirmation


def thumbnail_of(row: dict) -> bytes:
    """The compact thumbnail of a row's first image: what travels to confirm a candidate pair."""
    from curation.dedup import thumbnail, thumbnail_bytes

    return thumbnail_bytes(thumbnail(row["images"][0]["bytes"]))


CLEARLY_DIFFERENT = 128      # of 255: no re-encode, resize or 10% brightness change moves a pixel this far
CLEARLY_DIFFERENT_SHARE = 0.01
LUMA_MARGIN = 1e-4           # batched float32 luminance vs same_image's own: rounding differs by ~1e-7
BATCH_PAIRS = 128            # pairs compared at once (~2.5 MB of float32 per side for 56 x 56 thumbnails)


def near_copies(thumb_a: bytes, thumb_b: bytes) -> bool:
    """Do two candidate thumbnails show the same picture (re-encoded, resized, brightened)?

    Most hash candidates of diagrams are plainly different pictures; when the thumbnails share a
    grid and more than 1% of their pixels differ by half the range, that settles it without the
    full comparison (``curation.near_copy.same_image``, ~2 ms a pair).
    """
    from curation.dedup import thumbnail_from_bytes

    return _near_copies(thumbnail_from_bytes(thumb_a), thumbnail_from_bytes(thumb_b))


def _near_copies(a, b) -> bool:
    from curation.dedup import same_image

    if a.pixels.shape == b.pixels.shape and not _not_far(a.pixels[None], b.pixels[None])[0]:
        return False
    return bool(same_image(a, b)[0])


def _not_far(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of ``(n, h, w, 3)`` uint8 stacks: False when over 1% of pixels differ by half the range."""
    d = np.maximum(a, b) - np.minimum(a, b)  # |a - b| without leaving uint8
    far = (d[..., 0] > CLEARLY_DIFFERENT) | (d[..., 1] > CLEARLY_DIFFERENT) | (d[..., 2] > CLEARLY_DIFFERENT)
    return far.sum(axis=(1, 2)) / (far.shape[1] * far.shape[2]) <= CLEARLY_DIFFERENT_SHARE


def confirmed_pairs(thumbs: dict[str, bytes], pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs :func:`near_copies` confirms, with its answers, for many pairs at once.

    Steps, each removing only pairs the next would remove too: (1) on bit masks, pairs with over 1%
    of pixels certainly half the range apart (:func:`_certainly_far`, ~1 us a pair: most hash
    candidates of distinct diagrams end here); (2) near_copies' own clearly-different test; (3) for
    one image size, a luminance bound: ``same_image`` calls a pair the same only when fewer than
    ``MIN_PIXELS`` pixels differ in luminance (BT.601) by more than ``TAU`` after its brightness match,
    so a pair with ``MIN_PIXELS`` pixels beyond ``TAU + LUMA_MARGIN``, computed the same way, is not a
    copy; (4) ``same_image`` itself. Steps 1-3 run on batches of pairs of one grid; pairs on two grids
    go to ``same_image`` directly, as in near_copies.
    """
    pairs = sorted(set(pairs))
    keys = sorted({k for p in pairs for k in p})
    index = {k: i for i, k in enumerate(keys)}
    ia = np.array([index[a] for a, _ in pairs], dtype=np.int64)
    ib = np.array([index[b] for _, b in pairs], dtype=np.int64)
    return [pairs[k] for k in _confirmed(_Thumbnails([thumbs[k] for k in keys]), ia, ib)]


def _confirmed(images: _Thumbnails, ia: np.ndarray, ib: np.ndarray) -> list[int]:
    """Positions ``k`` of the pairs ``(images ia[k], images ib[k])`` that near_copies confirms, in order."""
    from curation.dedup import same_image

    if not len(ia):
        return []
    cross = images.grid_id[ia] != images.grid_id[ib]
    out = [k for k in np.flatnonzero(cross) if same_image(images[ia[k]], images[ib[k]])[0]]
    for gid in np.unique(images.grid_id[ia[~cross]]):
        chosen = np.flatnonzero(~cross & (images.grid_id[ia] == gid))
        bits, at = images.bits[gid], images.at_grid
        left = np.concatenate([c[~_certainly_far(bits[at[ia[c]]], bits[at[ib[c]]], images.pixels_of[gid])]
                               for c in _chunks(chosen, BOUND_PAIRS)])
        for batch in _chunks(left, BATCH_PAIRS):
            out += _confirm_batch(images, batch, ia[batch], ib[batch]).tolist()
    return sorted(out)


def _chunks(a: np.ndarray, size: int) -> list[np.ndarray]:
    return [a[i:i + size] for i in range(0, len(a), size)]


BOUND_PAIRS = 4096    # pairs per bit-mask step (2 x 9 MB of masks for 56 x 56 thumbnails)
DECODED_CACHE = 2048  # thumbnails kept decoded (~9 KB each for 56 x 56): pairs come sorted, so partners repeat
FAR_LOW, FAR_HIGH = 64, 192  # a channel below 64 in one image and at least 192 in the other: 129 or more apart


class _Thumbnails:
    """Thumbnails by position: each decoded once up front for its grid, image size and
    bit masks (:func:`_far_bits`, ~2 KB), then again on demand for its pixels (the least recently used
    dropped beyond ``DECODED_CACHE``), with its brightness percentile remembered once computed."""

    def __init__(self, blobs: list[bytes]):
        from collections import OrderedDict

        from curation.dedup import thumbnail_from_bytes

        self.blobs = blobs
        self.decoded, self.p99s = OrderedDict(), {}  # position -> (thumbnail, 8-bit luminance or None)
        grids, sizes, masks = [], [], []
        for i, blob in enumerate(self.blobs):
            t = self._keep(i, thumbnail_from_bytes(blob))
            grids.append(t.pixels.shape)
            sizes.append((t.width, t.height))
            masks.append(_far_bits(t.pixels))
        ids = {g: n for n, g in enumerate(sorted(set(grids)))}
        self.grid_id = np.array([ids[g] for g in grids])
        self.size = np.array(sizes, dtype=np.int64)  # (images, 2): width and height of each image
        self.pixels_of = {n: g[0] * g[1] for g, n in ids.items()}
        self.at_grid = np.zeros(len(blobs), dtype=np.int64)  # position among the images of its grid
        self.bits = {}
        for n in ids.values():
            members = np.flatnonzero(self.grid_id == n)
            self.at_grid[members] = np.arange(len(members))
            self.bits[n] = np.stack([masks[i] for i in members])

    def _keep(self, i: int, t):
        self.decoded[i] = (t, None)
        if len(self.decoded) > DECODED_CACHE:
            self.decoded.popitem(last=False)
        return t

    def _entry(self, i: int) -> tuple:
        from curation.dedup import thumbnail_from_bytes

        entry = self.decoded.get(i)
        if entry is None:
            self._keep(i, thumbnail_from_bytes(self.blobs[i]))
            entry = self.decoded[i]
        self.decoded.move_to_end(i)
        return entry

    def __getitem__(self, i: int):
        return self._entry(i)[0]

    def floats(self, i: int) -> np.ndarray:
        """Image ``i`` as ``same_image`` sees it on its own grid: float32 in [0, 1]."""
        return self[i].pixels.astype(np.float32) * np.float32(1 / 255)

    def p99(self, i: int) -> float:
        """``same_image``'s 99th-percentile brightness of image ``i`` (kept: one number per image)."""
        from curation.near_copy import _brightest_channel, _p99

        if i not in self.p99s:
            self.p99s[i] = _p99(_brightest_channel(self.floats(i)))
        return self.p99s[i]

    def luma8(self, i: int) -> np.ndarray:
        """BT.601 luminance of image ``i``, rounded to 8 bits (kept with its pixels while they are decoded)."""
        from curation.near_copy import _LUMA

        t, luma = self._entry(i)
        if luma is None:
            luma = np.rint(np.clip(self.floats(i) @ _LUMA, 0, 1) * 255).astype(np.uint8)
            self.decoded[i] = (t, luma)
        return luma



def _far_bits(pixels: np.ndarray) -> np.ndarray:
    """``(2, 3, words)`` uint64: for each channel, the pixels at or above ``FAR_HIGH`` and those below
    ``FAR_LOW``, one bit each. ANDing one image's high bits with another's low bits finds pixels that are
    certainly more than ``CLEARLY_DIFFERENT`` apart, 64 pixels per machine word."""
    channels = np.ascontiguousarray(pixels.reshape(-1, 3).T)  # (3, pixels): packbits is fast along rows
    n = channels.shape[1]
    masks = np.concatenate([channels >= FAR_HIGH, channels < FAR_LOW])  # (6, pixels)
    out = np.zeros((6, -(-n // 64) * 8), dtype=np.uint8)
    out[:, :-(-n // 8)] = np.packbits(masks, axis=1)
    return out.view(np.uint64).reshape(2, 3, -1)


def _certainly_far(a: np.ndarray, b: np.ndarray, pixels: int) -> np.ndarray:
    """Per pair of stacked ``_far_bits``: True when more than ``CLEARLY_DIFFERENT_SHARE`` of the pixels have a
    channel high in one image and low in the other (a lower bound of the clearly-different test's count)."""
    x = (a[:, 0] & b[:, 1]) | (a[:, 1] & b[:, 0])
    return np.bitwise_count(x[:, 0] | x[:, 1] | x[:, 2]).sum(axis=1, dtype=np.int64) / pixels > CLEARLY_DIFFERENT_SHARE


# a rounded 8-bit luminance difference of at least this many steps is more than TAU + LUMA_MARGIN apart
LUMA8_FAR = int(np.floor((TAU + LUMA_MARGIN) * 255 + 1)) + 1


def _confirm_batch(images: _Thumbnails, batch: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Pair positions ``batch`` (images ``ia``, ``ib``, one grid) that near_copies confirms. Pairs of one image
    size take the luminance bound (on 8-bit luminance when ``same_image`` applies no brightness gain); then
    near_copies' clearly-different test; then same_image. Per-image work is done once per image in the batch."""
    from curation.dedup import same_image

    n = len(batch)
    uniq, where = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    wa, wb = where[:n], where[n:]
    keep = np.ones(n, dtype=bool)
    sized = (images.size[ia] == images.size[ib]).all(axis=1)
    p99 = np.array([images.p99(i) for i in uniq])
    gain_x, gain_y = _gains(p99[wa], p99[wb])
    plain = sized & (gain_x == 1) & (gain_y == 1)
    if plain.any():
        luma = np.stack([images.luma8(i) for i in uniq]).astype(np.int16)
        far = np.abs(luma[wa[plain]] - luma[wb[plain]]) >= LUMA8_FAR
        keep[plain] = far.sum(axis=(1, 2)) < MIN_PIXELS
    gained = np.flatnonzero(sized & ~plain)
    if len(gained):
        keep[gained] = _luma_maybe_same(np.stack([images.floats(i) for i in ia[gained]]),
                                        np.stack([images.floats(j) for j in ib[gained]]),
                                        gain_x[gained], gain_y[gained])
    rest = np.flatnonzero(keep)
    if len(rest):
        keep[rest] = _not_far(np.stack([images[i].pixels for i in ia[rest]]),
                              np.stack([images[j].pixels for j in ib[rest]]))
    return batch[[bool(k) and same_image(images[i], images[j])[0] for k, i, j in zip(keep, ia, ib)]]


def _gains(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 gains ``curation.near_copy._match_brightness`` applies to each pair's two images (1 where none):
    the darker one is scaled up to the other's 99th-percentile brightness, unless either is near black or
    they differ over 2x."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = pb / pa
        matched = (np.minimum(pa, pb) >= 0.05) & (ratio >= 0.5) & (ratio <= 2.0)
        gain_x = np.where(matched & (pb > pa), ratio, 1.0).astype(np.float32)
        gain_y = np.where(matched & (pb <= pa), pa / pb, 1.0).astype(np.float32)
    return gain_x, gain_y


def _luma_maybe_same(x: np.ndarray, y: np.ndarray, gain_x: np.ndarray, gain_y: np.ndarray) -> np.ndarray:
    """Per pair of float images (one grid, one image size) and the gains ``same_image`` applies to them
    (:func:`_gains`): False when ``same_image`` would certainly say different."""
    from curation.near_copy import _LUMA

    gx, gy = gain_x[:, None, None, None], gain_y[:, None, None, None]
    x = np.where(gx != 1, np.minimum(x * gx, 1.0), x)
    y = np.where(gy != 1, np.minimum(y * gy, 1.0), y)
    luma = np.abs((x - y) @ _LUMA)
    return (luma > TAU + LUMA_MARGIN).sum(axis=(1, 2)) < MIN_PIXELS
