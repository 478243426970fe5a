"""`cascade-router route`: answer a JSONL file of questions through the cascade, one output line
per question, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from ..jsonsafe import json_safe
from ..models.base import ModelError
from ..prompts import TASKS, is_short_question
from .common import check_specs, fail, open_cascade, resolve_config, tier_options


def read_input(path: Path) -> list[dict]:
    """The questions of a JSONL file: one JSON object per line with ``question`` (a non-empty
    string), optional ``context`` (a string), ``id`` (a string or number; default ``line-N``)
    and ``task``; blank lines are skipped. Exits 2 naming the file and line of the first bad one."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"--input {path}: {e}")
    items, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--input {path}:{n}"
        try:
            d = json.loads(line)
        except ValueError as e:
            fail(f"{where}: not a JSON object: {e}")
        if not isinstance(d, dict):
            fail(f"{where}: must be a JSON object with a 'question', got {type(d).__name__}")
        q = d.get("question")
        if not isinstance(q, str) or not q.strip():
            fail(f"{where}: 'question' must be a non-empty string")
        if d.get("context") is not None and not isinstance(d["context"], str):
            fail(f"{where}: 'context' must be a string")
        if d.get("task") is not None and d["task"] not in TASKS:
            fail(f"{where}: 'task' must be one of {', '.join(TASKS)}")
        qid = d.get("id", f"line-{n}")
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            fail(f"{where}: 'id' must be a string or a number")
        qid = str(qid)
        if qid in seen:
            fail(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        items.append({"id": qid, "question": q, "context": d.get("context") or None, "task": d.get("task")})
    return items


def _done(path: Path) -> set[str]:
    """Ids already answered in an earlier output file (error lines are retried)."""
    done: set[str] = set()
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: answered again
        if isinstance(d, dict) and "answer" in d and d.get("id") is not None:
            done.add(str(d["id"]))
    return done


def output_record(qid: str, res) -> dict:
    """One output line: id, answer, route, every tier run (answer, signals, tokens, cost,
    latency), every gate decision, totals."""
    return json_safe({
        "id": qid, "answer": res.answer, "route": res.route,
        "runs": [{"tier": r.tier, "model": r.model, "answer": r.answer, "signals": r.signals,
                  "prompt_tokens": r.generation.prompt_tokens, "completion_tokens": r.generation.completion_tokens,
                  "cost_usd": r.cost_usd, "latency_s": r.latency_s} for r in res.runs],
        "gates": [{"after": d.after, "router": d.router, "score": d.score, "threshold": d.threshold,
                   "outcome": d.outcome} for d in res.decisions],
        "total_tokens": res.total_tokens, "cost_usd": res.cost_usd, "latency_s": res.latency_s,
        "degraded": res.degraded, "error": res.error, "cache": res.cache_status,
    })


@click.command()
@tier_options
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="JSONL: one {question, context?, id?, task?} per line.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="JSONL written line by line; rerun to resume.")
@click.option("--task", type=click.Choice(TASKS), default=None, help="Default task (default: squad with a context, open without).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(input_path, output_path, slm, llm, router, config_path, task, use_cache, families, threads, no_progress):
    """Answer every question of --input through the cascade and write one JSON line per question
    to --output (id, answer, route, each tier's run and signals, each gate's decision, tokens,
    cost, latency). Lines already in --output are skipped, so a rerun after a crash resumes."""
    items = read_input(Path(input_path))
    out = Path(output_path)
    done = _done(out)
    todo = [it for it in items if it["id"] not in done]
    click.echo(f"{len(items)} questions in {input_path}; {len(items) - len(todo)} already in {output_path}", err=True)
    if not todo:
        return
    check_specs(slm, llm)
    cfg = resolve_config(config_path, slm, llm, router, threads, cache=use_cache, families=families)
    cascade = open_cascade(cfg)
    errors = 0
    try:
        with out.open("a", encoding="utf-8") as fh:
            if out.stat().st_size and not out.read_bytes().endswith(b"\n"):
                fh.write("\n")  # a line cut by a crash stays on its own (and is answered again)
            for it in todo:
                it["task"] = it["task"] or task or (
                    "squad" if it["context"] else ("open" if is_short_question(it["question"]) else "chat"))
            bar = tqdm(todo, desc="questions", unit="q", disable=no_progress, dynamic_ncols=True)
            for it, res in zip(bar, cascade.answer_many(todo)):
                if isinstance(res, ModelError):
                    errors += 1
                    rec = {"id": it["id"], "error": f"tier {res.tier or 'unknown'}: {res}"}
                else:
                    rec = output_record(it["id"], res)
                fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
                fh.flush()
    finally:
        cascade.close()
    click.echo(f"answered {len(todo) - errors}, errors {errors} (rerun to retry them); output: {output_path}", err=True)
