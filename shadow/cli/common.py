"""What the command modules share."""

from __future__ import annotations

import typer

from shadow.config import ConfigError, SwitchoverConfig
from shadow.settings import Settings


def load_config(settings: Settings) -> SwitchoverConfig:
    """The parsed configuration; exit 2 with the error's file, line and field when it is wrong."""
    try:
        return settings.load_config()
    except ConfigError as exc:
        typer.echo(f"switchover: {exc}", err=True)
        raise typer.Exit(2) from None
