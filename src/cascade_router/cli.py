"""The `cascade-router` command line: a thin layer over the library (one module per command)."""

from __future__ import annotations

import click

from . import __version__


@click.group()
@click.version_option(__version__, prog_name="cascade-router")
def main() -> None:
    """Answer with a small model first; escalate to a large model only when unsure."""


def _register() -> None:
    from .commands import ask, calibrate, models, route, score, serve
    from .commands.eval import eval_command, report_command

    main.add_command(ask.command, "ask")
    main.add_command(route.command, "route")
    main.add_command(models.command, "models")
    main.add_command(score.command, "score")
    main.add_command(eval_command, "eval")
    main.add_command(report_command, "report")
    main.add_command(calibrate.command, "calibrate")
    main.add_command(serve.command, "serve")


_register()
