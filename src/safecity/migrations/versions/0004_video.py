"""video analytics: events (snapshot and clip paths), camera rules, camera health, traffic
counts per line per minute

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import safecity.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "video_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("class_name", sa.String(length=32), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("snapshot_path", sa.String(length=512), nullable=True),
        sa.Column("clip_path", sa.String(length=512), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_events")),
    )
    with op.batch_alter_table("video_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_video_events_camera_id"), ["camera_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_video_events_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_video_events_site_id"), ["site_id"], unique=False)

    op.create_table(
        "video_camera_rules",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("detect_fps", sa.Float(), nullable=False),
        sa.Column("incident_kinds", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_video_camera_rules")),
    )
    op.create_table(
        "video_camera_health",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("last_frame_at", safecity.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("updated_at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_video_camera_health")),
    )
    op.create_table(
        "video_traffic_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("line", sa.String(length=64), nullable=False),
        sa.Column("minute", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("mean_speed_px_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_traffic_counts")),
        sa.UniqueConstraint(
            "camera_id", "line", "minute", name=op.f("uq_video_traffic_counts_camera_id")
        ),
    )
    with op.batch_alter_table("video_traffic_counts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_video_traffic_counts_camera_id"), ["camera_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_video_traffic_counts_minute"), ["minute"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_video_traffic_counts_site_id"), ["site_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("video_traffic_counts")
    op.drop_table("video_camera_health")
    op.drop_table("video_camera_rules")
    op.drop_table("video_events")
