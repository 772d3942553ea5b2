"""The CAD bench harness itself, small: a real server over HTTP, killed with SIGKILL half
way and restarted; every call answered 201 must survive with its timeline, the timers must
resume and no alert may fire twice. (Throughput is the bench's job, not this test's.)"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from safecity.cli import main
from safecity.core.config import load_settings
from safecity.core.runtime import build_runtime
from safecity.sim.bench_cad import PASSWORD, _free_port, run_cad_bench, start_server
from safecity.sim.democity import build_demo_city
from safecity.sim.loader import load_demo_city


def test_kill_and_restart_loses_nothing() -> None:
    result = run_cad_bench(duration=16, rate=20, pings_per_s=200, kill=True, workers=2)
    assert result["answered_calls"] > 20
    assert result["lost"] == 0
    assert result["alerts_fired_twice"] == 0
    assert result["alerts_resumed_after_restart"] > 0
    assert result["pings_per_s"] > 0


def test_several_server_processes_share_calls_events_and_a_kill() -> None:
    """`workers` = 3: calls taken in by any process reach the console client connected to
    one of them (`lost` counts answered calls whose event never arrived), and a SIGKILL of
    the main process takes its API workers down with it, so the restarted server gets the
    port and loses nothing."""
    live = run_cad_bench(duration=6, rate=60, pings_per_s=200, workers=4, server_processes=3)
    assert live["answered_calls"] > 100
    assert live["lost"] == 0
    killed = run_cad_bench(
        duration=12, rate=30, pings_per_s=200, kill=True, workers=2, server_processes=3
    )
    assert killed["answered_calls"] > 50
    assert killed["lost"] == 0
    assert killed["alerts_fired_twice"] == 0
    assert killed["workers_left_after_kill"] == 0


def test_a_running_server_is_prepared_and_checked_through_its_api(tmp_path: Path) -> None:
    """`--url`: the bench logs in as an admin, makes its keys, panic devices and units
    through the API of a server it did not start, and reads every answered incident back
    through the API (`lost`). Without credentials, or with `--kill`, it says why it
    cannot run."""
    rt = build_runtime(load_settings(mode="demo", data_dir=tmp_path))
    try:  # the demo province as `make demo` loads it: 200 units
        load_demo_city(rt, build_demo_city(), password=PASSWORD, with_cameras=False)
    finally:
        rt.close()
    port = _free_port()
    server = start_server(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        result = run_cad_bench(
            url=url,
            duration=5,
            rate=30,
            pings_per_s=200,
            workers=2,
            username="admin",
            password=PASSWORD,
        )
        assert result["answered_calls"] > 50
        assert result["lost"] == 0
        assert result["pings_per_s"] > 0
        with pytest.raises(SystemExit, match="--user and --password"):
            run_cad_bench(url=url, duration=1)
        with pytest.raises(SystemExit, match="--kill"):
            run_cad_bench(url=url, duration=1, kill=True, username="admin", password=PASSWORD)
        with pytest.raises(RuntimeError, match="auth/token answered 401"):
            run_cad_bench(url=url, duration=1, username="admin", password="wrong-password")
        argv = ["bench", "cad", "--url", url, "--user", "admin", "--password", "wrong-password"]
        assert main(argv) == 2  # said in one line, no traceback
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with sqlite3.connect(tmp_path / "safecity.db") as db:
        units = db.execute("SELECT count(*) FROM units").fetchone()[0]
        accounts = db.execute(
            "SELECT count(*) FROM service_accounts WHERE name LIKE 'bench-%'"
        ).fetchone()[0]
    assert units == 2000  # 1,800 added by the first run, none by the refused ones
    assert accounts == 2  # a PBX and a dispatcher
