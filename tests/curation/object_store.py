"""A bucket-like fsspec filesystem for tests, registered as ``sltest://``.

It has what the store must not rely on removed: no rename (``mv`` raises), no exclusive create (mode
"xb" is refused), and writes that become visible in two steps (first half the bytes, then all), so a
reader can catch a torn object. Hooks let a test widen race windows or play a competing writer.
"""
from __future__ import annotations

import io
import threading
import time
from typing import ClassVar

import fsspec
from fsspec.spec import AbstractFileSystem

PROTOCOL = "sltest"


class _TornWriter(io.BytesIO):
    def __init__(self, fs: NoRenameFileSystem, path: str):
        super().__init__()
        self.fs, self.path = fs, path

    def close(self) -> None:
        if not self.closed:
            self.fs._put(self.path, self.getvalue())
        super().close()


class NoRenameFileSystem(AbstractFileSystem):
    """One bucket shared by every instance: fsspec caches one instance per thread, like memory:// does."""

    protocol = PROTOCOL
    root_marker = ""
    objects: ClassVar[dict[str, bytes]] = {}
    lock = threading.Lock()
    torn_pause = 0.0     # seconds a half-written object stays visible
    claim_pause = 0.0    # seconds after a `_CLAIM.` marker lands (lets two writers both claim)
    ls_pause = 0.0       # seconds after each listing (lets two writers pick the same number)
    rival_claims = False  # every claim marker is joined by a competitor's marker
    claims_written = 0

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len(PROTOCOL) + 3:] if path.startswith(PROTOCOL + "://") else path
        return path.strip("/")

    def _put(self, path: str, data: bytes) -> None:
        name = path.rsplit("/", 1)[-1]
        with self.lock:
            self.objects[path] = data[: len(data) // 2]
        time.sleep(self.torn_pause)
        with self.lock:
            self.objects[path] = data
            if name.startswith("_CLAIM."):
                NoRenameFileSystem.claims_written += 1
                if self.rival_claims:
                    self.objects[path.rsplit("/", 1)[0] + "/_CLAIM.rival"] = b"{}"
        if name.startswith("_CLAIM."):
            time.sleep(self.claim_pause)

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        with self.lock:
            if path in self.objects:
                out = [{"name": path, "size": len(self.objects[path]), "type": "file"}]
                return out if detail else [path]
            prefix = path + "/" if path else ""
            entries: dict[str, dict] = {}
            for key, data in self.objects.items():
                if key.startswith(prefix):
                    head, sep, _ = key[len(prefix):].partition("/")
                    name = prefix + head
                    entries[name] = ({"name": name, "size": 0, "type": "directory"} if sep
                                     else {"name": name, "size": len(data), "type": "file"})
        time.sleep(self.ls_pause)
        if not entries and path:
            raise FileNotFoundError(path)
        out = sorted(entries.values(), key=lambda e: e["name"])
        return out if detail else [e["name"] for e in out]

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        with self.lock:
            if path in self.objects:
                return {"name": path, "size": len(self.objects[path]), "type": "file"}
            if any(k.startswith(path + "/") for k in self.objects):
                return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        path = self._strip_protocol(path)
        if mode == "rb":
            with self.lock:
                if path not in self.objects:
                    raise FileNotFoundError(path)
                return io.BytesIO(self.objects[path])
        if mode == "wb":
            return _TornWriter(self, path)
        raise ValueError(f"{PROTOCOL}: unsupported mode {mode!r} (no exclusive create here)")

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        with self.lock:
            if path not in self.objects:
                raise FileNotFoundError(path)
            return self.objects[path][start:end]

    def cp_file(self, path1, path2, **kwargs):
        self._put(self._strip_protocol(path2), self.cat_file(path1))

    def rm_file(self, path):
        path = self._strip_protocol(path)
        with self.lock:
            if path not in self.objects:
                raise FileNotFoundError(path)
            del self.objects[path]

    def rm(self, path, recursive=False, maxdepth=None):
        for p in [path] if isinstance(path, str) else path:
            p = self._strip_protocol(p)
            with self.lock:
                for key in [k for k in self.objects if k == p or (recursive and k.startswith(p + "/"))]:
                    del self.objects[key]

    def mkdir(self, path, create_parents=True, **kwargs):
        pass  # folders are prefixes

    def makedirs(self, path, exist_ok=False):
        pass

    def mv(self, *args, **kwargs):
        raise NotImplementedError(f"{PROTOCOL}: no rename on this filesystem")


def registered() -> type[NoRenameFileSystem]:
    """Register ``sltest://``; returns the class, whose attributes are the shared bucket and hooks (reset)."""
    fsspec.register_implementation(PROTOCOL, NoRenameFileSystem, clobber=True)
    cls = NoRenameFileSystem
    cls.torn_pause = cls.claim_pause = cls.ls_pause = 0.0
    cls.rival_claims = False
    cls.claims_written = 0
    return cls
