"""Write a run's report files: summary.json, report.md, curve.png, questions.csv, predictions."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..routers import PRESETS, preset
from ..signals import SIGNALS
from .analysis import RunData, signal_rows


def _clean(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return _clean(x.item())
    return x


def _pct(x: Any) -> str:
    """A fraction as a percentage with one decimal; "–" for None/nan/non-numbers."""
    if not isinstance(x, (int, float)) or x != x:
        return "–"
    return f"{100 * x:.1f}%"


def _f(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _prompt_cache(run: RunData) -> dict[str, Any]:
    out = {}
    for tier in ("slm", "llm"):
        gens = [getattr(r, tier) for r in run.records]
        sent = sum(g.prompt_tokens for g in gens)
        cached = sum(g.cached_prompt_tokens or 0 for g in gens)
        out[tier] = {
            "prompt_tokens_sent": sent,
            "prompt_tokens_evaluated": sent - cached,
            "cache_ratio": (cached / sent) if sent else None,
            "completion_tokens": sum(g.completion_tokens for g in gens),
            "model_seconds": sum(g.latency_s for g in gens),
            "truncated_passages": sum(bool(g.truncated_context) for g in gens),
        }
    return out


def _plotted(res: dict[str, Any], n_signals: int = 3) -> set[str]:
    """Curves drawn boldly in curve.png (the others are drawn faded): random, oracle, logistic,
    seed-v1 swept, and the best ``n_signals`` single signals by APGR (AUC where APGR is
    undefined)."""
    def key(item):
        v = item[1]
        a = v.get("apgr")
        return a if a is not None and a == a else v.get("auc", 0.0) - 10
    sig = sorted(((k, v) for k, v in res["curves"].items() if k.startswith("signal:")), key=key, reverse=True)
    return {"random", "oracle", "logistic", "seed-v1 (swept)", *[k for k, _ in sig[:n_signals]]}


def write_report(run_dir: str | Path, identity: dict[str, Any], run: RunData, res: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every report file into ``run_dir``; returns ``{name: path}``.

    Files: ``summary.json`` (all numbers, with the identity: command, models, dataset, sizes,
    seed), ``report.md`` (tables), ``curve.png`` (F1 vs LLM-call rate and vs cost),
    ``questions.csv`` (per question: both answers and scores, signals, route under each preset),
    and official-format predictions for each tier and preset (``predictions/*.json``) that
    ``cascade-router score`` reads.
    """
    run_dir = Path(run_dir)
    paths: dict[str, Path] = {}
    dataset = identity.get("dataset")
    summary = {
        "identity": identity,
        "scored_questions": run.n,
        "errors": {t: len(v) for t, v in run.errors.items()},
        "error_ids": run.errors,
        "not_yet_generated": run.missing,
        "prompt_cache": _prompt_cache(run),
        "prices": {"slm": vars(run.slm_price), "llm": vars(run.llm_price)},
        "points": res["points"],
        "split": res["split"],
        "test_baselines": res.get("test_baselines"),
        "curves": res["curves"],
        **(extra or {}),
    }
    paths["summary"] = run_dir / "summary.json"
    paths["summary"].write_text(json.dumps(_clean(summary), indent=2) + "\n")

    # predictions in the official formats
    pred_dir = run_dir / "predictions"
    pred_dir.mkdir(exist_ok=True)
    rows = signal_rows(run)
    routes = {p: preset(p).predict(rows) if run.n else np.zeros(0, bool) for p in PRESETS}
    sets = {"slm": [r.slm_answer for r in run.records], "llm": [r.llm_answer for r in run.records]}
    for p, m in routes.items():
        sets[p] = [r.llm_answer if e else r.slm_answer for r, e in zip(run.records, m)]
    for name, answers in sets.items():
        d = {r.ex.id: a for r, a in zip(run.records, answers)}
        body = {"answer": d, "sp": {}} if dataset == "hotpotqa" else d
        (pred_dir / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False))

    # questions.csv
    paths["questions"] = run_dir / "questions.csv"
    with paths["questions"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "question", "gold", "slm_answer", "llm_answer", "slm_em", "slm_f1", "llm_em", "llm_f1",
                    *SIGNALS, *[f"route_{p}" for p in PRESETS]])
        for i, r in enumerate(run.records):
            w.writerow([r.ex.id, r.ex.question, " | ".join(r.ex.answers), r.slm_answer, r.llm_answer,
                        r.slm_em, r.slm_f1, r.llm_em, r.llm_f1,
                        *[("" if r.signals[s] != r.signals[s] else round(r.signals[s], 5)) for s in SIGNALS],
                        *["llm" if routes[p][i] else "slm" for p in PRESETS]])

    # curve.png
    if res["curve_objects"]:
        from .plot import plot_curves

        pairs = list(res["curve_objects"])  # every router; the best few drawn boldly
        b = res["test_baselines"]
        paths["curve"] = run_dir / "curve.png"
        pts = [(f"{name} (as is)", p["llm_call_rate"], p["f1"] / 100, p["cost_per_question_usd"])
               for name, p in res.get("test_points", {}).items()]
        plot_curves([c for c, _ in pairs], paths["curve"], b["slm_f1"] / 100, b["llm_f1"] / 100,
                    costs=[k for _, k in pairs], points=pts, emphasis=_plotted(res),
                    title=f"{dataset}: F1 vs LLM calls (test split, n={res['split']['test']})")

    paths["report"] = run_dir / "report.md"
    paths["report"].write_text(render_markdown(summary))
    return paths


