"""curation.images.owner_index: an owner index file finds exactly the images it holds, and nothing else."""
import random

import pytest

from curation.images import duplicates as D
from curation.images.owner_index import OwnerIndex, packed_index


def _entries(rng: random.Random, n: int) -> dict[bytes, bytes]:
    return {rng.randbytes(32): D.packed_owners([rng.randbytes(8) + rng.randbytes(9) * rng.randrange(1, 4)])
            for _ in range(n)}


def test_every_key_finds_its_own_owners_and_absent_keys_find_none():
    rng = random.Random(0)
    entries = _entries(rng, 500)
    index = OwnerIndex(packed_index(entries.items()))  # any order in; sorted inside
    assert len(index) == 500
    for key, owners in entries.items():
        assert index.get(key) == owners
    keys = sorted(entries)
    below, above = bytes(32), b"\xff" * 32  # before the first key and after the last
    assert below not in entries and above not in entries
    assert index.get(below) is None and index.get(above) is None
    for _ in range(200):
        absent = rng.randbytes(32)
        assert index.get(absent) is None
    # just after a present key: same 31 bytes, last byte + 1 (absent unless it is the next key)
    for key in keys[:50]:
        near = key[:31] + bytes([(key[31] + 1) % 256])
        assert index.get(near) == entries.get(near)
    assert index.get(keys[0][:31]) is None and index.get(keys[0] + b"\x00") is None  # wrong lengths


def test_keys_that_share_a_prefix_are_told_apart():
    rng = random.Random(1)
    base = rng.randbytes(8)
    # eight keys sharing their first 8 bytes (the part the binary search looks at), two sharing 31
    shared = [base + rng.randbytes(24) for _ in range(6)] + [base + bytes(23) + b"\x01", base + bytes(23) + b"\x03"]
    entries = {k: rng.randbytes(17) for k in shared} | _entries(rng, 100)
    index = OwnerIndex(packed_index(entries.items()))
    for key, owners in entries.items():
        assert index.get(key) == owners
    assert index.get(base + bytes(23) + b"\x02") is None  # between the two that share 31 bytes
    assert index.get(base + bytes(24)) is None            # before every key of the prefix
    assert index.get(base + b"\xff" * 24) is None         # after every key of the prefix


def test_owners_round_trip_through_the_index():
    band_keys = [(0, 5), (3, (1 << 63) + 7), (8, 0)]
    key = bytes(range(32))
    records = [(2**64 - 1).to_bytes(8, "big") + D.packed_band(b) for b in band_keys]
    index = OwnerIndex(packed_index([(key, D.packed_owners(records))]))
    assert D.unpacked_owners(index.get(key)) == (2**64 - 1, band_keys)


def test_an_empty_index_finds_nothing():
    index = OwnerIndex(packed_index([]))
    assert len(index) == 0 and index.get(bytes(32)) is None


def test_bad_entries_and_damaged_files_are_clear_errors():
    with pytest.raises(ValueError, match="32 bytes"):
        packed_index([(b"short", b"x")])
    with pytest.raises(ValueError, match="appears twice"):
        packed_index([(bytes(32), b"a"), (bytes(32), b"b")])
    data = packed_index(_entries(random.Random(2), 10).items())
    with pytest.raises(ValueError, match="header says"):
        OwnerIndex(data[:-1])
    with pytest.raises(ValueError, match="not an owner index"):
        OwnerIndex(b"PICKLE!!" + data[8:])
    with pytest.raises(ValueError, match="shorter than its header"):
        OwnerIndex(data[:10], "f.bin")
