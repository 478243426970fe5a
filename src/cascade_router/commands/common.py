"""Shared CLI plumbing: one-line errors with exit code 2, and building a config from options."""

from __future__ import annotations

import dataclasses
import sys
from typing import NoReturn

import click

from ..config import CascadeConfig, ConfigError, load_config
from ..models.registry import parse_spec


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
    cache: bool = False,
    families: tuple[str, ...] = (),
) -> CascadeConfig:
    """The config file's settings (or the defaults) with command-line options on top:
    ``--slm`` replaces the first tier's model, ``--llm`` the last tier's, ``--router`` the gate
    after the first tier, ``--threads`` every tier's threads, ``--cache`` enables the semantic
    cache (a ``[cache]`` section in the file enables it too)."""
    try:
        cfg = load_config(config_path) if config_path else CascadeConfig()
    except ConfigError as e:
        fail(str(e))
    for spec, i in ((slm, 0), (llm, len(cfg.tiers) - 1)):
        if spec:  # a new model; the tier keeps its name, gate, price, timeouts and threads
            cfg.tiers[i] = dataclasses.replace(cfg.tiers[i], model=spec)
    for value in families:  # --family [TIER=]chat|base
        name, _, fam = value.rpartition("=")
        if fam not in ("chat", "base"):
            fail(f"--family {value}: the family must be chat or base (optionally TIER=chat|base)")
        if name:
            alias = {"slm": cfg.first.name, "llm": cfg.last.name}
            name = name if name in cfg.names else alias.get(name, name)
            if name not in cfg.names:
                fail(f"--family {value}: no tier {name!r}; tiers: {', '.join(cfg.names)}")
            targets = [t for t in cfg.tiers if t.name == name]
        else:
            targets = [t for spec, t in ((slm, cfg.first), (llm, cfg.last)) if spec]
            if not targets:
                fail(f"--family {value}: say which tier (--family TIER={fam}), or give the model with --slm/--llm")
        for t in targets:
            t.family = fam
    if threads:
        for t in cfg.tiers:
            t.threads = threads
    if cache and cfg.cache is None:  # --cache: the semantic cache with its defaults
        from ..stages.cache import CacheSettings

        cfg.cache = CacheSettings()
    if router:
        if len(cfg.tiers) < 2:
            fail("--router: the cascade has one tier, so there is no gate to set")
        cfg.first.router = router
    try:
        cfg.build_gates()
    except ValueError as e:
        fail(str(e))
    return cfg


def open_cascade(cfg: CascadeConfig, seed: int = 0, lazy: bool = False):
    """:func:`cascade_router.config.build_cascade`, its errors mapped to exits: a bad config
    (unknown model, missing file, bad [cache]) exits 2, a model that cannot load exits 1."""
    from ..config import build_cascade
    from ..models.base import ModelError
    from ..models.registry import ModelNotAvailable

    try:
        return build_cascade(cfg, seed=seed, lazy=lazy)
    except ConfigError as e:
        fail(str(e))
    except (ModelNotAvailable, ModelError, FileNotFoundError, ValueError, RuntimeError) as e:
        fail(str(e), code=1)


def tier_options(f):
    """The options ``ask``, ``route`` and ``serve`` share to shape the cascade: ``--slm``,
    ``--llm``, ``--router``, ``--config``, ``--family``, ``--cache``, ``--threads``."""
    for opt in reversed([
        click.option("--slm", default=None, help="Model of the first tier (default smollm2-135m)."),
        click.option("--llm", default=None, help="Model of the last tier (default gemma3-270m)."),
        click.option("--router", "-r", default=None, help="The gate after the first tier: a router name or JSON file (default seed-v1)."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="Cascade config (.toml/.yaml/.json): [slm]/[llm] or [[tiers]], [cache], [pregate]."),
        click.option("--family", "families", multiple=True, metavar="[TIER=]chat|base",
                     help="Prompt family of a tier: chat (chat template) or base (few-shot completion); a bare value "
                          "applies to the models given with --slm/--llm. Repeatable."),
        click.option("--cache", "use_cache", is_flag=True,
                     help="Enable the semantic cache (SQLite in the cache directory, or the config's [cache] section)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="llama.cpp threads per model (default: all cores)."),
    ]):
        f = opt(f)
    return f


def check_specs(slm: str | None, llm: str | None) -> None:
    """Exit 2 with the valid forms listed if ``--slm``/``--llm`` is not a model spec."""
    for opt, spec in (("--slm", slm), ("--llm", llm)):
        if spec:
            try:
                parse_spec(spec)
            except ValueError as e:
                fail(f"{opt}: {e}")


def open_run(run_dir: str) -> tuple[dict, list]:
    """:func:`cascade_router.evaluation.runs.open_run`; exits 2 with its message on a RunError."""
    from ..evaluation.runs import RunError, open_run as _open

    try:
        return _open(run_dir)
    except RunError as e:
        fail(str(e))


def load_scored_run(run_dir, ident: dict, examples: list, cfg=None):
    """:func:`cascade_router.evaluation.runs.load_scored_run`; exits 2 on a RunError (a damaged
    stored row)."""
    from ..evaluation.runs import RunError, load_scored_run as _load

    try:
        return _load(run_dir, ident, examples, cfg)
    except RunError as e:
        fail(str(e))
