"""Persistence: SQLAlchemy models, engine and sessions, repository queries."""

# Registers the session hook that keeps the score aggregates current for ORM-written scores.
from storage import aggregates as aggregates
