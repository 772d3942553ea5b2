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
