"""Local Beam workers forked from a warm process, not started cold.

With ``--workers N`` Beam's local runner starts N worker processes per pass, each a fresh interpreter that
imports Beam, Arrow, Pillow and our modules before it does any work (~1-2 s of CPU each, four starts for the
two passes). :class:`ForkServer` forks the main process once, before any thread or gRPC server exists, into a
*zygote* that imports what a worker needs and waits on a Unix socket. Beam still starts each worker with a
shell command (``runner.quiet_workers`` puts :func:`client_command` there); that command is a ~20 ms
interpreter without ``site`` that hands its stdin/stdout/stderr and Beam's endpoints (environment variables) to
the zygote and waits. The zygote forks a *keeper*, which forks the worker (:func:`beam_worker` with the
client's environment and file descriptors), waits for it and sends its exit status back; when the client goes
away first (Beam killed it), the keeper kills the worker. The zygote ends when the main process closes its
pipe (the ``with`` block ends, or the process dies).

Only where it is safe: Linux (abstract socket names, ``os.fork``, pidfds), and one Python thread in the main process
at the moment of the fork (a multi-process Beam run leaves gRPC's threads behind, so a second run in the same
process starts its workers cold, as before). The native threads present by then (jemalloc's background thread,
OpenBLAS's and Arrow's pools) belong to libraries with fork handlers, as for multiprocessing's ``fork`` start.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import struct
import sys
import threading

ENV = "SIGHTLINE_FORKSERVER"
WORKER_NAME = "sightline-work"  # the worker's process name (/proc/PID/comm, 15 bytes at most): PeakRss counts it
KEYS = ("CONTROL_API_SERVICE_DESCRIPTOR", "LOGGING_API_SERVICE_DESCRIPTOR", "PIPELINE_OPTIONS", "WORKER_ID")
# imported by the zygote after the fork, so that every worker it forks has them already
WARM = ("apache_beam.runners.worker.sdk_worker_main", "pipelines.transforms", "pipelines.dedup", "pipelines.spill",
        "pyarrow.parquet", "imagehash", "scipy.fftpack", "PIL.PngImagePlugin", "PIL.JpegImagePlugin")

# The worker command's program: no site (the import machinery of a venv costs ~10x the rest), no project import.
CLIENT = """\
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\\0" + os.environ["%s"])
body = json.dumps({k: os.environ[k] for k in %r if k in os.environ}).encode()
socket.send_fds(s, [struct.pack("!Q", len(body))], [0, 1, 2])
s.sendall(body)
got = b""
while len(got) < 4:
    more = s.recv(4 - len(got))
    if not more:
        sys.exit("sightline fork server: the worker's keeper went away")
    got += more
sys.exit(struct.unpack("!i", got)[0])
""" % (ENV, KEYS)


def client_command() -> str | None:
    """The worker command that asks this process's fork server for a worker; None when none is running."""
    if not os.environ.get(ENV):
        return None
    return f"{shlex.quote(sys.executable)} -S -c {shlex.quote(CLIENT)}"


class ForkServer:
    """``with ForkServer():`` -- local Beam workers started inside the block are forked from a warm zygote.

    ``active`` says whether it started (see the module docstring for when it does not)."""

    def __init__(self):
        self.active, self.pid, self.pipe, self.name = False, None, None, None

    def __enter__(self) -> ForkServer:
        if sys.platform != "linux" or not hasattr(os, "pidfd_open") or threading.active_count() > 1 \
                or os.environ.get(ENV):
            return self
        try:  # the keeper waits on a pidfd (Linux >= 5.3)
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            return self
        self.name = f"sightline-fork-{os.getpid()}-{os.urandom(6).hex()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind("\0" + self.name)
        listener.listen(64)
        r, w = os.pipe()
        # what a cold worker would inherit through exec: ignored stays ignored (e.g. a background job's SIGINT)
        ignore_interrupt = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the zygote
            code = 0
            try:
                os.close(w)
                _zygote(listener, r, ignore_interrupt)
            except BaseException:  # noqa: BLE001 -- a zygote never returns into the caller's code
                code = 1
            finally:
                os._exit(code)
        os.close(r)
        listener.close()
        self.active, self.pid, self.pipe = True, pid, w
        os.environ[ENV] = self.name
        return self

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        os.environ.pop(ENV, None)
        os.close(self.pipe)  # the zygote reads EOF and leaves
        os.waitpid(self.pid, 0)
        self.active = False


def _zygote(listener: socket.socket, parent: int, ignore_interrupt: bool) -> None:
    import importlib
    import select

    _name("sightline-zygo")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process; its pipe then ends this one
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    while True:
        ready, _, _ = select.select([listener, parent], [], [])
        if parent in ready:
            return
        conn, _ = listener.accept()
        if os.fork() == 0:
            code = 0
            try:
                listener.close()
                os.close(parent)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _keeper(conn, ignore_interrupt)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        conn.close()


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        more = conn.recv(n - len(got))
        if not more:
            raise EOFError("fork client went away")
        got += more
    return got


def _keeper(conn: socket.socket, ignore_interrupt: bool) -> None:
    """One worker: receive the client's descriptors and environment, fork the worker, report its exit status."""
    import select

    head, fds, _, _ = socket.recv_fds(conn, 8, 3)
    size = struct.unpack("!Q", head + _recv_exactly(conn, 8 - len(head)))[0]
    env = json.loads(_recv_exactly(conn, size))
    pid = os.fork()
    if pid == 0:
        _worker(conn, fds, env, ignore_interrupt)
    for fd in fds:
        os.close(fd)
    exited = os.pidfd_open(pid)  # readable when the worker exits; signals through it never reach a reused pid
    while True:
        ready, _, _ = select.select([conn, exited], [], [])
        if exited in ready:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            try:
                conn.sendall(struct.pack("!i", code if code >= 0 else 128 - code))
            except OSError:
                pass
            return
        if not conn.recv(1):  # the client is gone (Beam killed it): so goes its worker
            signal.pidfd_send_signal(exited, signal.SIGKILL)
            os.waitpid(pid, 0)
            return


def _name(name: str) -> None:
    """This process's name as ``ps`` and psutil's ``name()`` show it (prctl PR_SET_NAME)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _worker(conn: socket.socket, fds: list[int], env: dict, ignore_interrupt: bool) -> None:
    code = 0
    try:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_interrupt else signal.default_int_handler)
        _name(WORKER_NAME)
        os.environ.update(env)
        sys.argv = [sys.executable]
        beam_worker()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 -- said on the worker's stderr, then the exit status tells Beam
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def beam_worker() -> None:
    """Beam's SDK worker process, with its log lines on stderr filtered as ``curate.run`` filters the main
    process's: Beam's own below ERROR (it logs ~20 INFO lines per worker and pass) and library warnings sent to
    the root logger (apitools) are dropped; ours (``sightline.*``) pass from WARNING up."""
    import logging

    from apache_beam.runners.worker import sdk_worker_main

    def keep(record: logging.LogRecord) -> bool:
        name = record.name
        beam = name in ("root", "__main__") or name == "apache_beam" or name.startswith("apache_beam.")
        return record.levelno >= (logging.ERROR if beam else logging.WARNING)

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    handler.addFilter(keep)
    logging.getLogger().handlers[:] = [handler]
    sdk_worker_main.main(sys.argv)
