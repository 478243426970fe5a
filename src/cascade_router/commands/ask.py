"""`cascade-router ask`: answer one question through the cascade and say why it was routed so."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..models.base import ModelError
from ..prompts import TASKS, is_short_question
from .common import check_specs, fail, open_cascade, resolve_config, tier_options


#: Characters that show nothing: a byte-order mark, zero-width spaces/joiners, NUL.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060\x00"


@click.command()
@tier_options
@click.option("--question", "-q", required=True, help="The question.")
@click.option("--context", "-c", default=None, help="The passage, as text.")
@click.option("--context-file", type=click.Path(dir_okay=False), default=None, help="Read the passage from a file.")
@click.option("--task", type=click.Choice(TASKS), default=None, help="Prompt style (default: squad with a passage; without one, open for one short question, chat otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def command(question, context, context_file, slm, llm, router, config_path, task, use_cache, families, threads, as_json):
    """Answer QUESTION with the first tier; each gate accepts the answer or escalates to the
    next tier (a gate after the last tier may abstain)."""
    if not question.strip():
        fail("--question is empty")
    if context is not None and context_file is not None:
        fail("give --context or --context-file, not both")
    if context_file is not None:
        try:
            context = Path(context_file).read_text(encoding="utf-8-sig")  # a BOM is not text
        except (OSError, UnicodeDecodeError) as e:
            fail(f"--context-file {context_file}: {e}")
    if context is not None and not context.translate(dict.fromkeys(map(ord, _INVISIBLE))).strip():
        fail(f"--context-file {context_file} is empty" if context_file is not None else
             "--context is empty (leave it out to ask without a passage)")
    check_specs(slm, llm)
    cfg = resolve_config(config_path, slm, llm, router, threads, cache=use_cache, families=families)
    task = task or ("squad" if context else ("open" if is_short_question(question) else "chat"))
    cascade = open_cascade(cfg, lazy=cfg.cache is not None)  # a cache hit never loads a model
    try:
        res = cascade.answer(question, context, task=task)
    except ModelError as e:
        fail(f"tier {e.tier}: {e}" if e.tier else str(e), code=1)
    finally:
        cascade.close()
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, allow_nan=False))
        return
    _print_result(res)


def _print_result(res) -> None:
    """The answer, every gate decision with its reasons, the route, failures, each tier's
    answer, and tokens/latency/cost."""
    if res.abstained:
        click.echo("(abstained: the passage does not answer the question)")
    else:
        click.echo(res.answer if res.answer else "(no answer)")
    click.echo("")
    if res.pregate is not None:
        p = res.pregate
        how = f"skipped to {res.start}" if p.outcome == "escalate" else "start at the first tier"
        click.echo(f"pre-generation gate ({p.router}): score {p.score:.3f} vs threshold {p.threshold:g} -> {how}")
    for d in res.decisions:
        click.echo(f"gate after {d.after} ({d.router}): score {d.score:.3f} vs threshold {d.threshold:g} -> {d.outcome}")
        for r in d.reasons:
            click.echo(str(r))
    if res.abstained:
        click.echo("answered by: abstain")
    elif res.cache is not None:
        h = res.cache
        click.echo(f"answered by: cache ({h.kind} match, similarity {h.similarity:.3f}, of {h.question!r}; "
                   f"first answered by {h.route}, {h.age_s:.0f} s ago)")
    else:
        run = res.run(res.route)
        click.echo(f"answered by: {res.route} ({run.model if run is not None else '?'})")
    for f in res.failures:
        click.echo(f"tier {f.tier} failed: {f.error} (degraded)")
    for r in res.runs:
        click.echo(f"{r.tier} answer: {r.answer!r}")
        if r.unavailable:
            click.echo(f"{r.tier} signals unavailable: {', '.join(r.unavailable)}"
                       + (" (no logprobs from this tier)" if r.generation.logprobs is None else ""))
    click.echo(f"tokens: {res.total_tokens}  latency: {res.latency_s:.2f} s  cost: ${res.cost_usd:.8f}")
    if res.cache_status == "miss":
        click.echo("cache: miss (answer stored)" if res.cache_error is None else f"cache: miss ({res.cache_error})")
    elif res.cache_error:
        click.echo(f"cache: error ({res.cache_error})")
