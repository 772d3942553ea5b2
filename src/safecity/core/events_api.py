"""Live events for outside clients: `GET /api/v1/events/stream` as Server-Sent Events.

A console on another machine, a wall display or a partner agency's system subscribes to
bus subjects and receives each event within milliseconds; events that carry jurisdiction
ids are filtered to the caller's scope."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from safecity.core.auth import JurisdictionIds, Perm, Principal
from safecity.core.bus import Message, validate_subject
from safecity.core.deps import CurrentUser, RuntimeDep
from safecity.core.errors import InvalidInput

router = APIRouter(prefix="/api/v1/events", tags=["events"])

#: How often a stream asks whether its client is still there.
DISCONNECT_CHECK_S = 0.25


def in_scope(principal: Principal, data: dict[str, Any]) -> bool:
    """Events naming a jurisdiction reach only callers whose scope covers it."""
    ids = JurisdictionIds(
        data.get("station_id"),
        data.get("tehsil_id"),
        data.get("district_id"),
        data.get("province_id"),
    )
    if ids == JurisdictionIds():
        return True
    return principal.covers(ids)


def _frame(msg: Message) -> bytes:
    body = json.dumps(
        {
            "subject": msg.subject,
            "seq": msg.event.seq,
            "time": msg.event.time.isoformat(),
            "data": msg.data,
        },
        separators=(",", ":"),
    )
    return f"id: {msg.event.seq}\ndata: {body}\n\n".encode()


def _check_wildcards(subject: str) -> None:
    """A wildcard is a whole token, and `>` only the last one: the bus's matching reads
    `incidents.>.created` as `incidents.>` (every incidents event) and `incidents*` as a
    literal token (no event at all), so either would be a stream of something else."""
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if tok not in ("*", ">") and ("*" in tok or ">" in tok):
            raise InvalidInput(
                f"subjects: invalid filter {subject!r}: a wildcard (* or >) is a whole token"
            )
        if tok == ">" and i != len(tokens) - 1:
            raise InvalidInput(f"subjects: invalid filter {subject!r}: > only as the last token")


@router.get("/stream")
async def stream(
    request: Request,
    runtime: RuntimeDep,
    principal: CurrentUser,
    subjects: Annotated[
        list[str] | None, Query(description="Subject filters (default incidents.>)")
    ] = None,
) -> StreamingResponse:
    principal.require(Perm.INCIDENTS_READ)
    subjects = subjects or ["incidents.>"]
    if not 1 <= len(subjects) <= 10:
        raise InvalidInput("give 1 to 10 subject filters")
    for s in subjects:
        try:
            validate_subject(s, allow_wildcards=True)
        except ValueError as exc:
            raise InvalidInput(f"subjects: {exc}") from None
        _check_wildcards(s)
    subs = [runtime.bus.subscribe(s, ack_wait=3600) for s in subjects]

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            checked = 0.0
            while True:
                # Whether the client went away is asked a few times a second, not before
                # every fetch: at a helpline peak the asking cost more than the fetching.
                # (StreamingResponse also watches for the disconnect and ends the stream at
                # once; a write to a closed connection meanwhile is a no-op.)
                now = time.monotonic()
                if now - checked >= DISCONNECT_CHECK_S:
                    if await request.is_disconnected():
                        break
                    checked = now
                got = False
                for sub in subs:
                    msgs = await sub.fetch_async(batch=500, timeout=0 if got else 0.5)
                    if not msgs:
                        continue
                    got = True
                    # One write per fetched batch: at a helpline peak a write per event
                    # cost more than the events.
                    chunk = []
                    for msg in msgs:
                        msg.ack()
                        if in_scope(principal, msg.data):
                            chunk.append(_frame(msg))
                    if chunk:
                        yield b"".join(chunk)
                if not got:
                    yield b": keep-alive\n\n"
                await asyncio.sleep(0)
        finally:
            for sub in subs:
                sub.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
