"""`cascade-router calibrate`: choose a router's threshold (and fit a learned router) on a stored
run, then save it as JSON for `ask`, `serve` and config files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np

from ..routers import BoostedRouter, LogisticRouter, gain_labels, get_router
from ..jsonsafe import json_safe
from .common import fail, load_scored_run, open_run


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--router", "-r", "router_spec", default="logistic", show_default=True,
              help="logistic, boosted (gradient-boosted trees), a preset (seed-v1...), signal:NAME:THRESHOLD "
                   "(threshold re-chosen), or pregen "
                   "(a pre-generation gate on the question embedding, for a [pregate] section).")
@click.option("--target-rate", type=float, default=None, help="LLM-call rate to aim for, in [0, 1] (at most this rate).")
@click.option("--target-gap", type=float, default=None,
              help="Share of the SLM-to-LLM F1 gap to recover, in [0, 1] (cheapest threshold reaching it).")
@click.option("--after", default=None, metavar="TIER",
              help="The tier the gate stands after (default: the first); it decides between that tier's answer "
                   "and the next tier's.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Where to write the router JSON.")
def command(run_dir, router_spec, target_rate, target_gap, after, out_path):
    """Calibrate the gate after a tier (default: the first) on RUN_DIR's stored generations (made
    by `cascade-router eval`): the rate is the share of questions sent on to the next tier."""
    from ..evaluation.curves import threshold_for_quality, threshold_for_rate

    if (target_rate is None) == (target_gap is None):
        fail("give exactly one of --target-rate or --target-gap")
    target = target_rate if target_rate is not None else target_gap
    if not 0.0 <= target <= 1.0:
        fail(f"{'--target-rate' if target_rate is not None else '--target-gap'} must be in [0, 1], got {target}")
    if not Path(out_path).resolve().parent.is_dir():
        fail(f"--out {out_path}: its directory does not exist")
    rd = Path(run_dir)
    ident, examples = open_run(run_dir)
    run = load_scored_run(rd, ident, examples)
    if run.n < 10:
        fail(f"{rd}: only {run.n} scored questions; calibrate on at least 10")
    after = after or run.first
    if after not in run.names[:-1]:
        fail(f"--after {after}: not a tier with a next tier in this run; tiers: {', '.join(run.names)}")
    nxt = run.names[run.names.index(after) + 1]
    rows = run.signals(after)
    slm_q, llm_q = run.arrays[after].f1, run.arrays[nxt].f1
    if router_spec == "pregen":
        _calibrate_pregen(rd, examples, run, after, nxt, slm_q, llm_q, target_rate, target_gap, out_path)
        return
    if router_spec in ("logistic", "boosted"):
        y, w = gain_labels(slm_q, llm_q)
        if len(np.unique(y[w > 0])) < 2:
            fail(f"{nxt} never (or always) beats {after} in this run: nothing to learn")
        router = (LogisticRouter() if router_spec == "logistic" else BoostedRouter()).fit(rows, y, sample_weight=w)
    else:
        try:
            router = get_router(router_spec)
        except ValueError as e:
            fail(str(e))
        if router.kind == "embedding-logistic":
            fail(f"{router_spec} is a pre-generation router: recalibrate it with --router pregen")
    scores = router.decision_function(rows)  # nan never escalates: nan_rank="last"
    nan = np.isnan(scores)
    if nan.all():
        fail(f"router {router_spec} has no decision score (nan) for any question of this run: "
             "there is no threshold to calibrate")
    if np.unique(scores[~nan]).size + int(nan.any()) < 2:  # one group: nothing to separate
        fail(f"router {router_spec} gives every question of this run the same decision score: "
             "there is no threshold to calibrate")
    target_f1 = None
    if target_rate is not None:
        t = threshold_for_rate(scores, target_rate, nan_rank="last")
    else:
        q_slm, q_llm = float(slm_q.mean()), float(llm_q.mean())
        target_f1 = q_slm + target_gap * (q_llm - q_slm)
        t = threshold_for_quality(scores, slm_q, llm_q, target_f1, nan_rank="last")
        if math.isnan(t):
            fail(f"no threshold recovers {100 * target_gap:.0f}% of the gap on this run")
    router = router.with_threshold(t)
    esc = router.predict(rows)  # what the saved router does (at -inf it still keeps nan scores)
    f1 = np.where(esc, llm_q, slm_q).mean()
    if target_f1 is not None and f1 < target_f1 - 1e-9:
        # only at threshold -inf, where the curve escalates nan scores that the router never does
        n_nan = int(np.isnan(scores).sum())
        fail(f"no threshold recovers {100 * target_gap:.0f}% of the gap on this run "
             f"({n_nan} questions have no decision score and never escalate)")
    try:
        router.save(out_path)
    except OSError as e:
        fail(f"--out {out_path}: {e.strerror or e}")
    ci = _promise_intervals(run, esc, slm_q, llm_q)
    click.echo(json.dumps(json_safe({"router": str(out_path), "kind": router.kind,
                           "threshold": router.get_params().get("threshold", t),  # the router's own units
                           "score_threshold": t, "after": after, "next": nxt,
                           "calibration_questions": run.n, "llm_call_rate": float(esc.mean()),
                           "llm_call_rate_ci95": ci["llm_call_rate_ci95"],
                           "f1": 100 * float(f1), "f1_ci95": ci["f1_ci95"], f"{after}_f1": 100 * float(slm_q.mean()),
                           f"{nxt}_f1": 100 * float(llm_q.mean())}), indent=2))


def _calibrate_pregen(rd, examples, run, after, nxt, slm_q, llm_q, target_rate, target_gap, out_path) -> None:
    """Fit an EmbeddingRouter on the run's question embeddings (computed offline, cached in the
    run directory), choose its threshold, save it. Only ``--target-rate`` (the share sent
    straight to the next tier)."""
    from ..embeddings import EmbeddingError
    from ..evaluation.curves import threshold_for_rate
    from ..evaluation.runs import question_embeddings
    from ..routers import EmbeddingRouter

    if target_rate is None:
        fail("--router pregen takes --target-rate (the share of questions sent straight to the next tier)")
    try:
        emb = question_embeddings(rd, examples)
    except (EmbeddingError, OSError) as e:
        fail(f"cannot embed the run's questions: {e}", code=1)
    X = np.stack([emb[r.ex.id] for r in run.records])
    y, w = gain_labels(slm_q, llm_q)
    if len(np.unique(y[w > 0])) < 2:
        fail(f"{nxt} never (or always) beats {after} in this run: nothing to learn")
    router = EmbeddingRouter().fit(X, y, sample_weight=w)
    scores = router.decision_function(X)
    t = threshold_for_rate(scores, target_rate, nan_rank="last")
    router = router.with_threshold(t)
    esc = router.predict(X)
    try:
        router.save(out_path)
    except OSError as e:
        fail(f"--out {out_path}: {e.strerror or e}")
    f1 = np.where(esc, llm_q, slm_q).mean()
    ci = _promise_intervals(run, esc, slm_q, llm_q)
    click.echo(json.dumps(json_safe({"router": str(out_path), "kind": router.kind, "threshold": t, "after": after,
                                     "next": nxt, "calibration_questions": run.n, "skip_rate": float(esc.mean()),
                                     "skip_rate_ci95": ci["llm_call_rate_ci95"],
                                     "f1": 100 * float(f1), "f1_ci95": ci["f1_ci95"]}), indent=2))


def _promise_intervals(run, esc, slm_q, llm_q) -> dict:
    """95% intervals (bootstrap over the run's passages) of the call rate and F1 the saved router
    reaches on the calibration run: what it promises on a fresh sample of the same kind."""
    from ..evaluation.stats import Bootstrap, point_intervals

    boot = Bootstrap.over_passages([r.ex.passage_id for r in run.records])
    f1 = np.where(esc, llm_q, slm_q)
    return point_intervals(boot, f1, f1, esc, np.zeros(len(f1)))
