"""Beam graphs and the command line: wiring only, the logic lives in `curation/`."""
import os
import sys

# Arrow's default pool (mimalloc) keeps freed native memory: pass 2's Parquet reads left ~30 MB at 8,000 rows
# that grew with the rows. jemalloc gives it back (measured with benchmarks/memory_by_stage.py: 8,000 / 32,000
# rows peak 287 / 296 MB -> 243 / 254 MB). The pool is chosen when pyarrow is first imported, so it is set here,
# before anything under pipelines/ imports it; a user's own ARROW_DEFAULT_MEMORY_POOL wins, and Beam's worker
# processes inherit it. Linux wheels of pyarrow carry jemalloc.
if sys.platform.startswith("linux"):
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
