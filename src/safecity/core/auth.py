"""Who may do what, and where.

Users log in with a password (argon2 hashes) and get a signed JWT; machine clients use API
keys (`sc_<prefix>_<secret>`, stored as a SHA-256 hash: high-entropy keys need no slow hash).
A role grants permissions; a scope limits them to one jurisdiction (an SHO sees his station,
an SDPO his tehsil, a district SP his district)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.core.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from safecity.core.models import ServiceAccount, User


class Role(StrEnum):
    CALL_TAKER = "call_taker"
    DISPATCHER = "dispatcher"
    SHO = "sho"
    SDPO = "sdpo"
    DISTRICT_SP = "district_sp"
    ADMIN = "admin"
    ANALYST = "analyst"
    FIELD_OFFICER = "field_officer"
    # Machine clients.
    TELEPHONY = "telephony"
    CAMERA_GATEWAY = "camera_gateway"


class Perm(StrEnum):
    GEO_READ = "geo:read"
    GEO_WRITE = "geo:write"
    REGISTRY_READ = "registry:read"
    REGISTRY_WRITE = "registry:write"
    CALLS_CREATE = "calls:create"
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_UPDATE = "incidents:update"
    USERS_ADMIN = "users:admin"


_READ = {Perm.GEO_READ, Perm.REGISTRY_READ, Perm.INCIDENTS_READ}
ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.CALL_TAKER: frozenset(_READ | {Perm.CALLS_CREATE}),
    Role.DISPATCHER: frozenset(_READ | {Perm.CALLS_CREATE, Perm.INCIDENTS_UPDATE}),
    Role.SHO: frozenset(_READ | {Perm.INCIDENTS_UPDATE}),
    Role.SDPO: frozenset(_READ | {Perm.INCIDENTS_UPDATE}),
    Role.DISTRICT_SP: frozenset(_READ | {Perm.INCIDENTS_UPDATE}),
    Role.ANALYST: frozenset(_READ),
    Role.FIELD_OFFICER: frozenset(_READ | {Perm.INCIDENTS_UPDATE}),
    Role.TELEPHONY: frozenset({Perm.CALLS_CREATE, Perm.GEO_READ}),
    # A camera gateway turns rule hits (perimeter intrusion) into incidents.
    Role.CAMERA_GATEWAY: frozenset({Perm.REGISTRY_READ, Perm.GEO_READ, Perm.CALLS_CREATE}),
}

ROLE_LABELS: dict[Role, str] = {
    Role.CALL_TAKER: "Call taker",
    Role.DISPATCHER: "Dispatcher",
    Role.SHO: "SHO (station house officer)",
    Role.SDPO: "SDPO / DSP",
    Role.DISTRICT_SP: "District SP",
    Role.ADMIN: "Command centre admin",
    Role.ANALYST: "Analyst",
    Role.FIELD_OFFICER: "Field officer",
    Role.TELEPHONY: "Telephony system",
    Role.CAMERA_GATEWAY: "Camera gateway",
}

SCOPE_LEVELS = ("all", "province", "district", "tehsil", "station")


@dataclass(frozen=True)
class JurisdictionIds:
    """Where a thing is: the ids of each level of the jurisdiction hierarchy."""

    station_id: int | None = None
    tehsil_id: int | None = None
    district_id: int | None = None
    province_id: int | None = None


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user or a service account."""

    subject: str
    name: str
    role: Role
    scope_level: str = "all"
    scope_id: int | None = None
    user_id: int | None = None

    def has(self, perm: Perm) -> bool:
        return perm in ROLE_PERMS[self.role]

    def require(self, perm: Perm) -> None:
        if not self.has(perm):
            raise Forbidden(f"role {self.role.value!r} may not do {perm.value!r}")

    def covers(self, where: JurisdictionIds) -> bool:
        """True when `where` lies inside this principal's jurisdiction scope."""
        if self.scope_level == "all":
            return True
        return bool(getattr(where, f"{self.scope_level}_id") == self.scope_id)

    def require_covers(self, where: JurisdictionIds, what: str) -> None:
        if not self.covers(where):
            raise Forbidden(f"{what} is outside your jurisdiction ({self.scope_level} scope)")