def render_markdown(summary: dict[str, Any]) -> str:
    """The human-readable report from a summary dict."""
    ident = summary["identity"]
    v2 = ident.get("dataset") == "squad-v2.0"
    L = [f"# cascade-router evaluation: {ident.get('dataset')}", ""]
    L.append(f"- command: `{ident.get('command', '')}`")
    L.append(f"- SLM: {ident.get('slm')}; LLM: {ident.get('llm')}; sample: {ident.get('limit') or 'all'} questions, seed {ident.get('seed')}")
    L.append(f"- scored questions: {summary['scored_questions']}; generation errors: slm {summary['errors']['slm']}, llm {summary['errors']['llm']} (left out of scoring); not yet generated: {summary['not_yet_generated']}")
    pc = summary["prompt_cache"]
    for t in ("slm", "llm"):
        c = pc[t]
        ratio = "–" if c["cache_ratio"] is None else f"{100 * c['cache_ratio']:.1f}%"
        L.append(f"- {t.upper()} prompt tokens: {c['prompt_tokens_sent']} sent, {c['prompt_tokens_evaluated']} evaluated (cache {ratio}); {c['completion_tokens']} generated; {c['model_seconds']:.1f} s in the model; {c['truncated_passages']} passages truncated")
    L += ["", "## Fixed routings (all scored questions)", ""]
    cols = ["EM", "F1"] + (["HasAns F1", "NoAns F1"] if v2 else []) + ["LLM calls", "$ / 1k questions", "latency p50 s", "p95 s"]
    L.append("| router | " + " | ".join(cols) + " |")
    L.append("|---" * (len(cols) + 1) + "|")
    for name, p in summary["points"].items():
        vals = [_f(p["exact"]), _f(p["f1"])]
        if v2:
            vals += [_f(p.get("HasAns_f1")), _f(p.get("NoAns_f1"))]
        vals += [_pct(p["llm_call_rate"]),
                 _f(1000 * p["cost_per_question_usd"], 4) if p["cost_per_question_usd"] is not None else "–",
                 _f(p["latency_p50_s"], 2), _f(p["latency_p95_s"], 2)]
        L.append(f"| {name} | " + " | ".join(vals) + " |")
    if summary.get("curves"):
        sp = summary["split"]
        b = summary["test_baselines"]
        L += ["", f"## Cost-quality curves (test split: {sp['test']} questions; calibration: {sp['calibration']}; seed {sp['seed']})", "",
              f"SLM F1 {b['slm_f1']:.1f}, LLM F1 {b['llm_f1']:.1f} on the test split. APGR: average performance gap recovered over LLM-call rates 0..1; "
              "CPT(x%): LLM-call rate needed to recover x% of the SLM-to-LLM gap (RouteLLM, Ong et al. 2024). "
              "`@30%`/`@50%`: threshold chosen on the calibration split for that LLM-call rate, applied to the test split (call rate reached, F1).", ""]
        if b["llm_f1"] <= b["slm_f1"]:
            L += ["**The LLM does not beat the SLM on this split, so there is no gap to recover: APGR and CPT are "
                  "undefined (–). Compare routers by AUC and by the F1 they reach at a given LLM-call rate.**", ""]
        L.append("| router | APGR | CPT(50%) | CPT(80%) | CPT(95%) | AUC | @30%: calls, F1 | @50%: calls, F1 |")
        L.append("|---|---|---|---|---|---|---|---|")
        for name, c in summary["curves"].items():
            t30, t50 = c.get("target30"), c.get("target50")
            at = lambda t: "–" if not t else f"{_pct(t['llm_call_rate'])}, {_f(t['f1'])}"  # noqa: E731
            L.append(f"| {name} | {_f(c.get('apgr'), 3)} | {_pct(c.get('cpt50'))} | {_pct(c.get('cpt80'))} | {_pct(c.get('cpt95'))} | {_f(c.get('auc'), 3)} | {at(t30)} | {at(t50)} |")
        L += ["", "![F1 against LLM-call rate](curve.png)"]
    return "\n".join(L) + "\n"
