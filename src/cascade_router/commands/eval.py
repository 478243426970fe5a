"""`cascade-router eval` and `cascade-router report`: the evaluation harness on a real dataset."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import sys
from pathlib import Path

import click

from ..config import CascadeConfig
from ..datasets import DATASETS, DatasetError, exclude, load_dataset, read_id_list, sample
from ..models.base import ModelError
from ..models.registry import ModelNotAvailable
from ..prompts import DATASET_TASK
from ..routers import get_router
from .common import check_specs, fail, load_scored_run, open_run, resolve_config

DEFAULT_LIMIT = 200


def _short(spec: str) -> str:
    name = spec.split("@", 1)[0] if "@" in spec else Path(spec).stem if spec.endswith(".gguf") else spec
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model"


def _run_dir_name(cfg: CascadeConfig, dataset: str, lim: int | None, seed: int) -> str:
    models = "-".join(_short(t.model) for t in cfg.tiers)
    return f"runs/{dataset}-{models}-n{lim or 'all'}-s{seed}"


def _extra_routers(routers: str | None, seed: int) -> dict:
    out = {}
    for spec in (routers or "").split(","):
        spec = spec.strip()
        if spec:
            try:
                out[spec] = get_router(spec, seed=seed)
            except ValueError as e:
                fail(f"--routers: {e}")
    return out


def _analyse_and_write(run_dir: Path, identity: dict, cfg: CascadeConfig | None, examples, seed: int,
                       extra: dict | None = None, extra_routers: dict | None = None, gate_specs: list | None = None):
    from ..config import build_router, router_label
    from ..evaluation.analysis import analyse
    from ..evaluation.report import write_report

    run = load_scored_run(run_dir, identity, examples, cfg)
    gates = []
    for spec in gate_specs or []:
        try:
            gates.append((router_label(spec), build_router(spec, seed=seed)))
        except ValueError as e:
            fail(f"gate router {router_label(spec)!r}: {e}")
    embeddings = _embeddings(run_dir, examples)
    res = analyse(run, seed=seed, extra_routers=extra_routers, gates=gates, embeddings=embeddings)
    extra = dict(extra or {}, extra_routers=sorted(extra_routers or {}))
    if gate_specs and len(run.names) >= 3:
        extra["gate_specs"] = gate_specs
    paths = write_report(run_dir, identity, run, res, extra)
    return run, res, paths


def _embeddings(run_dir: Path, examples):
    """The run's question embeddings (offline, cached in the run directory) for the
    pre-generation router's rows; None with a warning when the embedder is unavailable."""
    from ..embeddings import EmbeddingError
    from ..evaluation.runs import question_embeddings

    try:
        return question_embeddings(run_dir, examples)
    except (EmbeddingError, OSError) as e:
        click.echo(f"warning: no question embeddings ({e}); the pre-generation router is left out", err=True)
        return None


def _print_summary(run, res, paths) -> None:
    p = res.points
    errs = ", ".join(f"{t} {len(run.errors[t])}" for t in run.names)
    click.echo(f"scored {run.n} questions (errors: {errs})")
    for name in (f"always-{run.first}", f"always-{run.last}", "seed-v1", "seed-v2", "seed-v3", "oracle"):
        x = p[name]
        click.echo(f"  {name:11} F1 {x.f1:5.1f}  EM {x.exact:5.1f}  {run.last} calls {100 * x.llm_call_rate:5.1f}%")
    if res.ranking is not None:
        click.echo(f"  {res.ranking.line()}")
    if res.chain is not None:
        c = res.chain
        click.echo(f"  chain {' -> '.join(run.names)}: APGR {c.apgr:.3f} on the normalised cost axis (test split)")
        for k, s in c.targets.items():
            click.echo(f"    @{k} budget: F1 {s.test.f1:5.1f}  ${1000 * s.test.cost_per_question_usd:.4f} / 1k q  "
                       + "  ".join(f"{t} {100 * v:.0f}%" for t, v in (s.test.answered_by or {}).items()))
    if res.abstain is not None:
        for name, x in res.abstain.rows.items():
            click.echo(f"  {name}: F1 {x.f1:5.1f} (HasAns {x.HasAns_f1:5.1f}, NoAns {x.NoAns_f1:5.1f}), abstained {100 * x.abstain_rate:.1f}%")
    click.echo(f"report: {paths['report']}")


