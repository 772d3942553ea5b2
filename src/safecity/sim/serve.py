"""Start the server: `safecity serve`, and `safecity demo` (demo province + simulator)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

from safecity.app import create_app
from safecity.core.config import Settings
from safecity.core.errors import SafeCityError
from safecity.core.runtime import Runtime, build_runtime
from safecity.sim.democity import build_demo_city
from safecity.sim.loader import demo_loaded, load_demo_city
from safecity.sim.simulator import Simulator

GIL_SWITCH_INTERVAL_S = 0.0005

#: Python's own asyncio loop, not uvloop (uvicorn's pick when installed). uvloop holds the
#: GIL through every socket write, and on loopback a write does the receiving side's TCP
#: work too: under the helpline bench the writes were a sixth of the time the GIL was
#: held, while the database writer thread waited. asyncio's transports write with
#: `socket.send`, which lets the GIL go. Measured with `safecity bench cad` (60 s, 2-core
#: machine, one process): 743-758 calls/s, p99 209-213 ms with uvloop; 804, p99 120 ms
#: with asyncio.
EVENT_LOOP = "asyncio"

#: How long a stopping server waits for open requests: live event streams never end by
#: themselves, and a stop must not hang on a console left open.
GRACEFUL_STOP_S = 5

log = logging.getLogger(__name__)


def _tune_interpreter() -> None:
    # The database writer threads (call intake, AVL) release the GIL on every SQLite call
    # and then wait for the event loop to hand it back: with the default 5 ms switch
    # interval a batch of ten statements waited 50 ms. A short interval keeps them moving.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Under load the server allocates fast and keeps much alive (the bus holds the last
    # 200,000 events): with the default thresholds full collections ran every few seconds
    # and walked all of it. Larger generations make them rare.
    gc.set_threshold(50_000, 50, 1000)


def _serve(
    runtime: Runtime,
    *,
    with_console: bool = True,
    on_startup: list[Callable[[Runtime], object]] | None = None,
) -> int:
    settings = runtime.settings
    app = create_app(runtime, with_console=with_console, on_startup=on_startup)
    _tune_interpreter()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        loop=EVENT_LOOP,
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
    )
    if settings.workers == 1:
        uvicorn.Server(config).run()
        return 0
    # More processes: one Python process runs on about one core (the GIL). Each binds the
    # port with SO_REUSEPORT and the kernel spreads the connections evenly over them (one
    # inherited socket let the quickest process take most of a burst). The console keeps
    # its pages' state in this process, so with the console on the API workers get a port
    # of their own.
    api_port = settings.api_port or settings.port + 1 if with_console else settings.port
    sockets = [shared_port_socket(settings.host, settings.port)]
    if with_console:
        sockets.append(shared_port_socket(settings.host, api_port))
    server = uvicorn.Server(config)
    workers = ApiWorkers(settings, api_port, count=settings.workers - 1)
    # Connections are kept alive: those made before a worker listens would all stay with
    # this process, so it starts serving only once the workers listen.
    workers.start(stopping=lambda: server.should_exit)
    try:
        server.run(sockets=sockets)
    finally:
        workers.stop()
    return 0


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes of this user may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio switches Nagle's algorithm off
    # (TCP_NODELAY) only on connections whose socket says IPPROTO_TCP. Without it an
    # answer's body waited for the ACK of its head, which the client delays 40 ms: with
    # several processes every call was answered 40 ms late.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SafeCityError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def with_worker_bus(settings: Settings) -> Settings:
    """Settings for several server processes: the in-process bus cannot reach the other
    processes' subscribers, so it becomes the shared file bus in data_dir."""
    if settings.workers > 1 and settings.bus_url.startswith("memory://"):
        bus_file = (settings.data_dir / "bus.db").resolve()
        return settings.model_copy(update={"bus_url": f"sqlite:///{bus_file}"})
    return settings


