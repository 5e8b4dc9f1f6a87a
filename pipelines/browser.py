"""A headless Chromium driven over the DevTools protocol on a pipe: load a page, collect its console
errors, evaluate JavaScript, take a screenshot. It checks the datasheet page (``sightline report --html``)
in a real browser and makes the README's screenshot.

    python -m pipelines.browser screenshot data/mini/reports/v0001/datasheet.html docs/datasheet.png \\
        [--selector '#samples'] [--width 1280] [--height 1000]

No driver package: Chromium's ``--remote-debugging-pipe`` reads JSON commands from fd 3 and writes
replies and events to fd 4, each message ended by a NUL byte. The browser comes from the system
(``chromium`` from the Debian packages, or ``$CHROMIUM``); ``find_chromium`` says where, or None.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from curation.errors import SightlineError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page. Use as a context manager; every wait is bounded by ``timeout``."""

    def __init__(self, executable: str | None = None, *, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise SightlineError("no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
        self.width, self.height, self.timeout = width, height, timeout
        self.events: list[dict] = []
        self._next_id, self._buf = 0, b""

    # ---- process and pipe
    def __enter__(self) -> Self:
        self._profile = tempfile.TemporaryDirectory(prefix="sightline-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def wire():  # in the child: its fd 3 reads our commands, fd 4 carries its replies
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        cmd = [self.executable, "--headless", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
               "--disable-gpu", "--disable-extensions", "--disable-background-networking", "--disable-sync",
               "--mute-audio", "--hide-scrollbars", f"--user-data-dir={self._profile.name}",
               f"--window-size={self.width},{self.height}", "about:blank"]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")
        # fds 3 and 4 must be placed in the child; nothing else forks from the thread that drives the browser
        self.proc = subprocess.Popen(cmd, preexec_fn=wire,  # noqa: PLW1509
                                     close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        os.close(to_r)
        os.close(from_w)
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._send("Browser.close", {}, None)
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_w, self._from_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self._profile.cleanup()

    def _send(self, method: str, params: dict, session: str | None) -> int:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise SightlineError(f"Chromium did not answer within {self.timeout:g} s ({self.log_tail()})")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise SightlineError(f"Chromium exited (code {self.proc.poll()}): {self.log_tail()}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def log_tail(self) -> str:
        try:
            text = (Path(self._profile.name) / "chromium.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return text[-1][:300] if text else "no log"

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        want = self._send(method, params or {}, self.session if session else None)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise SightlineError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        seen = len(self.events)
        while True:
            for e in self.events[seen:]:
                if e["method"] == method:
                    return e
            seen = len(self.events)
            msg = self._read(deadline)
            if "method" in msg:
                self.events.append(msg)

    # ---- what a test or a script asks for
    def open(self, path: str | os.PathLike) -> None:
        """Load a local file and wait for its load event."""
        url = Path(path).resolve().as_uri()
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise SightlineError(f"page script failed: {d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error / console.assert, and browser log errors (CSP, failed loads)."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def screenshot(self, out: str | os.PathLike, selector: str | None = None, height: int | None = None) -> Path:
        """PNG of the viewport, or of the element matching ``selector`` (its top ``height`` px at most)."""
        params: dict[str, Any] = {"format": "png"}
        if selector:
            box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                                f".getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }})()")
            x, y, w, h = box
            params.update(clip={"x": x, "y": y, "width": w, "height": min(h, height or h), "scale": 1},
                          captureBeyondViewport=True)
        data = base64.b64decode(self.call("Page.captureScreenshot", params, session=True)["data"])
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.browser", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("screenshot", help="open a local page in headless Chromium and save a PNG")
    s.add_argument("page")
    s.add_argument("png")
    s.add_argument("--selector", default=None, help="CSS selector of the element to capture (default: the viewport)")
    s.add_argument("--width", type=int, default=1280)
    s.add_argument("--height", type=int, default=1000, help="viewport height, and the most of the element captured")
    s.add_argument("--eval", default=None, help="JavaScript to run before the capture (e.g. click a tab)")
    s.add_argument("--palette", action="store_true", help="save as a 256-colour PNG (a few times smaller)")
    a = p.parse_args(argv)
    with Browser(width=a.width, height=a.height) as b:
        b.open(a.page)
        if a.eval:
            b.evaluate(a.eval)
        errors = b.console_errors()
        if errors:
            raise SightlineError(f"{a.page}: console error: {errors[0]}")
        out = b.screenshot(a.png, a.selector, a.height)
    if a.palette:
        from PIL import Image

        with Image.open(out) as im:
            im.convert("RGB").quantize(256).save(out, optimize=True)
    print(f"{out} ({out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    import sys

    try:
        sys.exit(main())
    except SightlineError as e:
        print(f"pipelines.browser: error: {e}", file=sys.stderr)
        sys.exit(1)
