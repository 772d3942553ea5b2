"""The demo simulator: helpline calls at a realistic rate and units moving on patrol.

Calls go through the same service as a real call taker's, so the console, the bus and the
database see exactly what they would in production."""

from __future__ import annotations

import logging
import math
import random
import threading

from safecity.core.auth import Principal, Role
from safecity.core.errors import SafeCityError
from safecity.core.runtime import Runtime
from safecity.incidents import service as incidents
from safecity.incidents.schemas import CallIn
from safecity.registry import service as registry
from safecity.sim.democity import DemoCity

log = logging.getLogger("safecity.sim")

SIMULATOR = Principal(subject="system:simulator", name="simulator", role=Role.TELEPHONY)

# Share of helpline calls by category: most calls to 15 are irrelevant or pranks.
CALL_MIX: tuple[tuple[str, float], ...] = (
    ("prank", 0.35),
    ("other", 0.15),
    ("traffic_accident", 0.08),
    ("snatching", 0.08),
    ("assault", 0.07),
    ("harassment", 0.05),
    ("suspicious", 0.05),
    ("domestic", 0.04),
    ("vehicle_theft", 0.04),
    ("robbery", 0.04),
    ("fire", 0.02),
    ("murder", 0.01),
    ("kidnapping", 0.01),
    ("terrorism", 0.01),
)


class Simulator:
    """Runs in a daemon thread until `stop()`."""

    def __init__(
        self, runtime: Runtime, city: DemoCity, *, calls_per_minute: float, seed: int = 1
    ) -> None:
        self.runtime = runtime
        self.city = city
        self.calls_per_minute = calls_per_minute
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self.calls_made = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_call = self._next_call_delay()
        while not self._stop.wait(1.0):
            try:
                self.move_units(share=0.1)
                next_call -= 1.0
                while next_call <= 0:
                    self.place_call()
                    next_call += self._next_call_delay()
            except SafeCityError as exc:
                log.warning("simulator: %s", exc.message)
            except Exception:  # the demo must keep running whatever one step does
                log.exception("simulator step failed")

    def _next_call_delay(self) -> float:
        if self.calls_per_minute <= 0:
            return math.inf
        return self.rng.expovariate(self.calls_per_minute / 60.0)

    def place_call(self) -> int:
        """One call near a watched site (where people are), routed like a real one."""
        site = self.rng.choice(self.city.sites)
        cats, weights = zip(*CALL_MIX, strict=True)
        category = self.rng.choices(cats, weights=weights)[0]
        call = CallIn(
            caller_number=f"03{self.rng.randint(0, 4)}{self.rng.randint(0, 9)}"
            f"{self.rng.randint(1000000, 9999999)}",
            lon=site.lon + self.rng.gauss(0, 0.004),
            lat=site.lat + self.rng.gauss(0, 0.004),
            category=category,
            description=f"Caller reports {category.replace('_', ' ')} near {site.name}",
            address=f"near {site.name}",
        )
        with self.runtime.sessions() as session:
            accepted = incidents.receive_call(
                session, call=call, actor=SIMULATOR, now=self.runtime.clock.now()
            )
        self.calls_made += 1
        return accepted.incident_id

    def move_units(self, *, share: float) -> None:
        """A random share of units drive a short way (about 10-40 m/s of patrol)."""
        with self.runtime.sessions() as session:
            units = registry.list_units(session)
            now = self.runtime.clock.now()
            for u in self.rng.sample(units, max(1, int(len(units) * share))):
                step = 0.0004 if u.kind == "foot" else 0.003
                registry.move_unit(
                    session,
                    unit_id=u.id,
                    at=now,
                    lon=u.lon + self.rng.uniform(-step, step),
                    lat=u.lat + self.rng.uniform(-step, step),
                )
            session.commit()
