"""Alembic migrations; run them with `switchover db upgrade`."""
