"""A `sightline data` run killed with SIGKILL leaves its staging folder (work shards included); `sightline data gc`
and the next run remove it, and never a folder whose writer is alive."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.store.versions import STAGING_PREFIX, Store

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_work(root: Path, proc: subprocess.Popen, timeout_s: float = 240) -> Path:
    """The run's staging folder, once Beam has started writing into it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for st in root.glob(STAGING_PREFIX + "*"):
            if any(p.name.startswith("_tmp-") or p.name == "_work" for p in st.iterdir()):
                return st
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no staging folder with work in it appeared")


@pytest.mark.slow
def test_kill_9_leaves_staging_that_gc_removes_but_not_a_live_writers(tmp_path):
    root = tmp_path / "mini"
    live = Store(root).begin()  # a writer at work the whole time, in this process
    try:
        run = _cli("data", "--set", "synthetic.n=20000", "--set", f"output_root={tmp_path}")
        staging = _wait_for_work(root, run)
        os.kill(run.pid, signal.SIGKILL)
        run.communicate()
        assert run.returncode == -signal.SIGKILL
        assert staging.is_dir() and any(staging.iterdir())  # what kill -9 leaves: nobody ever removed it
        assert Store(root).versions() == [] and live.path.is_dir()  # the run's own start kept the live one
        dry = _cli("data", "gc", "--data", str(root), "--dry-run")
        out, err = dry.communicate(timeout=120)
        assert dry.returncode == 0, err
        assert f"would remove {staging}" in out and staging.is_dir()
        gc = _cli("data", "gc", "--data", str(root))
        out, err = gc.communicate(timeout=120)
        assert gc.returncode == 0, err
        assert f"removed {staging}" in out and "removed 1, kept 1" in out
        assert not staging.exists()
        assert live.path.is_dir()  # its writer (this test) is alive
    finally:
        live.abort()
