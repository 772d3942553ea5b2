"""Analytics tables: imported incident histories, their imports, saved evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from safecity.core.db import Base, UTCDateTime


class HistoryImport(Base):
    """One import of a CSV file into a dataset, with what was skipped and why."""

    __tablename__ = "analytics_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(256))
    tz: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    imported: Mapped[int] = mapped_column(Integer)
    bad_date: Mapped[int] = mapped_column(Integer)
    bad_coordinates: Mapped[int] = mapped_column(Integer)
    duplicate_id: Mapped[int] = mapped_column(Integer)
    outside_jurisdiction: Mapped[int] = mapped_column(Integer)
    examples: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))


class HistoryIncident(Base):
    """A past incident for analysis: when, where, what type, and which jurisdiction."""

    __tablename__ = "analytics_incidents"
    __table_args__ = (
        UniqueConstraint("dataset", "external_id"),
        Index("ix_analytics_incidents_dataset_occurred_at", "dataset", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("analytics_imports.id", ondelete="CASCADE"), nullable=True, index=True
    )
    dataset: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    type: Mapped[str] = mapped_column(String(64), default="")
    station_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    province_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inside_jurisdiction: Mapped[bool] = mapped_column(Boolean)


class SavedEvaluation(Base):
    """The summary of one `safecity eval hotspots --save` run, for the console's table."""

    __tablename__ = "analytics_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(256))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
