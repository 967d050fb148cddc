"""The ``d3prefine`` command line: a typer app with one module per command.

Each command module in this package defines a function ``command`` (its docstring is the
command's help); :data:`COMMANDS` maps command names to modules, so adding a command is one
line. Errors meant for users (:class:`~d3prefine.errors.D3PrefineError`) that escape a
command are printed as one line and exit with code 1.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from d3prefine import __version__
from d3prefine.cli._common import report_error
from d3prefine.errors import D3PrefineError, ExitCode

#: command name -> module of ``d3prefine.cli`` that defines ``command``.
COMMANDS: dict[str, str] = {
    "refine": "refine",
    "evaluate": "evaluate",
    "fit-noise": "fit_noise",
    "train": "train",
    "info": "info",
    "plot": "plot",
}


class _ErrorReportingGroup(TyperGroup):
    """Turns a :class:`D3PrefineError` raised by any command into ``error: <message>`` and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except D3PrefineError as error:
            report_error(error)
            raise typer.Exit(ExitCode.FAILED) from None


app = typer.Typer(
    name="d3prefine",
    cls=_ErrorReportingGroup,
    help="Refine monocular 3D human pose estimates with a conditional diffusion model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"d3prefine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Refine monocular 3D human pose estimates with a conditional diffusion model."""


for _name, _module in COMMANDS.items():
    app.command(_name)(importlib.import_module(f"d3prefine.cli.{_module}").command)


def main() -> None:
    """Console-script entry point (``d3prefine``)."""
    app()