class ApiWorkers:
    """The API worker processes beside the main one: started, restarted when one dies,
    and stopped with it. The main process keeps what must run once (the response-time
    monitor, the analytics mirror, the demo's simulator and video)."""

    def __init__(self, settings: Settings, port: int, *, count: int) -> None:
        self._settings = settings
        self._port = port
        self._count = count
        self._ctx = mp.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._server_stopping: Callable[[], bool] = lambda: False

    def _spawn(self) -> tuple[BaseProcess, Any]:
        ready = self._ctx.Event()
        proc = self._ctx.Process(
            target=api_worker_main,
            args=(self._settings, self._port, os.getpid(), ready),
            name="safecity-api-worker",
            daemon=False,
        )
        proc.start()
        return proc, ready

    def start(self, *, stopping: Callable[[], bool], timeout: float = 120.0) -> None:
        """Start the workers and wait until each listens (or has failed)."""
        self._settings.signing_key()  # generated once here, read by every worker
        self._server_stopping = stopping
        started = [self._spawn() for _ in range(self._count)]
        self._procs = [proc for proc, _ in started]
        deadline = time.monotonic() + timeout
        for proc, ready in started:
            while not ready.wait(0.2) and proc.is_alive() and time.monotonic() < deadline:
                pass
        self._watcher = threading.Thread(target=self._watch, name="api-workers", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self._procs):
                if self._stopping.is_set() or self._server_stopping():
                    return
                if not proc.is_alive():
                    log.error(
                        "API worker %s ended (exit %s); starting another", proc.pid, proc.exitcode
                    )
                    self._procs[i] = self._spawn()[0]

    def stop(self) -> None:
        self._stopping.set()
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def _end_with_parent(parent_pid: int) -> None:
    """A worker must not outlive the main process (a killed server would leave its
    workers on the port beside the restarted one): Linux kills it when the parent dies.
    SIGKILL, not SIGTERM: a graceful stop waits for open event streams, and a call is
    answered only after its commit, so nothing answered is lost."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the call above
        os._exit(0)


def api_worker_main(settings: Settings, port: int, parent_pid: int, ready: Any) -> None:
    """One API worker process: the API (no console) over the shared database and bus.
    Sets `ready` once it listens (connections wait in its backlog until it serves)."""
    _end_with_parent(parent_pid)
    logging.basicConfig(level=settings.log_level.upper())
    sock = shared_port_socket(settings.host, port)
    runtime = build_runtime(settings, run_migrations=False)
    try:
        app = create_app(runtime, with_console=False, with_monitor=False)
        _tune_interpreter()
        ready.set()
        config = uvicorn.Config(
            app,
            log_level=settings.log_level,
            access_log=False,
            loop=EVENT_LOOP,
            timeout_graceful_shutdown=GRACEFUL_STOP_S,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        runtime.close()


def run_server(settings: Settings, *, with_console: bool = True) -> int:
    logging.basicConfig(level=settings.log_level.upper())
    runtime = build_runtime(with_worker_bus(settings))
    try:
        return _serve(runtime, with_console=with_console)
    finally:
        runtime.close()


def run_demo(settings: Settings, *, reset: bool = False) -> int:
    """Build the demo province once (deterministic from the seed), then serve it."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if reset and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    runtime = build_runtime(with_worker_bus(settings))
    city = build_demo_city(seed=settings.demo_seed)
    password_file = settings.data_dir / "demo-password.txt"
    with runtime.sessions() as session:
        loaded = demo_loaded(session)
    if settings.demo_password is not None:
        password = settings.demo_password.get_secret_value()
    elif password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(9)
    if not loaded:
        print("building the demo province (once)...", flush=True)
        counts = load_demo_city(runtime, city, password=password)
        password_file.write_text(password)
        password_file.chmod(0o600)
        print("  " + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
    elif settings.demo_password is not None and not password_file.exists():
        raise SafeCityError(
            "the demo database exists with other passwords; run "
            "`safecity demo --reset` to rebuild it"
        )
    simulator = Simulator(runtime, city, calls_per_minute=settings.sim_calls_per_minute)
    url = f"http://{settings.host}:{settings.port}"
    print(f"\nSafeCity demo: {url}  (API docs: {url}/docs)", flush=True)
    print(
        f"  logins (password {password!r}): admin (command centre admin), calltaker, "
        "dispatcher, analyst, sp.peshawar (district SP), sho.gulbahar (SHO), "
        f"and one per station/tehsil; all {len(city.users)} listed in the console's Users page",
        flush=True,
    )
    hooks: list[Callable[[Runtime], object]] = (
        [lambda _rt: simulator.start()] if settings.simulate else []
    )
    if settings.simulate:
        # A few demo cameras play the shared real clips through the video pipeline (when
        # ../shared is there); the other demo cameras' addresses are placeholders.
        from safecity.video.demo import start_demo_video

        hooks.append(lambda rt: start_demo_video(rt, shared=settings.shared_dir))
    try:
        return _serve(runtime, on_startup=hooks)
    finally:
        simulator.stop()
        runtime.close()
        sys.stdout.flush()
