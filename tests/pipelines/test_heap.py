"""pipelines.heap.trim gives freed heap memory back: measured on this process's resident size (glibc only)."""
import resource

import pytest

from pipelines import heap


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not heap._malloc_trim(), reason="no malloc_trim in this C library")
def test_trim_returns_freed_heap_pages_that_malloc_kept():
    blocks = [bytearray(4000) for _ in range(12_000)]  # ~48 MB from malloc (over obmalloc's 512-byte limit)
    keep = blocks[::200]  # a few survivors scattered through the heap: only malloc_trim's page release frees around them
    del blocks
    before = _rss()
    assert heap.trim(every=0)
    after = _rss()
    assert before - after > 24 * 2**20, (before, after)
    assert len(keep) == 60


def test_trim_waits_between_calls():
    heap.trim(every=0)
    assert heap.trim(every=3600) is False  # the last trim was just now
