"""The near-copy steps as the curate graph runs them: owned candidate pairs per hash bucket, and the
batched confirmation, checked against the plain definitions (all pairs within the threshold;
``near_copies`` pair by pair)."""
import hashlib
import random
from collections import defaultdict

import numpy as np
import pytest

from curation.images import bucket_confirm as BC
from curation.images import duplicates as D
from curation.images.hashes import hamming, phash64
from curation.images.near_copy import thumbnail, thumbnail_bytes
from tests.curation.test_dedup import altered, png, puzzle


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _hashes(seed: int) -> dict[str, int]:
    """Clusters of hashes a few bits apart (as diagrams of one family are), plus scattered ones."""
    rng = random.Random(seed)
    out = {}
    for c in range(12):
        base = rng.getrandbits(64)
        for m in range(8):
            h = base
            for bit in rng.sample(range(64), rng.randrange(0, 12) if m > 1 else 0):  # members 0, 1: one hash
                h ^= 1 << bit
            out[_key(c * 100 + m)] = h
    out.update({_key(5000 + i): rng.getrandbits(64) for i in range(40)})
    return out


def _buckets(hashes: dict[str, int], threshold: int) -> dict:
    buckets = defaultdict(bytearray)
    for key, h in hashes.items():
        for band, member in D.band_entries(key, h, threshold):
            buckets[band] += member + member  # every member twice: buckets see repeated rows
    return {band: bytes(b) for band, b in buckets.items()}


@pytest.mark.parametrize("threshold", [0, 3, 8])
def test_each_candidate_pair_is_owned_by_exactly_one_bucket(threshold):
    hashes = _hashes(threshold)
    keys = sorted(hashes)
    truth = {(a, b) for i, b in enumerate(keys) for a in keys[:i] if hamming(hashes[a], hashes[b]) <= threshold}
    found = [pair for band, packed in _buckets(hashes, threshold).items()
             for pair in D.bucket_pairs(band, packed, threshold)]
    assert len(found) == len(set(found))  # no pair twice, although pairs share several bands
    assert set(found) == truth and len(truth) >= 12


def test_pair_members_are_the_images_that_meet_in_a_bucket_with_their_hashes():
    hashes = _hashes(1)
    for band, packed in _buckets(hashes, 8).items():
        members = D.pair_members(band, packed, 8)
        in_pairs = {k for pair in D.bucket_pairs(band, packed, 8) for k in pair}
        assert [k for k, _ in members] == sorted(in_pairs)
        assert all(v == (band, hashes[k]) for k, v in members)


def test_a_bad_image_key_is_refused():
    with pytest.raises(ValueError, match="64 hex digits"):
        D.band_entries("abc", 7, 8)


def test_confirmed_in_bucket_confirms_only_the_pairs_its_band_owns():
    base = puzzle(9, 512)
    copy = altered(base, "jpeg70")
    a, b = _key(1), _key(2)
    ha, hb = phash64(base), phash64(copy)
    members = [(a, ha, thumbnail_bytes(thumbnail(png(base)))), (b, hb, thumbnail_bytes(thumbnail(png(copy))))]
    from curation.images.hashes import band_keys

    shared = [i for i, ((_, va), (_, vb)) in enumerate(zip(band_keys(ha, 8), band_keys(hb, 8))) if va == vb]
    assert shared  # a copy's hash agrees on some band
    for band in shared:
        key = band_keys(ha, 8)[band]
        assert BC.confirmed_in_bucket(key, members, 8) == ([(a, b)] if band == shared[0] else [])


def test_problem_keys_of_an_image_move_to_its_group():
    key = D.duplicate_key("img", "How many  circles?", "3", "question")
    assert D.regrouped(key, "grp") == D.duplicate_key("grp", "how many circles?", "3", "question")
    assert D.regrouped(D.duplicate_key("img", "q", None, "image"), "g") == D.duplicate_key("g", "other", None, "image")


def test_unpack_members_sorts_and_drops_repeats():
    blob = b"".join(m for k in (_key(3), _key(1), _key(3)) for _, m in D.band_entries(k, 42, 8)[:1])
    keys, hashes = D.unpack_members(blob)
    assert keys == sorted({_key(1), _key(3)}) and hashes.tolist() == [42, 42] and hashes.dtype == np.uint64


def test_pairs_come_in_blocks_that_add_up_to_the_whole_bucket():
    hashes = _hashes(2)
    _, h = D.unpack_members(b"".join(D.band_entries(k, v, 8)[0][1] for k, v in sorted(hashes.items())))
    whole = set(zip(*(a.tolist() for a in D.owned_pairs(0, h, 8))))
    blocks = list(D.owned_pair_blocks(0, h, 8, cells=7 * len(h)))  # 7 rows of the bucket per block
    assert len(blocks) > 5 and set().union(*(set(zip(i.tolist(), j.tolist())) for i, j in blocks)) == whole
    assert sum(len(i) for i, _ in blocks) == len(whole) > 12


