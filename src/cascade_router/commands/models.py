"""`cascade-router models`: list the embedded models and whether their files are ready."""

from __future__ import annotations

import click

from ..models.registry import EMBEDDED, ModelNotAvailable, cache_dir


@click.command()
@click.option("--prepare", is_flag=True, help="Build missing model files now (Gemma: ~253 MB, once).")
def command(prepare):
    """List the embedded models (installed from PyPI, never downloaded at run time)."""
    for m in EMBEDDED.values():
        try:
            path = m.path(prepare=prepare)
            state = "ready" if path.is_file() else "not built yet (run: cascade-router models --prepare)"
        except ModelNotAvailable as e:
            path, state = "-", f"missing: {e}"
        prompt = "few-shot-prompt" if m.family == "base" else "chat-template"
        click.echo(f"{m.name:14} {m.role.upper():4} {prompt:15} {state}\n{'':14} {m.description}\n{'':14} {path}")
    click.echo(f"cache directory: {cache_dir()}")
