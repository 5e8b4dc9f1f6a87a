"""Who owns an unpublished version folder, and whether that owner is gone: what lets a later run (or
``sightline data gc``) remove what a killed writer left, without touching a live writer's folder.

Every staging folder (local), spool folder (local copy for object storage) and claimed ``vNNNN`` folder
(object storage) holds one owner file, ``_OWNER.<token>.json``: the writer's host, pid, the pid's start time
and a heartbeat time that a thread of the writer rewrites every ``HEARTBEAT_S``. The owner is gone when

- it ran on this host and its pid is dead, or now names another process (start time differs): at once.
  A live process on this host is never judged by its heartbeat (a loaded machine may starve the thread);
- it ran on another host (or this host cannot tell pids apart) and its heartbeat is older than ``STALE_S``:
  a writer alive anywhere rewrites it every ``HEARTBEAT_S``, so a live folder is never taken; this is the
  only test that works across machines sharing an object store.

A folder without an owner file (written before this existed, or killed between mkdir and the first
write) is judged by its own age against ``STALE_S``.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

OWNER_PREFIX = "_OWNER."
HEARTBEAT_S = 20.0
STALE_S = 10 * 60.0


def _pid_started(pid: int) -> float | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), None elsewhere or when dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return float(stat[stat.rindex(b")") + 2:].split()[19])  # field 22, after the comm in parentheses
    except (ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass
class Owner:
    token: str
    host: str
    pid: int
    pid_started: float | None
    heartbeat_at: float

    @classmethod
    def me(cls, token: str) -> Owner:
        return cls(token, socket.gethostname(), os.getpid(), _pid_started(os.getpid()), time.time())

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Owner | None:
        try:
            d = json.loads(data)
            return cls(str(d["token"]), str(d["host"]), int(d["pid"]),
                       None if d.get("pid_started") is None else float(d["pid_started"]), float(d["heartbeat_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def gone(self, now: float | None = None, stale_s: float = STALE_S) -> bool:
        now = time.time() if now is None else now
        if self.host == socket.gethostname():
            if not _pid_alive(self.pid):
                return True
            started = _pid_started(self.pid)
            if started is not None and self.pid_started is not None:
                return started != self.pid_started  # alive and the same process, or the pid was reused
        return now - self.heartbeat_at >= stale_s


def owner_file(folder, token: str):
    return folder / f"{OWNER_PREFIX}{token}.json"


def write_owner(folder, owner: Owner) -> None:
    """(Re)write the owner file; locally through a rename, so a reader never sees half of it."""
    from pathlib import Path

    target = owner_file(folder, owner.token)
    if isinstance(target, Path):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(owner.to_bytes())
        os.replace(tmp, target)
    else:
        target.write_bytes(owner.to_bytes())  # one object PUT: readers see the old or the new bytes


def owners_of(folder) -> list[Owner | None]:
    """The owners named in ``folder`` (None for an owner file that cannot be read)."""
    out = []
    for p in folder.iterdir():
        if p.name.startswith(OWNER_PREFIX) and p.name.endswith(".json"):
            try:
                out.append(Owner.from_bytes(p.read_bytes()))
            except OSError:
                out.append(None)
    return out


def abandoned(folder, *, now: float | None = None, stale_s: float = STALE_S) -> bool:
    """Whether nobody is writing ``folder`` any more: every owner named in it is gone or, with no readable
    owner, nothing in it changed for ``stale_s``. A folder whose age cannot be read is kept."""
    now = time.time() if now is None else now
    owners = [o for o in owners_of(folder) if o is not None]
    if owners:
        return all(o.gone(now, stale_s) for o in owners)
    changed = _last_change(folder)
    return changed is not None and now - changed >= stale_s


def _last_change(folder) -> float | None:
    """The newest modification time of the folder and its entries (one level), None when none can be read."""
    from pathlib import Path

    times = []
    if isinstance(folder, Path):
        for p in [folder, *folder.iterdir()]:
            try:
                times.append(p.stat().st_mtime)
            except OSError:
                continue
        return max(times, default=None)
    for p in folder.iterdir():
        try:
            times.append(folder.fs.modified(p.path).timestamp())
        except (OSError, NotImplementedError, AttributeError, ValueError):
            continue  # a prefix ("folder") on an object store has no time of its own
    return max(times, default=None)


class Heartbeat:
    """Writes the owner file now and every ``HEARTBEAT_S`` until ``stop()``, from a daemon thread."""

    def __init__(self, folder, token: str, interval_s: float = HEARTBEAT_S):
        self.folder, self.token, self.interval_s = folder, token, interval_s
        self._stop = threading.Event()
        write_owner(folder, Owner.me(token))
        self._thread = threading.Thread(target=self._run, name="staging-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not owner_file(self.folder, self.token).exists():
                    return  # published or removed: nothing to keep alive (and no owner file to recreate)
                write_owner(self.folder, Owner.me(self.token))
            except OSError:
                continue

    def stop(self, remove: bool = True) -> None:
        """Stop beating (waits for a write in progress) and, with ``remove``, delete the owner file."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if remove:
            try:
                owner_file(self.folder, self.token).unlink(missing_ok=True)
            except OSError:
                pass
