"""The response-time monitor: a background thread that fires due alerts every second, and
releases the units of incidents that ended without them (cancelled, merged, handed over)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from safecity.core.runtime import Runtime
from safecity.dispatch import service

log = logging.getLogger("safecity.dispatch")

#: Rounds between two full look-backs (one a minute at the default interval).
FULL_EVERY = 60


class ResponseTimeMonitor:
    def __init__(self, runtime: Runtime, *, interval_s: float = 1.0) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._since: datetime | None = None
        self._rounds = 0
        self._thread = threading.Thread(target=self._run, name="response-monitor", daemon=True)
        # Incident changes, for the units to release; subscribed now so that none made
        # before the first round is missed (that round also looks at every sent unit).
        self._changes = runtime.bus.subscribe("incidents.updated")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # (a monitor never started has no thread)
            self._thread.join(timeout=5)
        self._changes.close()

    def check_once(self) -> int:
        """One round: deadlines that passed since the previous round (at start: LOOKBACK)."""
        now = self.runtime.clock.now()
        # Every FULL_EVERY rounds look all the way back: a target shortened by the command
        # centre makes deadlines fall in the past, which the incremental rounds never see.
        self._rounds += 1
        since = None if self._rounds % FULL_EVERY == 0 else self._since
        with self.runtime.sessions() as session:
            fired = service.check_response_times(session, now=now, since=since)
        self._since = now
        self.release_units(full=since is None)
        return len(fired)

    def release_units(self, *, full: bool = False) -> int:
        """Release the units of incidents that ended since the last round (`full`: of every
        incident a unit is sent to, as at start and once a minute, for what another process
        ended or this one missed). Returns how many jobs were cleared."""
        msgs = self._changes.fetch(batch=10_000, timeout=0)
        ended: set[int] = set()
        for m in msgs:
            if m.data.get("status") in service.ENDED_WITHOUT_UNITS:
                try:
                    ended.add(int(m.data["incident_id"]))
                except (KeyError, TypeError, ValueError):
                    log.warning("monitor: malformed incidents.updated event %r", m.data)
        released = 0
        if full or ended:
            with self.runtime.sessions() as session:
                released = service.release_units_of_ended_incidents(
                    session, now=self.runtime.clock.now(), incident_ids=None if full else ended
                )
                session.commit()
        for m in msgs:
            m.ack()
        return released

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # keep watching whatever one round does
                log.exception("response-time check failed")
