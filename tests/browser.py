"""Headless Chromium driven over the Chrome DevTools Protocol (a websocket; no chromedriver, no
browser download): Debian's ``chromium`` package, started with every host but 127.0.0.1
unresolvable, so a page that needs the internet shows it. Every request the page makes is
recorded, and so is every uncaught JavaScript error."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from base64 import b64decode
from pathlib import Path
from typing import Any

import websocket

from tests.helpers import eventually_sync

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chromium", "fonts-liberation", "libgl1-mesa-dri")
INSTALL = "apt-get install -y --no-install-recommends " + " ".join(PACKAGES)
LOCK = Path(tempfile.gettempdir()) / "pgpager-chromium-install.lock"


def _find() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_path() -> str:
    """Debian's Chromium, installed with apt-get on first use when it is missing (the test
    set-up does it, so the README's test command works on a fresh machine). One installer at a
    time across pytest workers; a machine where that is impossible fails with what to run."""
    found = _find()
    if found:
        return found
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find()
        if found:
            return found
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = [
            [*sudo, "apt-get", "update", "-qq"],
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(
                    f"no Chromium and could not install it ({exc}): {INSTALL}"
                ) from exc
            if done.returncode != 0:
                raise RuntimeError(
                    f"no Chromium and `{' '.join(step)}` failed: {done.stderr[-2000:]}\n"
                    f"install it: {INSTALL}"
                )
    found = _find()
    if not found:
        raise RuntimeError(f"apt-get installed Chromium but it is not on PATH: {INSTALL}")
    return found


def artifacts_dir() -> Path:
    """Where screenshots go: $PGPAGER_TEST_ARTIFACTS, or tests/.artifacts (git ignores it)."""
    path = Path(os.environ.get("PGPAGER_TEST_ARTIFACTS") or ROOT / "tests" / ".artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    def __init__(self, timeout_s: float = 30.0) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="pgpager-chromium-"))
        self.timeout_s = timeout_s
        self.requests: list[str] = []
        self.errors: list[str] = []
        self._next_id = 0
        self.proc = subprocess.Popen(
            [
                chromium_path(),
                "--headless=new",
                "--no-sandbox",  # as root (CI), Chromium's sandbox refuses to start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                # Offline: only this machine's loopback address resolves.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = eventually_sync(
                self._port, what="Chromium opens its DevTools port", timeout_s=60
            )
            targets = json.loads(_http_get(f"http://127.0.0.1:{port}/json/list"))
            page = next(t for t in targets if t["type"] == "page")
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=timeout_s, suppress_origin=True
            )
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"Chromium exited at start-up with {self.proc.returncode}")
        active = self.profile / "DevToolsActivePort"
        try:
            return int(active.read_text().split("\n")[0])
        except (OSError, ValueError):
            return None

    # --- the protocol ----------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        my_id = self._next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(str(text))

    # --- what a test does ------------------------------------------------------------------
    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        r = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression: str, what: str, timeout_s: float | None = None) -> None:
        """Poll a JavaScript expression until it is truthy (in JavaScript's sense)."""
        eventually_sync(
            lambda: self.js(f"!!({expression})"),
            what=what,
            timeout_s=timeout_s or self.timeout_s,
            interval_s=0.1,
        )

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'", f"{url} loads")

    def click(self, selector: str) -> None:
        self.wait(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return !!e && !e.disabled && e.offsetParent !== null; })()",
            f"{selector} can be clicked",
        )
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def fill(self, selector: str, value: str) -> None:
        self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.value = {json.dumps(value)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def text(self, selector: str) -> str:
        return str(self.js(f"document.querySelector({json.dumps(selector)}).textContent"))

    def texts(self, selector: str) -> list[str]:
        found: list[str] = self.js(
            f"Array.from(document.querySelectorAll({json.dumps(selector)}), e => e.textContent)"
        )
        return found

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path = artifacts_dir() / f"{name}.png"
        path.write_bytes(b64decode(data["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def _http_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
    return body.decode()
