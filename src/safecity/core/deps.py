"""FastAPI dependencies shared by every router: `SessionDep`, `CurrentUser`, `RuntimeDep`."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Path, Query, Request, params
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from safecity.core.auth import (
    Perm,
    Principal,
    principal_from_api_key,
    principal_from_token,
    token_expiry,
)
from safecity.core.db import MAX_ROW_ID
from safecity.core.errors import Unauthenticated
from safecity.core.runtime import Runtime

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    # async: a plain function would cost every request a hop through the thread pool.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """One session per request; the route commits what it wants kept.

    Opened on the event loop (a new session touches no database until used) and closed in
    a worker thread (closing returns its connection): a plain generator would cost every
    request two hops through the pool instead of one.

    Sync routes run in anyio's bounded thread pool, and a request keeps its database
    connection (SQLite's only one, or one of a PostgreSQL pool) from its first query until
    its session is closed, after FastAPI has validated its answer, which takes a thread of
    that pool too. Were every thread taken by requests waiting for a connection, the request
    holding one could neither finish nor give it back: all of them would stall until the
    connection pool's timeout (a minute) and fail. So a request holds a *session slot*
    (at most half the pool's threads, `_SESSION_SLOTS`) from before its session opens until
    it is closed, the closing runs on threads of its own, and credential lookups too
    (`principal_for`): a thread is always left for the request holding the connection."""
    async with _limiter(_SESSION_SLOTS, None):
        session = runtime.sessions()
        try:
            yield session
        finally:
            await anyio.to_thread.run_sync(session.close, limiter=_limiter(_SESSION_CLOSERS, 8))


#: Per event loop (a limiter belongs to one): session slots, threads closing sessions,
#: threads looking up credentials.
_SESSION_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_SESSION_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_PRINCIPAL_LOOKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _limiter(
    limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter],
    tokens: int | None,
) -> anyio.CapacityLimiter:
    """This event loop's limiter of `limiters`, with `tokens` (None: half the threads of
    the loop's default thread pool, as it is now: it can be resized at run time)."""
    loop = asyncio.get_running_loop()
    limiter = limiters.get(loop)
    if limiter is None:
        limiter = limiters[loop] = anyio.CapacityLimiter(tokens or 1)
    if tokens is None:
        default = anyio.to_thread.current_default_thread_limiter().total_tokens
        want = max(1, int(default) // 2)
        if limiter.total_tokens != want:
            limiter.total_tokens = want
    return limiter


SessionDep = Annotated[Session, Depends(get_session)]

#: A row id in a path, or an optional one in a query: past the INTEGER columns' range it is
#: refused with a 422 naming it, before any query sees it (the driver would overflow).
PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]


class _PrincipalCache:
    """Who a credential belongs to, remembered for a few seconds: a helpline or an AVL
    gateway sends thousands of requests a minute with one key. A disabled account or a
    revoked key takes effect within `ttl_s`; an expired token is never served from here."""

    ttl_s = 5.0
    max_entries = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str], tuple[float, Principal, float]] = {}

    def get(self, runtime: Runtime, credential: str, now_ts: float) -> Principal | None:
        with self._lock:
            hit = self._items.get((id(runtime), credential))
        if hit is None or hit[0] < time.monotonic() or hit[2] <= now_ts:
            return None
        return hit[1]

    def put(
        self, runtime: Runtime, credential: str, principal: Principal, expires_ts: float
    ) -> None:
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            self._items[(id(runtime), credential)] = (
                time.monotonic() + self.ttl_s,
                principal,
                expires_ts,
            )


_PRINCIPALS = _PrincipalCache()


async def get_current_principal(
    runtime: RuntimeDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    return await principal_for(runtime, token=token, api_key=api_key)


async def principal_for(runtime: Runtime, *, token: str | None, api_key: str | None) -> Principal:
    """Who sent a request, from its bearer token or API key (cached a few seconds)."""
    credential = api_key or token
    if not credential:
        raise Unauthenticated(
            "log in first: send `Authorization: Bearer <token>` (POST /api/v1/auth/token) "
            "or `X-API-Key: <key>`"
        )
    now = runtime.clock.now()
    cached = _PRINCIPALS.get(runtime, credential, now.timestamp())
    if cached is not None:
        return cached
    # A miss reads the database and checks an argon2 hash (tens of ms): in the thread pool,
    # never on the event loop, and once for all the requests that arrive with the same
    # credential meanwhile (a telephony system opens dozens of connections at once).
    loop = asyncio.get_running_loop()
    key = (id(loop), id(runtime), credential)
    task = _LOOKUPS.get(key)
    if task is None:
        task = loop.create_task(
            anyio.to_thread.run_sync(
                _lookup_principal,
                runtime,
                credential,
                api_key is not None,
                limiter=_limiter(_PRINCIPAL_LOOKERS, 4),
            )
        )
        _LOOKUPS[key] = task
        task.add_done_callback(lambda t: _lookup_done(key, t))
    # Shielded: a caller that goes away does not cancel the others' lookup.
    return await asyncio.shield(task)


def _lookup_done(key: tuple[int, int, str], task: asyncio.Task[Principal]) -> None:
    _LOOKUPS.pop(key, None)
    if not task.cancelled():
        task.exception()  # retrieved here too: every waiter may have gone away


#: Credential lookups in flight, per event loop (see `principal_for`).
_LOOKUPS: dict[tuple[int, int, str], asyncio.Task[Principal]] = {}


def _lookup_principal(runtime: Runtime, credential: str, is_api_key: bool) -> Principal:
    now = runtime.clock.now()
    # Its own short session: the request's session may live as long as a streamed
    # response, and must not pin a database connection meanwhile.
    with runtime.sessions() as session:
        if is_api_key:
            principal = principal_from_api_key(session, credential)
            expires = float("inf")
        else:
            key = runtime.settings.signing_key()
            principal = principal_from_token(session, credential, key=key, now=now)
            expires = token_expiry(credential, key=key)
    _PRINCIPALS.put(runtime, credential, principal, expires)
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_principal)]


def requires(perm: Perm) -> params.Depends:
    """A dependency that refuses callers without `perm` (403)."""

    async def check(principal: CurrentUser) -> Principal:
        principal.require(perm)
        return principal

    dep: params.Depends = Depends(check)
    return dep
