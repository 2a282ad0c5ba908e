"""Imports of captured traffic (`switchover import`): their counts and state, for the API."""
