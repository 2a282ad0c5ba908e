"""What the command modules share: the command group, settings, database, config and console."""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from shadow.config import ConfigError, SwitchoverConfig
from shadow.settings import Settings, SettingsError

# Tables printed to a pipe or a file are not wrapped at 80 columns: a script reads whole rows.
_PIPE_WIDTH = 1000
CONTEXT = {"help_option_names": ["-h", "--help"]}


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `switchover: message` to stderr; the exit to raise (2: a usage or set-up mistake)."""
    typer.echo(f"switchover: {message}", err=True)
    return typer.Exit(code)


def program_version() -> str:
    """The installed package's version."""
    try:
        return version("switchover")
    except PackageNotFoundError:
        return "unknown"


def print_version(value: bool) -> None:
    """`--version`: print the version and exit."""
    if value:
        typer.echo(f"switchover {program_version()}")
        raise typer.Exit()


def _version_option() -> Any:
    """`--version`, built by typer from a signature like any option, to add to every command."""

    def template(
        version: Annotated[
            bool,
            typer.Option(
                "--version", is_eager=True, callback=print_version, help="Print the version."
            ),
        ] = False,
    ) -> None:
        """Only its option is used."""

    carrier = typer.Typer()
    carrier.command()(template)
    option = next(p for p in typer.main.get_command(carrier).params if p.name == "version")
    option.expose_value = False
    return option


def _placeholders(params: list[Any]) -> None:
    """A value's placeholder is its name in capitals (PORT, HOST) unless one is given; a flag
    shows none: help reads `--port PORT`, never `--port <int>`."""
    for param in params:
        if param is None:
            continue
        if param.param_type_name == "argument":
            # the argument's name column already reads USE_CASE: no type beside it
            param.display_type_rich = lambda ctx: None
        if param.metavar is None:
            flag = getattr(param, "is_flag", False)
            param.metavar = "" if flag else (param.name or "value").upper()


class SwitchoverGroup(TyperGroup):
    """Every command group: a bare group prints its help and exits 0; every command takes
    `--version`; a bad `SWITCHOVER_` value is one sentence and exit 2, never a traceback."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Help (exit 0) when no arguments are given."""
        if not args and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand, with `--version` and placeholders instead of Python types."""
        command = super().get_command(ctx, cmd_name)
        if command is not None and not any(p.name == "version" for p in command.params):
            command.params.append(_version_option())
            _placeholders([*command.params, command.get_help_option(ctx)])
        return command

    def get_help_option(self, ctx: Any) -> Any:
        """`-h, --help`, shown without a type."""
        option = super().get_help_option(ctx)
        _placeholders([*self.params, option])
        return option

    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand; settings the environment gets wrong end it with a sentence."""
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise fail(str(exc)) from None


def group(help_text: str) -> typer.Typer:
    """A command group with the conventions every group of `switchover` follows."""
    return typer.Typer(
        help=help_text,
        cls=SwitchoverGroup,
        context_settings=CONTEXT,
        # help texts hold `code` and [default: ...] notes, not rich markup
        rich_markup_mode="markdown",
        pretty_exceptions_enable=False,
    )


ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="the configuration [default: SWITCHOVER_CONFIG, else ./switchover.yaml, else the "
        "bundled example]",
        show_default=False,
    ),
]


def default_of(field: str) -> str:
    """How help shows a setting's default: its value, and the variable that changes it."""
    return f"[default: {Settings.model_fields[field].default}, or SWITCHOVER_{field.upper()}]"


def with_config(settings: Settings, config: Path | None) -> Settings:
    """The settings with `--config FILE` in place of SWITCHOVER_CONFIG, when given."""
    return settings if config is None else settings.model_copy(update={"config": config})


def load_config(settings: Settings) -> SwitchoverConfig:
    """The parsed configuration; exit 2 with the error's file, line and field when it is wrong."""
    try:
        return settings.load_config()
    except ConfigError as exc:
        raise fail(str(exc)) from None


def use_database(settings: Settings, need_schema: bool = True) -> str:
    """Point storage at the settings' database; the URL. Exit 2 when it cannot be used.

    With `need_schema`, a database without the schema (a SQLite file not there yet included,
    which is then not created) is refused with the command that makes it.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import configure_database
    from storage.migrate import masked, revision

    url = settings.database_url.get_secret_value()
    configure_database(url)
    if need_schema:
        try:
            found = revision(url)
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            reason = (str(orig or exc).strip().splitlines() or ["unknown error"])[0]
            raise fail(f"cannot reach the database at {masked(url)}: {reason}") from None
        if found is None:
            raise fail(f"no schema at {masked(url)}: run `switchover db upgrade`")
    return url


def pick_use_case(positional: str | None, option: str | None, code: int = 2) -> str:
    """The use case, given as the argument or as `--use-case` (the same either way)."""
    if positional and option and positional != option:
        raise fail(f"two use cases given ({positional!r} and --use-case {option!r})", code)
    found = positional or option
    if not found:
        raise fail("which use case? Give it as USE_CASE or --use-case USE_CASE", code)
    return found


def console() -> Console:
    """A console for tables: the terminal's width, or wide enough not to wrap in a pipe."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=_PIPE_WIDTH)