_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY_HASH = _hasher.hash("not-a-user")


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role | str,
    full_name: str = "",
    scope_level: str = "all",
    scope_id: int | None = None,
    now: datetime,
    password_hash: str | None = None,
) -> User:
    """Create a user. `password_hash` (from `hash_password`) saves re-hashing one password
    for many accounts, e.g. the demo's 130 logins; `password` is still checked."""
    role = _role(role)
    if scope_level not in SCOPE_LEVELS:
        raise InvalidInput(f"scope_level must be one of {', '.join(SCOPE_LEVELS)}")
    if (scope_level == "all") != (scope_id is None):
        raise InvalidInput("scope_id is required for a scoped user and forbidden for `all`")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        full_name=full_name or username,
        password_hash=password_hash or hash_password(password),
        role=role.value,
        scope_level=scope_level,
        scope_id=scope_id,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}"
        ) from None


def authenticate_user(session: Session, *, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthenticated("wrong username or password")
    if not verify_password(user.password_hash, password):
        raise Unauthenticated("wrong username or password")
    if not user.active:
        raise Unauthenticated("this account is disabled; ask the command centre admin")
    return user


def principal_for_user(user: User) -> Principal:
    return Principal(
        subject=f"user:{user.id}",
        name=user.username,
        role=Role(user.role),
        scope_level=user.scope_level,
        scope_id=user.scope_id,
        user_id=user.id,
    )


def issue_token(user: User, *, key: str, now: datetime, minutes: int) -> str:
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "name": user.username,
        "role": user.role,
        "scope_level": user.scope_level,
        "scope_id": user.scope_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=minutes)).timestamp()),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def principal_from_token(session: Session, token: str, *, key: str, now: datetime) -> Principal:
    """The user behind a token; expiry is judged by the runtime's clock, not the host's."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_exp": False},
        )
    except jwt.InvalidTokenError:
        raise Unauthenticated("invalid access token; log in again") from None
    if int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthenticated("your session has expired; log in again")
    # Re-read the user so a disabled account or a changed role takes effect at once.
    user = session.get(User, int(claims["sub"]))
    if user is None or not user.active:
        raise Unauthenticated("this account no longer exists or is disabled")
    return principal_for_user(user)


def token_expiry(token: str, *, key: str) -> float:
    """The expiry (Unix time) of a token already verified by `principal_from_token`."""
    claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False})
    return float(claims["exp"])


def create_service_account(
    session: Session, *, name: str, role: Role | str, now: datetime, created_by: int | None = None
) -> tuple[ServiceAccount, str]:
    """Create a machine client; returns it with its API key (shown once, never stored)."""
    role = _role(role)
    if session.scalar(select(ServiceAccount.id).where(ServiceAccount.name == name)):
        raise Conflict(f"service account {name!r} already exists")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    acct = ServiceAccount(
        name=name,
        role=role.value,
        key_prefix=prefix,
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        active=True,
        created_at=now,
        created_by=created_by,
    )
    session.add(acct)
    session.flush()
    return acct, f"sc_{prefix}_{secret}"


def principal_from_api_key(session: Session, api_key: str) -> Principal:
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "sc":
        raise Unauthenticated("malformed API key: expected sc_<prefix>_<secret>")
    acct = session.scalar(select(ServiceAccount).where(ServiceAccount.key_prefix == parts[1]))
    digest = hashlib.sha256(parts[2].encode()).hexdigest()
    if acct is None or not hmac.compare_digest(acct.key_hash, digest):
        raise Unauthenticated("unknown API key")
    if not acct.active:
        raise Unauthenticated("this API key has been revoked")
    return Principal(subject=f"service:{acct.id}", name=acct.name, role=Role(acct.role))
