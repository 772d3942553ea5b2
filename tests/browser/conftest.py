"""Browser test fixtures: a real `safecity demo` server in a subprocess, and a headless
Debian Chromium driven by Playwright (sync API)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-pw-1"


@dataclass
class DemoServer:
    base_url: str
    password: str
    log_path: Path
    #: The server's environment (its data directory, database and settings).
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def token(self, username: str) -> str:
        r = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            data={"username": username, "password": self.password},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def get(self, path: str, token: str) -> Any:
        r = httpx.get(
            f"{self.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        return r.json()

    def place_call(self, token: str, *, lat: float, lon: float, category: str) -> dict[str, Any]:
        r = httpx.post(
            f"{self.base_url}/api/v1/calls",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "caller_number": "03001234567",
                "lat": lat,
                "lon": lon,
                "category": category,
                "description": f"browser test: {category}",
            },
            timeout=30,
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def cli(self, *args: str, timeout: float = 180) -> str:
        """Run `safecity ARGS` on this server's data (as an operator would beside it);
        its output, or the test fails with it."""
        env = dict(self.env, SAFECITY_MODE="demo")
        proc = subprocess.run(
            [sys.executable, "-m", "safecity.cli", *args],
            cwd=self.log_path.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"safecity {' '.join(args)} exited {proc.returncode}:\n{out}"
        return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def run_demo(tmp: Path, **settings: str) -> Iterator[DemoServer]:
    """`safecity demo` on a free port with its own data directory in `tmp`, healthy; stopped
    afterwards. `settings` are more SAFECITY_* variables (name without the prefix)."""
    port = _free_port()
    # The server must not see pytest's variables (NiceGUI changes behaviour under pytest) nor
    # a developer's SAFECITY_* settings or safecity.toml.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAFECITY_", "PYTEST_")) and k != "NICEGUI_STORAGE_PATH"
    }
    env.update(
        SAFECITY_CONFIG=str(tmp / "absent.toml"),
        SAFECITY_DATA_DIR=str(tmp / "data"),
        SAFECITY_HOST="127.0.0.1",
        SAFECITY_PORT=str(port),
        SAFECITY_DEMO_PASSWORD=PASSWORD,
        SAFECITY_SIMULATE="false",
        SAFECITY_LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    env.update({f"SAFECITY_{k.upper()}": v for k, v in settings.items()})
    log_path = tmp / "server.log"
    server = DemoServer(f"http://127.0.0.1:{port}", PASSWORD, log_path, env)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "safecity.cli", "demo"],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    pytest.fail(
                        f"`safecity demo` exited with {proc.returncode}:\n{server.log_tail()}"
                    )
                try:
                    if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"`safecity demo` not healthy in 180 s:\n{server.log_tail()}")
                time.sleep(0.3)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`safecity demo` on a free port, simulator off, its own data directory."""
    with run_demo(tmp_path_factory.mktemp("browser-demo")) as server:
        yield server


@pytest.fixture(scope="module")
def start_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., DemoServer]]:
    """Start a `safecity demo` with other settings: `start_demo(simulate="true", ...)` (the
    SAFECITY_* names without the prefix); each is stopped at the end of the module."""
    with ExitStack() as stack:

        def start(**settings: str) -> DemoServer:
            tmp = tmp_path_factory.mktemp("browser-demo")
            return stack.enter_context(run_demo(tmp, **settings))

        yield start


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (`make test` installs it; skipped when it is missing)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()