@click.command("eval")
@click.option("--dataset", required=True, help=f"One of: {', '.join(DATASETS)}.")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="A file in the official format (default: the bundled copy).")
@click.option("--limit", type=int, default=DEFAULT_LIMIT, show_default=True, help="Questions to sample (whole passages, seeded); 0 = all.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for the sample, the split and the random router.")
@click.option("--slm", default=None, help="SLM spec (default smollm2-135m).")
@click.option("--llm", default=None, help="LLM spec (default gemma3-270m).")
@click.option("--routers", default=None, help="Comma-separated extra routers to report beside the built-in ones (names, signal:NAME:T, random:RATE, router .json files).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Cascade config (.toml/.yaml/.json): tiers, gates, prices.")
@click.option("--threads", type=int, default=None, help="llama.cpp threads per model (default: all cores).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Run directory (default runs/DATASET-SLM-LLM-nLIMIT-sSEED). Rerun to resume.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Questions in flight at once; in-process models get as many llama.cpp slots, so they are "
                   "decoded in one batch, and endpoints are called from as many threads. Not part of the run's "
                   "identity: a resume may use another value.")
@click.option("--reuse", "reuse_dir", type=click.Path(file_okay=False), default=None,
              help="Another run directory made with the same dataset, tiers and prompts (another sample): its stored "
                   "generations for questions of this sample are copied instead of generated again.")
@click.option("--samples", type=click.IntRange(0, 32), default=0, show_default=True,
              help="Self-consistency: sampled generations of the first tier per question, added to the run "
                   "(resumable; not part of the identity). The report then scores the agreement signals.")
@click.option("--sample-temperature", type=click.FloatRange(0.05, 2.0), default=0.7, show_default=True,
              help="Temperature of those samples.")
@click.option("--exclude-ids", "exclude_path", type=click.Path(dir_okay=False), default=None,
              help="A file of question ids (one per line, # comments) left out before sampling: e.g. a dev slice "
                   "the prompts were tuned on. Recorded in the run.")
@click.option("--self-check", "self_checks", is_flag=True,
              help="P(True): ask the first tier whether its own answer is correct (one more one-token call per "
                   "question), added to the run (resumable). The report then scores signal:p_true.")
