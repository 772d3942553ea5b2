"""Jurisdiction polygons of every level in one table (a tree by parent_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.core.db import Base, UTCDateTime

LEVELS = ("province", "district", "tehsil", "station")


class Jurisdiction(Base):
    __tablename__ = "jurisdictions"
    __table_args__ = (UniqueConstraint("level", "code", name="uq_jurisdictions_level_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("jurisdictions.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    # Ancestors, denormalised so that scoping a row by jurisdiction is one comparison.
    province_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # WGS84 polygon as WKB: portable across SQLite and PostgreSQL; lookups use an
    # in-memory STRtree index built from these rows.
    geometry_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    area_km2: Mapped[float] = mapped_column(Float)
    # A station's building, where its units start from.
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    area_type: Mapped[str] = mapped_column(String(8), default="urban")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
