"""`safecity bench ...`: benchmarks over the demo province (ratios, not timed tests)."""

from __future__ import annotations

from typing import Any


def run_bench(what: str, *, n_points: int = 1_000_000) -> dict[str, Any]:
    if what == "routing":
        from safecity.geo.bench import run_routing_bench
        from safecity.sim.democity import build_demo_city

        city = build_demo_city()
        stations = [(i, a.geometry) for i, a in enumerate(city.stations, start=1)]
        return run_routing_bench(stations, n_points=n_points)
    raise ValueError(f"unknown benchmark {what!r}")
