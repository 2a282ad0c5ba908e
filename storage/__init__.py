"""Persistence: SQLAlchemy models, engine and sessions, repository queries."""
