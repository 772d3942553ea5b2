"""The response-time monitor: a background thread that fires due alerts every second."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from safecity.core.runtime import Runtime
from safecity.dispatch import service

log = logging.getLogger("safecity.dispatch")


class ResponseTimeMonitor:
    def __init__(self, runtime: Runtime, *, interval_s: float = 1.0) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._since: datetime | None = None
        self._thread = threading.Thread(target=self._run, name="response-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check_once(self) -> int:
        """One round: deadlines that passed since the previous round (at start: LOOKBACK)."""
        now = self.runtime.clock.now()
        with self.runtime.sessions() as session:
            fired = service.check_response_times(session, now=now, since=self._since)
        self._since = now
        return len(fired)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # keep watching whatever one round does
                log.exception("response-time check failed")
