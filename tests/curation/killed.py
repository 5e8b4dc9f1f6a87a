"""Test helper: make a writer look killed (kill -9 ends its heartbeat thread with it, its pid is gone)."""
from __future__ import annotations

import subprocess
import sys

from curation.store.owner import OWNER_PREFIX, Owner, write_owner


def dead_pid() -> int:
    """The pid of a process that has exited (reaped, so the number names nothing now)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def as_killed(staging) -> None:
    """What SIGKILL leaves of a ``Staging``: its folder and owner file, the owner's process dead."""
    hb, staging.heartbeat = staging.heartbeat, None
    hb.stop(remove=False)
    for p in staging.path.iterdir():
        if p.name.startswith(OWNER_PREFIX):
            o = Owner.from_bytes(p.read_bytes())
            o.pid, o.pid_started = dead_pid(), None
            write_owner(staging.path, o)
