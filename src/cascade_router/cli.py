"""The `cascade-router` command line: a thin layer over the library (one module per command)."""

from __future__ import annotations

import logging

import click

from . import __version__


@click.group()
@click.version_option(__version__, prog_name="cascade-router")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug); before the command.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only in the log; before the command.")
def main(verbose: int, quiet: bool) -> None:
    """Answer with a small model first; escalate to a large model only when unsure.

    Logging: warnings by default; `cascade-router -v COMMAND` adds info, `-vv` debug,
    `-q` keeps errors only (the options go before the command: `ask -q` is the question).
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler()
    handler.setFormatter(_LowerLevel())
    logging.basicConfig(level=level, handlers=[handler], force=True)


class _LowerLevel(logging.Formatter):
    """``warning: message`` (the level in lower case, as the CLI's other messages)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


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
