"""Start the server: `safecity serve`, and `safecity demo` (demo province + simulator)."""

from __future__ import annotations

import gc
import logging
import secrets
import shutil
import sys
from collections.abc import Callable

import uvicorn

from safecity.app import create_app
from safecity.core.config import Settings
from safecity.core.errors import SafeCityError
from safecity.core.runtime import Runtime, build_runtime
from safecity.sim.democity import build_demo_city
from safecity.sim.loader import demo_loaded, load_demo_city
from safecity.sim.simulator import Simulator

GIL_SWITCH_INTERVAL_S = 0.0005


def _serve(runtime: Runtime, **kwargs: object) -> int:
    app = create_app(runtime, **kwargs)  # type: ignore[arg-type]
    # The database writer threads (call intake, AVL) release the GIL on every SQLite call
    # and then wait for the event loop to hand it back: with the default 5 ms switch
    # interval a batch of ten statements waited 50 ms. A short interval keeps them moving.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Under load the server allocates fast and keeps much alive (the bus holds the last
    # 200,000 events): with the default thresholds full collections ran every few seconds
    # and walked all of it. Larger generations make them rare.
    gc.set_threshold(50_000, 50, 1000)
    uvicorn.run(
        app,
        host=runtime.settings.host,
        port=runtime.settings.port,
        log_level=runtime.settings.log_level,
        access_log=False,
    )
    return 0


def run_server(settings: Settings, *, with_console: bool = True) -> int:
    logging.basicConfig(level=settings.log_level.upper())
    runtime = build_runtime(settings)
    return _serve(runtime, with_console=with_console)


def run_demo(settings: Settings, *, reset: bool = False) -> int:
    """Build the demo province once (deterministic from the seed), then serve it."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if reset and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    runtime = build_runtime(settings)
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
