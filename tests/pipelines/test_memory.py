"""Curating more rows must not need memory in proportion to them: peak RSS of a real `sightline data` run
(program teachers, in-process runner, local store) at two sizes, each in a fresh process, measured the way
`benchmarks/pipeline_throughput.py` measures it (its `--child pipeline` mode: the process's ru_maxrss and
the sampled sum over its worker processes).

Measured on the 2-core machine (three runs each): 286-290 MB at 2,000 rows and 301-305 MB at 8,000, i.e.
+15 MB (~2.5 KB per added row: writer buffers and per-bucket working sets still filling up, the candidate
owners side input). Before the scan's spill files (pipelines/spill.py) the same runs gave 296 and 348 MB,
+52 MB: putting thumbnails, band entries or problem keys back into a shuffle adds ~10 MB or more here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL, LARGE = 2_000, 8_000
MARGIN_MB = 24  # measured +15 MB (noise ~3 MB); a shuffle of any per-row structure again: +25 MB or more


def _peak_mb(n: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/pipeline_throughput.py"), "--child", "pipeline",
                        "--n", str(n), "--workers", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["examples"] > 0.9 * n
    return out["peak_rss_mb"]


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_the_rows():
    small, large = _peak_mb(SMALL), _peak_mb(LARGE)
    assert large - small <= MARGIN_MB, (f"peak RSS {small:.0f} MB at {SMALL:,} rows, {large:.0f} MB at "
                                        f"{LARGE:,} rows: +{(large - small) * 2**20 / (LARGE - SMALL):,.0f} B per row")


def test_pipelines_choose_jemalloc_for_arrow_unless_the_user_chose():
    """pyarrow picks its pool at first import: importing pipelines (what `sightline` and the benchmarks import
    first) must choose jemalloc before that, and leave a user's own choice alone."""

    code = "import pipelines.curate, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    kept = subprocess.run([sys.executable, "-c", code], env=dict(env, ARROW_DEFAULT_MEMORY_POOL="system"),
                          capture_output=True, text=True, check=True)
    assert chosen.stdout.split() == ["jemalloc"] and kept.stdout.split() == ["system"]


def test_a_data_run_never_imports_pyarrow_dataset(tmp_path):
    """``pq.read_table`` imports ``pyarrow.dataset`` (its libraries and modules: +45 MB of RSS, measured), which a
    data run needs nowhere: a real run (decisions read back in pass 2, rejects summed at the end) in a fresh
    process must not have it loaded when it is done."""
    code = ("import sys; from curation.recipe import load_data_recipe; from pipelines.curate import run; "
            f"run(load_data_recipe('configs/data/mini.yaml', ['output_root={tmp_path}', 'synthetic.n=60'])); "
            "print(sorted(m for m in sys.modules if m.startswith('pyarrow.dataset') or m.startswith('pyarrow._dataset')))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "mini" / "v0001" / "manifest.json").exists()
