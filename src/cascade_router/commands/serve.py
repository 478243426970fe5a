"""`cascade-router serve`: an OpenAI-compatible server that routes every request through the cascade."""

from __future__ import annotations

import socket

import click

from .common import check_specs, fail, open_cascade, resolve_config, tier_options


def _bind(host: str, port: int) -> socket.socket:
    """The bound socket uvicorn will serve on (so the banner shows the real port, also for
    ``--port 0``), before any model is loaded; fail() (exit 2) when it cannot be had."""
    from ..server.runner import bind_socket

    try:
        return bind_socket(host, port)
    except socket.gaierror as e:
        fail(f"--host {host}: cannot resolve: {e}")
    except OSError as e:
        fail(f"cannot bind {host}:{port}: {e.strerror or e}")


def _tiers_label(cascade) -> str:
    """``name:model,...`` for the banner, in tier order."""
    return ",".join(f"{t.name}:{t.model_id}" for t in cascade.tiers)


def _cache_label(cascade) -> str:
    """``off``, or the semantic cache's store and threshold for the banner."""
    c = getattr(cascade, "cache", None)
    if c is None:
        return "off"
    where = getattr(c.store, "path", None) or getattr(c.store, "url", "redis")
    n = c.store.size()
    return f"{where} (threshold {c.threshold:g}, {n} {'entry' if n == 1 else 'entries'})"


def _gates_label(cascade) -> str:
    """``after:router,...`` for the banner: each gate's router label by the tier it follows (the
    abstain gate after the last tier is marked ``(abstain)``)."""
    labels = list(cascade.gate_labels or [])
    out = []
    for i, (tier, gate) in enumerate(zip(cascade.tiers, cascade.gates)):
        if gate is None:
            continue
        label = labels[i] if i < len(labels) and labels[i] else getattr(gate, "kind", "router")
        out.append(f"{tier.name}:{label}" + ("(abstain)" if i == len(cascade.tiers) - 1 else ""))
    return ",".join(out)


@click.command()
@tier_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. A non-loopback address requires --api-key-env.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--api-key-env", default=None, metavar="VAR",
              help="Name of the environment variable holding the accepted API key(s), comma-separated; "
                   "clients send 'Authorization: Bearer KEY'. The key itself is never a CLI argument.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=32, show_default=True,
              help="Cascade calls running at once (worker threads; each tier's own 'parallel' slots bound "
                   "its model calls).")
@click.option("--max-queue", type=click.IntRange(min=0), default=64, show_default=True,
              help="Requests that may wait for a worker; more get HTTP 429.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              help="Largest request body; larger get HTTP 413.")
@click.option("--max-tokens-cap", type=click.IntRange(min=1), default=256, show_default=True,
              help="Largest max_tokens a request may ask for (per tier); more get HTTP 400.")
@click.option("--live-stream/--no-live-stream", default=True, show_default=True,
              help="Stream the final tier's text while it is generated (else when the answer is complete).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="uvicorn log level.")
def command(config_path, slm, llm, router, use_cache, families, threads, host, port, api_key_env, max_concurrency, max_queue,
            max_body_bytes, max_tokens_cap, live_stream, log_level):
    """Serve the cascade behind an OpenAI-compatible API (/v1/chat/completions, /v1/completions,
    /v1/models, /health, /metrics).

    The question is the last user message; a passage goes before a 'Question:' line
    ("Passage: ...\\nQuestion: ...") or in a system message starting with 'Passage:' or
    'Context:'. model "cascade" (or any name that is not a tier) routes from the first tier; a
    tier's name or model id (or "slm"/"llm" for the first/last tier) starts the cascade at that
    tier, skipping the gates before it. GET /v1/models lists the tiers.
    """
    from ..server import ServerSettings, create_app, is_loopback, load_api_keys

    keys: tuple[str, ...] = ()
    if api_key_env is not None:
        if not api_key_env.strip() or "=" in api_key_env:
            fail("--api-key-env takes the NAME of an environment variable (e.g. CASCADE_API_KEY), not a key")
        try:
            keys = load_api_keys(api_key_env)
        except ValueError as e:
            fail(f"--api-key-env: {e}")
    if not is_loopback(host) and not keys:
        fail(f"refusing to bind non-loopback address {host} without API keys: "
             "set --api-key-env VAR with the key(s) in $VAR, or bind 127.0.0.1")
    check_specs(slm, llm)
    cfg = resolve_config(config_path, slm, llm, router, threads, cache=use_cache, families=families)
    sock = _bind(host, port)
    with sock:
        cascade = open_cascade(cfg)
        try:
            settings = ServerSettings(api_keys=keys, max_concurrency=max_concurrency, max_queue=max_queue,
                                      max_body_bytes=max_body_bytes, max_tokens_cap=max_tokens_cap,
                                      live_stream=live_stream)
            app = create_app(cascade, settings)
            import uvicorn

            shown = f"[{host}]" if ":" in host else host
            click.echo(f"cascade-router: tiers={_tiers_label(cascade)} gates={_gates_label(cascade) or '-'} "
                       f"on_llm_error={cfg.on_llm_error} auth={'on' if keys else 'off'} "
                       f"cache={_cache_label(cascade)} chat_gate={cascade.chat_gate_label or '-'}; "
                       f"OpenAI base URL http://{shown}:{sock.getsockname()[1]}/v1", err=True)
            uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off")).run(sockets=[sock])
        finally:
            cascade.close()
