"""The incident state machine: which status may follow which, and which timestamp each
step stamps. Pure: no database here."""

from __future__ import annotations

from enum import StrEnum

from safecity.core.errors import Conflict


class Status(StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    MERGED = "merged"
    TRANSFERRED = "transferred"  # handed to another agency (rescue 1122, traffic police)


S = Status
_CANCELLABLE = {S.RECEIVED, S.ROUTED, S.ACKNOWLEDGED, S.DISPATCHED, S.EN_ROUTE}
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.ROUTED, S.CANCELLED, S.MERGED}),
    S.ROUTED: frozenset({S.ACKNOWLEDGED, S.DISPATCHED, S.CANCELLED, S.MERGED, S.TRANSFERRED}),
    S.ACKNOWLEDGED: frozenset({S.DISPATCHED, S.CANCELLED, S.MERGED, S.TRANSFERRED}),
    S.DISPATCHED: frozenset({S.EN_ROUTE, S.ON_SCENE, S.CANCELLED}),
    S.EN_ROUTE: frozenset({S.ON_SCENE, S.CANCELLED}),
    S.ON_SCENE: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED, S.ON_SCENE}),  # re-opened if the trouble flares up
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
    S.MERGED: frozenset(),
    S.TRANSFERRED: frozenset(),
}
OPEN = frozenset(
    s for s in Status if s not in {S.CLOSED, S.CANCELLED, S.MERGED, S.TRANSFERRED, S.RESOLVED}
)
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: The column each status stamps with the time it was first reached.
STAMP: dict[Status, str] = {
    S.ROUTED: "routed_at",
    S.ACKNOWLEDGED: "acknowledged_at",
    S.DISPATCHED: "dispatched_at",
    S.EN_ROUTE: "en_route_at",
    S.ON_SCENE: "on_scene_at",
    S.RESOLVED: "resolved_at",
    S.CLOSED: "closed_at",
    S.CANCELLED: "closed_at",
    S.MERGED: "closed_at",
    S.TRANSFERRED: "closed_at",
}


def check_transition(current: str, target: str, *, incident_id: int) -> Status:
    """The target status if `current -> target` is allowed, else Conflict (409) saying what
    is allowed instead."""
    try:
        cur, nxt = Status(current), Status(target)
    except ValueError:
        raise Conflict(
            f"unknown status {target!r}; one of {', '.join(s.value for s in Status)}"
        ) from None
    if nxt not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[cur])) or "nothing (it is final)"
        raise Conflict(
            f"incident {incident_id} is {cur.value}; it cannot become {nxt.value}. "
            f"Allowed next: {allowed}"
        )
    return nxt
