"""The ``d3prefine`` command line: a typer app with one module per command.

Each command module in this package defines a function ``command`` (its docstring is the
command's help) and ``EXAMPLES``, the command lines its ``--help`` ends with; :data:`COMMANDS`
maps command names to those modules, so adding a command is an import and one line. Errors meant
for users (:class:`~d3prefine.errors.D3PrefineError`) that escape a command are printed as one
line and exit with code 1; usage errors (bad options, nothing to do) as one line and exit with
code 2. The command modules import torch only inside the functions that need it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from d3prefine import __version__
from d3prefine.cli import convert, evaluate, export, fit_noise, info, plot, refine, train
from d3prefine.errors import D3PrefineError, ExitCode, UsageError
from d3prefine.runtime import report_error

#: command name -> module of ``d3prefine.cli`` that defines ``command`` and ``EXAMPLES``.
COMMANDS: dict[str, ModuleType] = {
    "refine": refine,
    "evaluate": evaluate,
    "fit-noise": fit_noise,
    "train": train,
    "info": info,
    "plot": plot,
    "convert": convert,
    "export": export,
}


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread like ``KeyboardInterrupt`` for SIGINT: ``finally`` blocks
    run, so temporary and claim files are removed (BaseException: no ``except Exception`` stops it)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise _Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _flags_without_type(command: Any, ctx: Any) -> None:
    """Show boolean flags as flags in ``--help`` (typer's rich help writes ``--json <bool>``, as if
    they took a value): an empty metavar leaves their type column blank."""
    for param in command.get_params(ctx):  # with --help
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _ErrorReportingGroup(TyperGroup):
    """One line ``error: <message>`` on stderr for every error: a :class:`D3PrefineError` raised by
    a command exits 1, a usage error (typer's, or a :class:`UsageError`) exits 2 (instead of
    typer's multi-line box), SIGINT 130 and SIGTERM 143 (after the temporary and claim files are
    removed)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except D3PrefineError as error:
            report_error(error)
            raise typer.Exit(ExitCode.USAGE if isinstance(error, UsageError) else ExitCode.FAILED) from None
        except KeyboardInterrupt:
            report_error("interrupted by SIGINT; unfinished outputs were not written")
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_without_type(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_type(self, ctx)
        super().format_help(ctx, formatter)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            with _sigterm_raises():
                code = super().main(*args, standalone_mode=False, **kwargs)
        except _Terminated:
            report_error("terminated by SIGTERM; unfinished outputs were not written")
            sys.exit(ExitCode.TERMINATED)
        except typer.TyperException as error:  # typer's usage errors (bad option, missing argument): exit 2
            command = getattr(getattr(error, "ctx", None), "command_path", None) or "d3prefine"
            report_error(f"{error.format_message()} (see '{command} --help')")
            sys.exit(error.exit_code)
        except typer.Abort:
            report_error("aborted")
            sys.exit(ExitCode.FAILED)
        sys.exit(code if isinstance(code, int) else ExitCode.OK)


app = typer.Typer(
    name="d3prefine",
    cls=_ErrorReportingGroup,
    help="Refine monocular 3D human pose estimates with a conditional diffusion model.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"d3prefine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Refine monocular 3D human pose estimates with a conditional diffusion model."""
    if ctx.invoked_subcommand is None:  # no command: show the help, a usage error
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(ExitCode.USAGE)


for _name, _module in COMMANDS.items():
    app.command(_name, epilog="Examples:\n\n" + "\n\n".join(_module.EXAMPLES))(_module.command)


def main() -> None:
    """Console-script entry point (``d3prefine``)."""
    app()
