"""Shared CLI plumbing: one-line errors with exit code 2, and building a config from options."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from ..config import CascadeConfig, ConfigError, TierConfig, load_config


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code`` (2: bad input)."""
    click.echo(f"error: {message}".splitlines()[0], err=True)
    sys.exit(code)


def resolve_config(
    config_path: str | None,
    slm: str | None,
    llm: str | None,
    router: str | None,
    threads: int | None = None,
) -> CascadeConfig:
    """The config file's settings (or the defaults) with command-line options on top."""
    try:
        cfg = load_config(config_path) if config_path else CascadeConfig()
    except ConfigError as e:
        fail(str(e))
    if slm:
        cfg.slm = TierConfig(slm)
    if llm:
        cfg.llm = TierConfig(llm)
    if threads:
        cfg.slm.threads = cfg.llm.threads = threads
    if router:
        cfg.router = router
    try:
        cfg.build_router()
    except ValueError as e:
        fail(str(e))
    return cfg
