"""analytics: imported incident histories, their imports, saved hotspot evaluations

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import safecity.core.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("bad_date", sa.Integer(), nullable=False),
        sa.Column("bad_coordinates", sa.Integer(), nullable=False),
        sa.Column("duplicate_id", sa.Integer(), nullable=False),
        sa.Column("outside_jurisdiction", sa.Integer(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("created_at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_imports")),
    )
    op.create_index(
        op.f("ix_analytics_imports_dataset"), "analytics_imports", ["dataset"], unique=False
    )
    op.create_table(
        "analytics_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_evaluations")),
    )
    op.create_index(
        op.f("ix_analytics_evaluations_created_at"),
        "analytics_evaluations",
        ["created_at"],
        unique=False,
    )
    op.create_table(
        "analytics_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", safecity.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("tehsil_id", sa.Integer(), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("province_id", sa.Integer(), nullable=True),
        sa.Column("inside_jurisdiction", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["analytics_imports.id"],
            name=op.f("fk_analytics_incidents_import_id_analytics_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_incidents")),
        sa.UniqueConstraint("dataset", "external_id", name=op.f("uq_analytics_incidents_dataset")),
    )
    op.create_index(
        "ix_analytics_incidents_dataset_occurred_at",
        "analytics_incidents",
        ["dataset", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_incidents_district_id"),
        "analytics_incidents",
        ["district_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_incidents_import_id"), "analytics_incidents", ["import_id"], unique=False
    )
    op.create_index(
        op.f("ix_analytics_incidents_station_id"),
        "analytics_incidents",
        ["station_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_analytics_incidents_station_id"), table_name="analytics_incidents")
    op.drop_index(op.f("ix_analytics_incidents_import_id"), table_name="analytics_incidents")
    op.drop_index(op.f("ix_analytics_incidents_district_id"), table_name="analytics_incidents")
    op.drop_index("ix_analytics_incidents_dataset_occurred_at", table_name="analytics_incidents")
    op.drop_table("analytics_incidents")
    op.drop_index(op.f("ix_analytics_evaluations_created_at"), table_name="analytics_evaluations")
    op.drop_table("analytics_evaluations")
    op.drop_index(op.f("ix_analytics_imports_dataset"), table_name="analytics_imports")
    op.drop_table("analytics_imports")
