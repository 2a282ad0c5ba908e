"""The API families Switchover speaks: their forms, error shapes, streams and translations.

Shared by the proxy and the worker (plain functions over JSON, no I/O).
"""
