"""The response-time monitor: a background thread that fires due alerts every second."""

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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

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
        return len(fired)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # keep watching whatever one round does
                log.exception("response-time check failed")
