"""Incident tables: incidents, the calls that reported them, their append-only timeline,
and the configurable incident types and response-time targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safecity.core.db import Base, UTCDateTime


class IncidentType(Base):
    __tablename__ = "incident_types"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    apco_code: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ResponseTarget(Base):
    """Seconds allowed for each step, by priority and area type; drives the alert levels."""

    __tablename__ = "response_targets"

    priority: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    acknowledge_s: Mapped[int] = mapped_column(Integer)
    dispatch_s: Mapped[int] = mapped_column(Integer)
    arrive_s: Mapped[int] = mapped_column(Integer)
    unattended_s: Mapped[int] = mapped_column(Integer)


class Incident(Base):
    __tablename__ = "incidents"
    # Duplicate detection reads the recent incidents in a few grid cells around each call.
    __table_args__ = (Index("ix_incidents_cell_received_at", "cell", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    caller_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    caller_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    #: Grid cell of the duplicate radius holding (lon, lat): `service.location_cell`.
    cell: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    station_id: Mapped[int] = mapped_column(Integer, index=True)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    province_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    area_type: Mapped[str] = mapped_column(String(8), default="urban")
    inside_jurisdiction: Mapped[bool] = mapped_column(Boolean)
    call_count: Mapped[int] = mapped_column(Integer, default=1)
    disposition: Mapped[str | None] = mapped_column(String(64), nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    transferred_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    en_route_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    on_scene_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))


class Call(Base):
    """One report (a helpline call, a panic press, a camera alert): several calls about the
    same event are linked to one incident."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Id given by the calling system (telephony, camera gateway); makes intake idempotent.
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    caller_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    caller_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    linked_as_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    taken_by: Mapped[str] = mapped_column(String(64))


class IncidentEvent(Base):
    """One line of an incident's timeline: what happened, when, and who did it. Rows are
    only ever inserted (audit trail)."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