def test_owners_and_thumbnail_members_pack_and_unpack_exactly():
    hashes = _hashes(2)
    by_image = defaultdict(list)
    for band, packed in _buckets(hashes, 8).items():
        assert [(k.hex(), D.unpacked_owners(v)) for k, v in D.owner_records(band, packed, 8)] == \
            [(k, (h, [b])) for k, (b, h) in D.pair_members(band, packed, 8)]
        for key, record in D.owner_records(band, packed, 8):
            by_image[key].append((band, record))
    assert len(by_image) > 10
    for key, owned in by_image.items():
        h, bands = D.unpacked_owners(D.packed_owners(r for _, r in owned))
        assert (h, bands) == (hashes[key.hex()], [b for b, _ in owned])
    wide = (2**64 - 1).to_bytes(8, "big") + D.packed_band((3, (1 << 63) + 5))  # 64-bit hash and band value survive
    assert D.unpacked_owners(D.packed_owners([wide])) == (2**64 - 1, [(3, (1 << 63) + 5)])
    thumbs = [(_key(i), hashes[_key(i)] if _key(i) in hashes else i, bytes([i]) * i) for i in range(5)]
    assert list(D.thumbnail_members(D.thumbnail_member(*t) for t in thumbs)) == thumbs


def test_confirmed_in_buckets_gathers_spilled_records_by_bucket():
    base = puzzle(9, 512)
    copy, other = altered(base, "jpeg70"), puzzle(10, 512)
    from curation.images.hashes import band_keys

    images = {_key(1): base, _key(2): copy, _key(3): other}
    records = []
    for key, img in images.items():
        h = phash64(img)
        member = D.thumbnail_member(key, h, thumbnail_bytes(thumbnail(png(img))))
        records += [D.bucket_record(band, member) for band in band_keys(h, 8)]  # every bucket of every image
    random.Random(0).shuffle(records)
    assert D.record_bucket(records[0])[1][:32].hex() in images
    assert list(BC.confirmed_in_buckets(records, 8)) == [(min(_key(1), _key(2)), max(_key(1), _key(2)))]


@pytest.mark.parametrize("band", [0, 3])
def test_a_crowded_bucket_cut_into_tiles_has_the_same_owned_pairs(band):
    hashes = _hashes(4)
    _, h = D.unpack_members(b"".join(D.band_entries(k, v, 8)[0][1] for k, v in sorted(hashes.items())))
    whole = set(zip(*(a.tolist() for a in D.owned_pairs(band, h, 8))))
    edges = [0, 7, 30, 31, 60, len(h)]  # uneven blocks, one of a single image
    blocks = list(zip(edges[:-1], edges[1:]))
    tiles = [(int(i), int(j)) for b, rows in enumerate(blocks) for cols in blocks[b:]
             for ia, ib in D.owned_pair_blocks(band, h, 8, cells=50, rows=rows, columns=cols)
             for i, j in zip(ia, ib)]
    assert len(tiles) == len(set(tiles)) and set(tiles) == whole and len(whole) > 12


def _crowded_records(prepared: bool) -> tuple[list[bytes], set]:
    """One bucket (band 0) of 16 images whose hashes all agree, so every pair is a candidate: 4 puzzles, a JPEG
    copy of each, one recoloured cell and one changed digit of each (near, not copies)."""
    images, copies = {}, set()
    for n, seed in enumerate((9, 11, 12, 14)):
        base = puzzle(seed, 384)
        variants = {"base": base, "copy": altered(base, "jpeg70"), "recolour": puzzle(seed, 384, recolour=3),
                    "digit": puzzle(seed, 384, digit_plus=5)}
        keys = {name: _key(100 * n + v) for v, name in enumerate(variants)}
        images.update({keys[name]: img for name, img in variants.items()})
        copies.add(tuple(sorted((keys["base"], keys["copy"]))))
    records = []
    for key, img in images.items():
        data = png(img)
        thumb = D.prepared_thumbnail(data) if prepared else thumbnail_bytes(thumbnail(data))
        records += [D.bucket_record((0, 77), D.thumbnail_member(key, 0, thumb))] * 2  # each image twice
    random.Random(1).shuffle(records)
    return records, copies


@pytest.mark.parametrize("prepared", [True, False])
def test_a_bucket_over_its_byte_budget_is_confirmed_from_a_file_in_tiles_with_the_same_answers(prepared):
    records, copies = _crowded_records(prepared)
    whole = list(BC.confirmed_in_buckets(records, 8))
    assert set(whole) == copies and len(whole) == 4
    member = len(records[0]) - D.BAND_BYTES
    # a budget of ~5 members: the bucket goes to a file after 6, blocks of 2 images -> 36 tiles
    tiled = list(BC.confirmed_in_buckets(records, 8, bucket_bytes=5 * member))
    assert sorted(tiled) == sorted(whole)


def test_a_spilled_bucket_keeps_one_look_per_image_and_removes_its_file():
    import os

    from curation.images.near_copy_batch import first_look

    thumbs = [D.prepared_thumbnail(png(puzzle(seed, 128))) for seed in range(3)]
    members = [D.thumbnail_member(_key(i % 3), i % 3, thumbs[i % 3]) for i in range(7)]
    with BC.SpilledBucket(members[:2]) as bucket:
        for m in members[2:]:
            bucket.add(m)
        heads, hashes = bucket.members()
        assert [h[:32].hex() for h in heads] == sorted(_key(i) for i in range(3))
        assert hashes.tolist() == [int.from_bytes(h[32:], "big") for h in heads]
        order = [int.from_bytes(h[32:], "big") for h in heads]  # the hash of _key(i) is i here
        for look, i in zip(bucket.looks(0, 3)[1:], order[1:]):  # read back as first_look made them
            want = first_look(thumbs[i])
            assert (look.thumb, look.grid, look.p99) == (want.thumb, want.grid, want.p99)
            assert np.array_equal(look.bits, want.bits)
        assert os.fstat(bucket.file.fileno()).st_nlink == 0  # unnamed: nothing left on disk if the process is killed
    assert bucket.file.closed
