"""Dispatch tables: unit assignments, response-time alerts, panic devices, AVL history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.core.db import Base, UTCDateTime


class Assignment(Base):
    """A unit sent to an incident. A busy unit can be given a queued (stacked) assignment
    that becomes active when it clears its current one."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_unit_status", "unit_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(16))  # queued/assigned/en_route/on_scene/cleared
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    en_route_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    on_scene_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    assigned_by: Mapped[str] = mapped_column(String(64))
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class ResponseAlert(Base):
    """A response-time breach: level 1 SHO, 2 SDPO, 3 district SP, 4 central command.
    One row per incident and level: a level never fires twice, even across restarts."""

    __tablename__ = "response_alerts"
    __table_args__ = (UniqueConstraint("incident_id", "level", name="uq_response_alerts_level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(256))
    notify_role: Mapped[str] = mapped_column(String(32))
    station_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PanicDevice(Base):
    """A registered panic button: a citizen's phone, a diplomatic mission, a school, a bank."""

    __tablename__ = "panic_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(32))
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UnitPosition(Base):
    """AVL history: every GPS ping a unit sent."""

    __tablename__ = "unit_positions"
    __table_args__ = (Index("ix_unit_positions_unit_at", "unit_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
