"""FastAPI dependencies shared by every router: `SessionDep`, `CurrentUser`, `RuntimeDep`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, params
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from safecity.core.auth import Perm, Principal, principal_from_api_key, principal_from_token
from safecity.core.errors import Unauthenticated
from safecity.core.runtime import Runtime

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One session per request; the route commits what it wants kept."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_current_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    if api_key:
        return principal_from_api_key(session, api_key)
    if token:
        return principal_from_token(
            session, token, key=runtime.settings.signing_key(), now=runtime.clock.now()
        )
    raise Unauthenticated(
        "log in first: send `Authorization: Bearer <token>` (POST /api/v1/auth/token) "
        "or `X-API-Key: <key>`"
    )


CurrentUser = Annotated[Principal, Depends(get_current_principal)]


def requires(perm: Perm) -> params.Depends:
    """A dependency that refuses callers without `perm` (403)."""

    def check(principal: CurrentUser) -> Principal:
        principal.require(perm)
        return principal

    dep: params.Depends = Depends(check)
    return dep
