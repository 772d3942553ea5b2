"""Login (OAuth2 password flow), the caller's own profile, users and service accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from safecity.core.auth import (
    ROLE_LABELS,
    ROLE_PERMS,
    Perm,
    Principal,
    Role,
    authenticate_user,
    create_service_account,
    create_user,
    issue_token,
)
from safecity.core.db import MAX_ROW_ID
from safecity.core.deps import CurrentUser, RuntimeDep, SessionDep, requires
from safecity.core.models import User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

#: A name shown to people: surrounding blanks dropped, so all blanks is no name.
_Name = Annotated[str, StringConstraints(strip_whitespace=True)]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str
    username: str


class Me(BaseModel):
    username: str
    role: str
    role_label: str
    scope_level: str
    scope_id: int | None
    permissions: list[str]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9._-]+$")
    password: str = Field(min_length=8, max_length=256)
    full_name: _Name = Field("", max_length=128, description="Shown name; the username if blank")
    role: Role
    scope_level: str = "all"
    scope_id: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="The jurisdiction a scoped user is limited to"
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: str
    scope_level: str
    scope_id: int | None
    active: bool


class ServiceAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _Name = Field(min_length=2, max_length=64)
    role: Role


class ServiceAccountCreated(BaseModel):
    id: int
    name: str
    role: str
    api_key: str = Field(description="Shown once; store it in the client's secret store")


@router.post("/token", response_model=Token)
def login(
    runtime: RuntimeDep,
    session: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    user = authenticate_user(session, username=form.username, password=form.password)
    minutes = runtime.settings.access_token_minutes
    token = issue_token(
        user, key=runtime.settings.signing_key(), now=runtime.clock.now(), minutes=minutes
    )
    return Token(
        access_token=token, expires_in=minutes * 60, role=user.role, username=user.username
    )


def me_of(p: Principal) -> Me:
    return Me(
        username=p.name,
        role=p.role.value,
        role_label=ROLE_LABELS[p.role],
        scope_level=p.scope_level,
        scope_id=p.scope_id,
        permissions=sorted(x.value for x in ROLE_PERMS[p.role]),
    )


@router.get("/me", response_model=Me)
def me(principal: CurrentUser) -> Me:
    return me_of(principal)


@router.get("/users", response_model=list[UserOut], dependencies=[requires(Perm.USERS_ADMIN)])
def list_users(session: SessionDep) -> Any:
    return list(session.scalars(select(User).order_by(User.id)))


@router.post(
    "/users", response_model=UserOut, status_code=201, dependencies=[requires(Perm.USERS_ADMIN)]
)
def add_user(body: UserIn, runtime: RuntimeDep, session: SessionDep) -> Any:
    user = create_user(
        session,
        username=body.username,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
        scope_level=body.scope_level,
        scope_id=body.scope_id,
        now=runtime.clock.now(),
    )
    session.commit()
    return user


@router.post("/service-accounts", response_model=ServiceAccountCreated, status_code=201)
def add_service_account(
    body: ServiceAccountIn,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentUser,
) -> ServiceAccountCreated:
    principal.require(Perm.USERS_ADMIN)
    acct, key = create_service_account(
        session,
        name=body.name,
        role=body.role,
        now=runtime.clock.now(),
        created_by=principal.user_id,
    )
    session.commit()
    return ServiceAccountCreated(id=acct.id, name=acct.name, role=acct.role, api_key=key)
