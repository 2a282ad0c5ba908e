"""`python -m shadow.cli`: the same as the `switchover` command."""

from shadow.cli import app

app()
