"""``pipelines.forkserver``: Beam's local workers forked from a warm zygote (real Beam runs, real processes).

A fork server starts only in a process with one thread, and a multi-process Beam run leaves gRPC's threads
behind, so each test that needs one runs its body (``_...``) in a fresh interpreter (:func:`_fresh`).
"""
import glob
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
import psutil

from pipelines.forkserver import ENV, WORKER_NAME, ForkServer, client_command
from pipelines.runner import new_pipeline


def _names_of_workers(folder, workers: int) -> set[str]:
    with new_pipeline(workers) as p:
        (p | beam.Create(list(range(40))) | beam.Reshuffle()
         | beam.Map(lambda _: open("/proc/self/comm").read().strip() + f" {os.getpid()}")
         | beam.io.WriteToText(f"{folder}/names"))
    return {line.strip() for f in glob.glob(f"{folder}/names*") for line in open(f)}


def _fresh(body: str, *args) -> None:
    """Run ``body`` of this module in a new interpreter; its failure (an AssertionError's traceback) fails the test."""
    root = Path(__file__).resolve().parents[2]
    code = f"import sys; from tests.pipelines.test_forkserver import {body}; {body}(*sys.argv[1:])"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_local_workers_are_forked_from_the_zygote_and_the_zygote_ends_with_the_block(tmp_path):
    _fresh("_forked_workers", tmp_path)


def _forked_workers(tmp_path):
    tmp_path = Path(tmp_path)
    with ForkServer() as fs:
        assert fs.active and os.environ[ENV] and client_command() is not None
        zygote = psutil.Process(fs.pid)
        forked = _names_of_workers(tmp_path / "forked", 2)
    names = {n.split()[0] for n in forked}
    assert names == {WORKER_NAME}
    pids = {int(n.split()[1]) for n in forked}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert ENV not in os.environ and client_command() is None
    assert not zygote.is_running()  # reaped by __exit__
    # without it, Beam starts them cold: a fresh interpreter, not our worker name
    cold = {n.split()[0] for n in _names_of_workers(tmp_path / "cold", 2)}
    assert WORKER_NAME not in cold


def test_a_worker_that_fails_gives_its_exit_status_and_stderr_to_the_client():
    _fresh("_failing_worker")


def _failing_worker():
    with ForkServer() as fs:
        assert fs.active
        env = {k: v for k, v in os.environ.items() if k != "CONTROL_API_SERVICE_DESCRIPTOR"}
        out = subprocess.run(client_command(), shell=True, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "CONTROL_API_SERVICE_DESCRIPTOR" in out.stderr  # the worker's traceback, on the client's stderr


def _workers_under(pid: int) -> list:
    return [c for c in psutil.Process(pid).children(recursive=True) if c.name() == WORKER_NAME]


def _waiting_worker(fs: ForkServer):
    """A client and its forked worker, which waits to connect to a control address nobody serves (as long as
    nothing stops it)."""
    env = dict(os.environ, CONTROL_API_SERVICE_DESCRIPTOR='url: "localhost:9"', PIPELINE_OPTIONS="{}")
    client = subprocess.Popen(client_command(), shell=True, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _workers_under(fs.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (worker,) = _workers_under(fs.pid)
    return client, worker


def test_killing_the_client_kills_its_worker():
    _fresh("_killed_client")


def _killed_client():
    with ForkServer() as fs:
        client, worker = _waiting_worker(fs)
        for p in psutil.Process(client.pid).children(recursive=True) + [psutil.Process(client.pid)]:
            p.kill()
        client.wait()
        worker.wait(timeout=10)  # raises psutil.TimeoutExpired if the keeper left it running
        assert not worker.is_running()


def test_a_worker_keeps_the_interrupt_disposition_a_cold_one_would_inherit():
    _fresh("_interrupt", "ignored")  # e.g. a background job: Ctrl-C meant for the shell must not stop the run
    _fresh("_interrupt", "default")


def _interrupt(disposition: str):
    import signal

    if disposition == "ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with ForkServer() as fs:
        client, worker = _waiting_worker(fs)
        time.sleep(0.5)  # past its start: a worker that runs Python code with the disposition set
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=5)
            stopped = True
        except psutil.TimeoutExpired:
            stopped = False
        assert stopped == (disposition == "default"), disposition
        client.kill()
        client.wait()


def test_no_fork_while_another_thread_runs():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with ForkServer() as fs:
            assert not fs.active and client_command() is None
    finally:
        stop.set()
        t.join()
