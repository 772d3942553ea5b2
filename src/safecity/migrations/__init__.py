"""Alembic migrations of every domain's tables."""
