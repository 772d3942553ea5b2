"""Group-commit call intake: calls are taken in by the app's one writer thread in batches.

A helpline at full load sends hundreds of calls a second. Taken one by one, each call
is its own transaction (about ten statements and a commit) and the calls queue for the one
SQLite writer. Here a call is a *kind* of write on `core.writer.GroupWriter`: the writer
takes everything that is waiting and takes the calls in with `service.receive_calls` in one
transaction (shared with the other kinds waiting, such as GPS fixes), so the cost of a commit
is shared, and a batch grows by itself when the load does. A request is answered only after
its batch committed: an answered call is never lost. A batch that fails as a whole (a
constraint another process raced to) is retried call by call, so one bad call never takes
the others down with it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.orm import Session

from safecity.core.errors import SafeCityError
from safecity.core.writer import GroupWriter, Kind
from safecity.incidents import service
from safecity.incidents.schemas import CallAccepted

#: The name calls are registered under on a writer.
CALLS = "incidents.calls"


def _take_calls(
    session: Session, requests: list[service.CallRequest]
) -> list[CallAccepted | SafeCityError]:
    # A module-level function, so that registering again on the same writer (an intake made
    # on first use beside the app's) finds the same kind.
    return service.receive_calls(session, requests=requests)


class CallIntake:
    """Calls as one kind of write on a group-commit writer: its own (`max_batch` calls a
    cycle), or the app's shared one (`writer=`, whose sessions and batch size then apply)."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        *,
        max_batch: int = 500,
        writer: GroupWriter | None = None,
    ) -> None:
        if writer is None:
            writer = GroupWriter(sessions, max_batch=max_batch, name="call-intake")
        self._writer = writer
        self._kind: Kind[service.CallRequest, CallAccepted] = writer.register(CALLS, _take_calls)

    @property
    def writer(self) -> GroupWriter:
        """The writer the calls go through."""
        return self._writer

    def submit(self, request: service.CallRequest) -> Future[CallAccepted]:
        """Queue one call; the future holds its answer (or its error) once committed."""
        return self._writer.submit(self._kind, request)

    async def take(self, request: service.CallRequest) -> CallAccepted:
        """Queue one call and wait for its answer without blocking the event loop."""
        return await self._writer.take(self._kind, request)

    def close(self) -> None:
        """Answer everything already queued, then stop the writer thread (a shared writer
        too: this is what the app does on shutdown). The next call starts it again."""
        self._writer.close()
