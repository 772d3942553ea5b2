"""Video tables: events (with snapshot and clip paths), per-camera rules, live camera
health and traffic counts per line per minute."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.core.db import Base, UTCDateTime


class VideoEvent(Base):
    __tablename__ = "video_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(Integer, index=True)
    site_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    station_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    rule: Mapped[str] = mapped_column(String(64), default="")
    class_name: Mapped[str] = mapped_column(String(32), default="")
    track_id: Mapped[int] = mapped_column(Integer, default=-1)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    box: Mapped[list[float]] = mapped_column(JSON, default=list)
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    snapshot_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    clip_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CameraRules(Base):
    __tablename__ = "video_camera_rules"

    camera_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detect_fps: Mapped[float] = mapped_column(Float, default=5.0)
    incident_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CameraHealth(Base):
    __tablename__ = "video_camera_health"

    camera_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    reason: Mapped[str] = mapped_column(String(256), default="")
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    worker: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrafficCount(Base):
    __tablename__ = "video_traffic_counts"
    __table_args__ = (UniqueConstraint("camera_id", "line", "minute"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(Integer, index=True)
    site_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    line: Mapped[str] = mapped_column(String(64))
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    mean_speed_px_s: Mapped[float] = mapped_column(Float, default=0.0)
