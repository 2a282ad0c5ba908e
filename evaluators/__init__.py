"""Scorers that turn a stored request pair into named metrics."""
