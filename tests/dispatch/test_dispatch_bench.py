"""The CAD bench harness itself, small: a real server over HTTP, killed with SIGKILL half
way and restarted; every call answered 201 must survive with its timeline, the timers must
resume and no alert may fire twice. (Throughput is the bench's job, not this test's.)"""

from __future__ import annotations

from safecity.sim.bench_cad import run_cad_bench


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