def eval_command(dataset, data, limit, seed, slm, llm, routers, config_path, threads, out_dir, no_progress, concurrency,
                 reuse_dir, samples, sample_temperature, self_checks, exclude_path):
    """Run every tier on a dataset sample, store every generation, and score every router offline."""
    if dataset not in DATASETS:
        fail(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    if limit is not None and limit < 0:
        fail("--limit must be >= 0")
    check_specs(slm, llm)
    cfg = resolve_config(config_path, slm, llm, None, threads)
    extra_routers = _extra_routers(routers, seed)
    excluded: list[str] = []
    try:
        pool = load_dataset(dataset, data)
        if exclude_path is not None:
            if not exclude_path.strip():
                fail("--exclude-ids: the path is empty")
            excluded = read_id_list(exclude_path)
            pool = exclude(pool, excluded, source=f"--exclude-ids {exclude_path}")
        examples = sample(pool, limit or None, seed=seed)
    except DatasetError as e:
        fail(str(e))
    if not examples:
        fail(f"{dataset}: no questions to evaluate"
             + (f" (--exclude-ids {exclude_path} left out {len(excluded)})" if excluded else ""))
    lim = limit or None
    run_dir = Path(out_dir or _run_dir_name(cfg, dataset, lim, seed))
    from ..evaluation.runs import RunError, check_same_tiers, identity_for

    identity = identity_for(cfg, dataset, data, lim, seed, examples, excluded)

    from ..evaluation.runner import pending_self_checks, run_generations, run_samples, run_self_checks
    from ..evaluation.store import RunLockedError, RunMismatchError, RunStore, StoreError

    try:
        store = RunStore(run_dir, lock=True)
    except (OSError, sqlite3.DatabaseError, RunLockedError) as e:
        fail(f"--out {run_dir}: cannot use as a run directory: {e}")
    try:
        check_same_tiers(store.meta(), identity, str(run_dir))
        store.bind(identity)
    except (RunMismatchError, RunError) as e:
        store.close()
        fail(str(e))
    if reuse_dir:
        _reuse(store, reuse_dir, identity, examples, [t.name for t in cfg.tiers])
    pending = None
    if self_checks:  # a damaged store is reported before any model loads
        try:
            pending = pending_self_checks(store, cfg.first.name)
        except StoreError as e:
            store.close()
            fail(str(e))
    chain = ", ".join(f"{t.name} {t.model}" for t in cfg.tiers)
    click.echo(f"{dataset}: {len(examples)} questions -> {run_dir} (tiers: {chain})", err=True)
    from ..config import ConfigError, build_cascade

    concurrency = min(concurrency, max(1, len(examples)))  # no more slots than questions
    _give_slots(cfg, concurrency)
    try:
        cascade = build_cascade(cfg, seed=seed)  # one backend per distinct model spec
    except ConfigError as e:
        store.close()
        fail(str(e))
    except (ModelNotAvailable, ModelError, FileNotFoundError, ValueError, RuntimeError) as e:
        store.close()
        fail(str(e), code=1)
    try:
        tiers = {t.name: t.backend for t in cascade.tiers}
        stats = run_generations(examples, tiers, store, DATASET_TASK[dataset], cfg.max_tokens, progress=not no_progress,
                                concurrency=concurrency)
        if samples:
            first = cascade.tiers[0]
            old_t = store.sample_temperature(first.name)
            if old_t is not None and abs(old_t - sample_temperature) > 1e-9:
                fail(f"{run_dir} holds {first.name} samples at temperature {old_t:g}; use --sample-temperature {old_t:g}")
            st = run_samples(examples, first.name, first.backend, store, DATASET_TASK[dataset], cfg.max_tokens,
                             k=samples, temperature=sample_temperature, seed=seed, progress=not no_progress)
            click.echo(f"samples of {first.name}: {st.generated} new, {st.skipped} stored, errors {st.errors}; "
                       f"{st.model_s:.1f} s in the model", err=True)
        if self_checks:
            first = cascade.tiers[0]
            try:
                st = run_self_checks(examples, first.name, first.backend, store, DATASET_TASK[dataset],
                                     progress=not no_progress,
                                     pending=pending if not stats.generated else None)  # new answers: read again
            except StoreError as e:
                fail(str(e))
            click.echo(f"self-checks of {first.name}: {st.generated} new, {st.skipped} stored, errors {st.errors}; "
                       f"{st.model_s:.1f} s in the model", err=True)
    finally:
        cascade.close()
        store.close()
    click.echo(f"generated {stats.generated} ({stats.reused} copied from a tier sharing the model), resumed past {stats.skipped}, errors {stats.errors}; "
               f"wall {stats.wall_s:.1f} s, in models {stats.model_s:.1f} s"
               + (f", {concurrency} questions in flight" if concurrency > 1 else ""), err=True)
    identity_out = dict(identity, command=" ".join(["cascade-router"] + [shlex.quote(a) for a in sys.argv[1:]]))
    extra = {"last_run": {"generated": stats.generated, "resumed": stats.skipped, "errors": stats.errors,
                          "wall_s": stats.wall_s, "model_s": stats.model_s, "concurrency": concurrency}}
    gate_specs = [cfg.gate_spec(i) for i in range(len(cfg.tiers)) if cfg.gate_spec(i) is not None]
    run, res, paths = _analyse_and_write(run_dir, identity_out, cfg, examples, seed, extra, extra_routers, gate_specs)
    _print_summary(run, res, paths)
    _fail_if_nothing_scored(run, run_dir)


def _give_slots(cfg: CascadeConfig, concurrency: int) -> None:
    """Give every in-process tier of ``cfg`` at least ``concurrency`` llama.cpp slots (its
    ``parallel``), so that the questions in flight are decoded in one batch; endpoint tiers are
    left as configured. Nothing changes for one question in flight."""
    if concurrency <= 1:
        return
    from ..models.registry import parse_spec

    for t in cfg.tiers:
        try:
            endpoint = parse_spec(t.model)[0] == "endpoint"
        except ValueError:
            continue  # not a model: opening the cascade reports it
        if not endpoint:
            t.parallel = max(t.parallel or 1, concurrency)


def _reuse(store, reuse_dir: str, identity: dict, examples, tiers: list[str]) -> None:
    """Copy the generations of ``reuse_dir`` for this sample's questions into ``store`` (exit 2
    when that run cannot be used or was made with other settings; the store is closed first)."""
    from ..evaluation.runs import RunError, open_run, reusable
    from ..evaluation.store import RunStore

    try:
        other_ident, _ = open_run(reuse_dir)
        same = reusable(identity, other_ident, where=f"--reuse {reuse_dir}")
    except RunError as e:
        store.close()
        fail(str(e))
    other = RunStore(reuse_dir)
    try:
        n = store.copy_from(other, {ex.id for ex in examples}, set(same) & set(tiers))
    finally:
        other.close()
    changed = [t for t in tiers if t not in same]
    click.echo(f"reused {n} stored generations from {reuse_dir}"
               + (f" (not of {', '.join(changed)}: its prompt changed since)" if changed else ""), err=True)


def _fail_if_nothing_scored(run, run_dir: Path) -> None:
    """Exit 1 when no question has every tier's generation (the report files are still written)."""
    if run.n == 0:
        errs = ", ".join(f"{t} {len(run.errors[t])}" for t in run.names)
        fail(f"no question could be scored (errors: {errs}, not yet generated {run.missing}); "
             f"see {run_dir / 'summary.json'}", code=1)


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Config with tier prices to apply.")
def report_command(run_dir, config_path):
    """Rebuild RUN_DIR's report from its stored generations, without running a model."""
    rd = Path(run_dir)
    ident, examples = open_run(run_dir)
    cfg = None
    if config_path:
        from ..config import ConfigError, load_config

        try:
            cfg = load_config(config_path)
        except ConfigError as e:
            fail(str(e))
    prev = _previous_summary(rd / "summary.json")
    ident_out = dict(ident, command=(prev.get("identity") or {}).get("command", ""))
    extra_routers = _extra_routers(",".join(prev.get("extra_routers") or []), ident["seed"])
    from ..evaluation.runs import run_tiers

    gate_specs = prev.get("gate_specs")
    if cfg is not None and [t.name for t in cfg.tiers] == [n for n, _ in run_tiers(ident)]:
        gate_specs = [cfg.gate_spec(i) for i in range(len(cfg.tiers)) if cfg.gate_spec(i) is not None]
    if not gate_specs and len(run_tiers(ident)) >= 3:
        click.echo("warning: no gates recorded for this run (summary.json missing or damaged): the chain section is "
                   "left out; give --config with the run's tiers to rebuild it", err=True)
    run, res, paths = _analyse_and_write(rd, ident_out, cfg, examples, ident["seed"], {"last_run": prev.get("last_run")},
                                         extra_routers, gate_specs)
    _print_summary(run, res, paths)
    _fail_if_nothing_scored(run, rd)


def _previous_summary(path: Path) -> dict:
    """The run's earlier summary.json as a dict (its command, extra routers, gates), or {} with a
    warning when it is missing or damaged (the report is rebuilt from the store either way)."""
    if not path.exists():
        return {}
    try:
        prev = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        click.echo(f"warning: {path}: cannot read the earlier summary ({e}); rebuilding without it", err=True)
        return {}
    if not isinstance(prev, dict):
        click.echo(f"warning: {path}: the earlier summary is not a JSON object; rebuilding without it", err=True)
        return {}
    ok = {"identity": dict, "extra_routers": list, "gate_specs": list, "last_run": dict}
    return {k: v for k, v in prev.items() if k not in ok or isinstance(v, ok[k])}
