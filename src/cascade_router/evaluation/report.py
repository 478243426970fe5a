"""Write a run's report files: summary.json, report.md, curve.png, questions.csv, predictions."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ..jsonsafe import json_safe
from ..signals import SIGNALS
from ..routers import PRESETS
from .analysis import Analysis, RunData
from .stats import N_BOOT


def _pct(x: Any) -> str:
    """A fraction as a percentage with one decimal; "–" for None/nan/non-numbers."""
    if not isinstance(x, (int, float)) or x != x:
        return "–"
    return f"{100 * x:.1f}%"


def _probe_cost(what: str, probe: dict, first: str) -> str:
    """The sentence on what a first-tier probe (samples, checks) costs and where it is charged."""
    return (f"The {what} cost ${1000 * probe['extra_cost_per_question_usd']:.4f} per 1k questions and "
            f"{probe['extra_seconds_per_question']:.2f} s per question of {first} time, charged to {first} in those "
            "routers' cost curves.")


def _f(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _prompt_cache(run: RunData) -> dict[str, Any]:
    out = {}
    for tier in run.names:
        gens = [r.tiers[tier].generation for r in run.records]
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


def _plotted(res: Analysis, n_signals: int = 3) -> set[str]:
    """Curves drawn boldly in curve.png (the others are drawn faded): random, oracle, logistic,
    seed-v1 swept, and the best ``n_signals`` single signals by APGR (AUC where APGR is
    undefined)."""
    def key(item):
        v = item[1]
        return v.apgr if v.apgr == v.apgr else v.auc - 10
    sig = sorted(((k, v) for k, v in res.curves.items() if k.startswith("signal:")), key=key, reverse=True)
    return {"random", "oracle", "logistic", "seed-v1 (swept)", *[k for k, _ in sig[:n_signals]]}


def summary_of(identity: dict[str, Any], run: RunData, res: Analysis, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``summary.json`` content (JSON-ready: :func:`cascade_router.jsonsafe.json_safe`)."""
    summary: dict[str, Any] = {
        "identity": identity,
        "tiers": run.names,
        "scored_questions": run.n,
        "errors": {t: len(v) for t, v in run.errors.items()},
        "error_ids": run.errors,
        "not_yet_generated": run.missing,
        "prompt_cache": _prompt_cache(run),
        "prices": {t: vars(p) for t, p in run.prices.items()},
        "points": {k: p.to_dict() for k, p in res.points.items()},
        "split": res.split,
        "crossfit": res.crossfit,
        **({"self_consistency": res.self_consistency} if res.self_consistency is not None else {}),
        **({"self_check": res.self_check} if res.self_check is not None else {}),
        "baselines": res.baselines,
        "curves": {k: c.to_dict() for k, c in res.curves.items()},
        "ranking": None if res.ranking is None else {**vars(res.ranking), "line": res.ranking.line()},
        "bootstrap": {"unit": "passage", "resamples": N_BOOT, "seed": res.split.seed, "interval": "95% percentile",
                      "over": "all scored questions (curves cross-fitted); chain and abstention: the test split"},
    }
    if res.chain is not None:
        c = res.chain
        summary["chain"] = {
            "gates": c.gates, "grid_size": c.grid_size, "apgr": c.apgr, "cpt50": c.cpt50, "cpt80": c.cpt80,
            "points": {k: p.to_dict() for k, p in c.points.items()},
            "targets": {k: {"thresholds": s.thresholds, "calibration": s.calibration.to_dict(), "test": s.test.to_dict()}
                        for k, s in c.targets.items()},
            "frontier": [{"thresholds": s.thresholds, "calibration": s.calibration.to_dict(), "test": s.test.to_dict()}
                         for s in c.frontier],
        }
    if res.pregen is not None:
        g = res.pregen
        summary["pregen"] = {"embedder": g.embedder, "knn_k": g.knn_k, "saved_usd_per_1k": g.saved_usd_per_1k,
                             "points": {k: p.to_dict() for k, p in g.points.items()}}
    if res.abstain is not None:
        a = res.abstain
        summary["abstain"] = {"gate": a.gate, "threshold": a.threshold, "base": a.base, "candidates": a.candidates,
                              "rows": {k: p.to_dict() for k, p in a.rows.items()}}
    summary.update(extra or {})
    return json_safe(summary)


def write_report(run_dir: str | Path, identity: dict[str, Any], run: RunData, res: Analysis, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every report file into ``run_dir``; returns ``{name: path}``.

    Files: ``summary.json`` (all numbers, with the identity: command, models, dataset, sizes,
    seed), ``report.md`` (tables), ``curve.png`` (F1 vs LLM-call rate and vs cost, first->last
    pair), ``chain.png`` (three tiers or more: the chain's cost-quality frontier),
    ``questions.csv`` (per question: every tier's answer and scores, the first tier's signals,
    the route under each preset as the analysis decided it), and official-format predictions
    for each tier and preset (``predictions/*.json``) that ``cascade-router score`` reads.
    """
    run_dir = Path(run_dir)
    paths: dict[str, Path] = {}
    dataset = identity.get("dataset")
    summary = summary_of(identity, run, res, extra)
    paths["summary"] = run_dir / "summary.json"
    paths["summary"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")

    # predictions in the official formats: every tier alone, and each preset's routing
    pred_dir = run_dir / "predictions"
    pred_dir.mkdir(exist_ok=True)
    sets = {t: [r.tiers[t].answer for r in run.records] for t in run.names}
    for p in PRESET_ROUTES:
        sets[p] = [r.tiers[t].answer for r, t in zip(run.records, res.routes[p])]
    for name, answers in sets.items():
        d = {r.ex.id: a for r, a in zip(run.records, answers)}
        body = {"answer": d, "sp": {}} if dataset == "hotpotqa" else d
        (pred_dir / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False))

    # questions.csv
    first, last = run.first, run.last
    middle = run.names[1:-1]
    paths["questions"] = run_dir / "questions.csv"
    with paths["questions"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "question", "gold", f"{first}_answer", f"{last}_answer", f"{first}_em", f"{first}_f1",
                    f"{last}_em", f"{last}_f1", *SIGNALS, *[f"route_{p}" for p in PRESET_ROUTES],
                    *[f"{m}_{k}" for m in middle for k in ("answer", "em", "f1")]])
        for i, r in enumerate(run.records):
            f, l_ = r.tiers[first], r.tiers[last]
            w.writerow([r.ex.id, r.ex.question, " | ".join(r.ex.answers), f.answer, l_.answer, f.em, f.f1, l_.em, l_.f1,
                        *[("" if f.signals[s] != f.signals[s] else round(f.signals[s], 5)) for s in SIGNALS],
                        *[res.routes[p][i] for p in PRESET_ROUTES],
                        *[v for m in middle for v in (r.tiers[m].answer, r.tiers[m].em, r.tiers[m].f1)]])

    # curve.png
    if res.curve_objects:
        from .plot import plot_curves

        pairs = list(res.curve_objects)  # every router; the best few drawn boldly
        b = res.baselines
        paths["curve"] = run_dir / "curve.png"
        pts = [(f"{name} (as is)", p.llm_call_rate, p.f1 / 100, p.cost_per_question_usd)
               for name, p in res.points.items() if name in PRESETS]
        plot_curves([c for c, _ in pairs], paths["curve"], b[f"{first}_f1"] / 100, b[f"{last}_f1"] / 100,
                    costs=[k for _, k in pairs], points=pts, emphasis=_plotted(res),
                    title=f"{dataset}: F1 vs {last} calls (cross-fitted, n={res.crossfit.n})",
                    tier_names=(first, last))
    if res.chain is not None:
        from .plot import plot_chain

        paths["chain"] = run_dir / "chain.png"
        plot_chain(res.chain, paths["chain"], title=f"{dataset}: {' -> '.join(run.names)} (test split, n={res.split.test})")

    paths["report"] = run_dir / "report.md"
    paths["report"].write_text(render_markdown(summary))
    return paths


#: The preset routings written as predictions files and questions.csv columns.
PRESET_ROUTES = ("seed-v1", "seed-v2", "seed-v3")


def _ci(v: Any, ci: Any, nd: int = 1, pct: bool = False) -> str:
    """A value with its 95% interval in brackets, where there is one."""
    fmt = (lambda x: _pct(x)) if pct else (lambda x: _f(x, nd))  # noqa: E731
    base = fmt(v)
    if not isinstance(ci, list) or len(ci) != 2 or base == "–":
        return base
    return f"{base} [{fmt(ci[0])}, {fmt(ci[1])}]"


def _point_row(name: str, p: dict[str, Any], v2: bool, detail: list[str] | None = None) -> str:
    vals = [_f(p["exact"]), _ci(p["f1"], p.get("f1_ci95"))]
    if v2:
        vals += [_f(p.get("HasAns_f1")), _f(p.get("NoAns_f1"))]
    if detail is not None:
        ab = p.get("answered_by") or {}
        vals += [_pct(ab.get(t)) for t in detail]
    vals += [_pct(p["llm_call_rate"]),
             _f(1000 * p["cost_per_question_usd"], 4) if p["cost_per_question_usd"] is not None else "–",
             _f(p["latency_p50_s"], 2), _f(p["latency_p95_s"], 2)]
    return f"| {name} | " + " | ".join(vals) + " |"


def _point_header(v2: bool, last: str, detail: list[str] | None = None) -> list[str]:
    cols = ["EM", "F1"] + (["HasAns F1", "NoAns F1"] if v2 else [])
    cols += [f"answered by {t}" for t in (detail or [])]
    cols += [f"{last.upper() if last == 'llm' else last} calls", "$ / 1k questions", "latency p50 s", "p95 s"]
    return ["| router | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]


def render_markdown(summary: dict[str, Any]) -> str:
    """The human-readable report from a summary dict (:func:`summary_of`)."""
    ident = summary["identity"]
    tiers = summary.get("tiers") or ["slm", "llm"]
    first, last = tiers[0], tiers[-1]
    v2 = ident.get("dataset") == "squad-v2.0"
    L = [f"# cascade-router evaluation: {ident.get('dataset')}", ""]
    L.append(f"- command: `{ident.get('command', '')}`")
    if "tiers" in ident:
        chain = " -> ".join(f"{t['name']} ({t['model']})" for t in ident["tiers"])
        L.append(f"- tiers: {chain}; sample: {ident.get('limit') or 'all'} questions, seed {ident.get('seed')}")
    else:
        L.append(f"- SLM: {ident.get('slm')}; LLM: {ident.get('llm')}; sample: {ident.get('limit') or 'all'} questions, seed {ident.get('seed')}")
    errs = ", ".join(f"{t} {summary['errors'][t]}" for t in tiers)
    L.append(f"- scored questions: {summary['scored_questions']}; generation errors: {errs} (left out of scoring); not yet generated: {summary['not_yet_generated']}")
    pc = summary["prompt_cache"]
    for t in tiers:
        c = pc[t]
        ratio = "–" if c["cache_ratio"] is None else f"{100 * c['cache_ratio']:.1f}%"
        L.append(f"- {t.upper() if t in ('slm', 'llm') else t} prompt tokens: {c['prompt_tokens_sent']} sent, {c['prompt_tokens_evaluated']} evaluated (cache {ratio}); {c['completion_tokens']} generated; {c['model_seconds']:.1f} s in the model; {c['truncated_passages']} passages truncated")
    pair = "" if tiers == ["slm", "llm"] else f" of the pair {first} -> {last}"
    L += ["", f"## Fixed routings{pair} (all scored questions)", ""]
    L += _point_header(v2, last)
    for name, p in summary["points"].items():
        L.append(_point_row(name, p, v2))
    if summary.get("curves"):
        cf = summary["crossfit"]
        b = summary["baselines"]
        bf, bl = b[f"{first}_f1"], b[f"{last}_f1"]
        up = {"slm": "SLM", "llm": "LLM"}
        F, La = up.get(first, first), up.get(last, last)
        L += ["", f"## Cost-quality curves{pair} (cross-fitted: {cf['n']} questions, {cf['folds']} folds by passage, seed {cf['seed']})", "",
              f"{F} F1 {bf:.1f}, {La} F1 {bl:.1f}. Every learned gate and every threshold is fitted on {cf['folds'] - 1} folds "
              "and applied to the held-out fold, so each question is scored once by a gate that never saw it. "
              f"APGR: average performance gap recovered over {La}-call rates 0..1; "
              f"CPT(x%): {La}-call rate needed to recover x% of the {F}-to-{La} gap (RouteLLM, Ong et al. 2024). "
              "`@30%`/`@50%`: each fold's threshold chosen on its training folds for that " + f"{La}-call rate, applied to "
              "its held-out fold (call rate reached, F1, over all questions).", ""]
        if bl <= bf:
            L += [f"**The {La} does not beat the {F} on this sample, so there is no gap to recover: APGR and CPT are "
                  f"undefined (–). Compare routers by AUC and by the F1 they reach at a given {La}-call rate.**", ""]
        L.append("| router | APGR [95% CI] | CPT(50%) | CPT(80%) | CPT(95%) | AUC | @30%: calls, F1 | @50%: calls, F1 |")
        L.append("|---|---|---|---|---|---|---|---|")
        for name, c in summary["curves"].items():
            t30, t50 = c.get("target30"), c.get("target50")
            at = lambda t: "–" if not t else f"{_pct(t['llm_call_rate'])}, {_ci(t['f1'], t.get('f1_ci95'))}"  # noqa: E731
            L.append(f"| {name} | {_ci(c.get('apgr'), c.get('apgr_ci95'), 3)} | {_ci(c.get('cpt50'), c.get('cpt50_ci95'), pct=True)} | "
                     f"{_ci(c.get('cpt80'), c.get('cpt80_ci95'), pct=True)} | {_pct(c.get('cpt95'))} | {_f(c.get('auc'), 3)} | {at(t30)} | {at(t50)} |")
        rk = summary.get("ranking")
        if rk:
            L += ["", f"**{rk['line'][0].upper() + rk['line'][1:]}.**"]
        L += ["", "Intervals: 95% percentile bootstrap over passages (1,000 resamples, seeded), over all scored questions.",
              "", "![F1 against LLM-call rate](curve.png)"]
    ch = summary.get("chain")
    if ch:
        L += ["", f"## The chain {' -> '.join(tiers)} (test split)", "",
              f"Gates as configured: {', '.join(f'after {t}: `{g}`' for t, g in zip(tiers, ch['gates']))}. "
              f"Their thresholds were searched on a grid ({ch['grid_size']} settings) on the calibration split; "
              "`tier:NAME` is that tier alone (pays only it); the oracle answers with the cheapest tier whose answer "
              "scores best (pays every tier up to it); random escalates half the questions at each gate. "
              f"APGR between {first} and {last} on the normalised cost axis (0 = {first} alone, 1 = every tier on every question): "
              f"**{_f(ch['apgr'], 3)}**; CPT(50%) {_pct(ch['cpt50'])}, CPT(80%) {_pct(ch['cpt80'])} of that cost range (random mixing: 0.500).", ""]
        L += _point_header(v2, last, tiers)
        for name, p in ch["points"].items():
            L.append(_point_row(name, p, v2, tiers))
        for k, s in ch["targets"].items():
            L.append(_point_row(f"chain @{k} budget (thresholds {', '.join(_f(t, 3) for t in s['thresholds'])})", s["test"], v2, tiers))
        L += ["", f"Budget rows: the best setting on the calibration split whose cost stays within that share of the way "
              f"from {first} alone to every tier; measured on the test split. The frontier ({len(ch['frontier'])} settings) "
              "is in summary.json and chain.png.", "", "![The chain's cost-quality frontier](chain.png)"]
    sc = summary.get("self_consistency")
    if sc:
        L += ["", "## Self-consistency", "",
              f"{sc['samples_per_question']} sampled answers of {first} per question (stored in the run): `signal:sc_agreement` "
              "(share equal to the greedy answer, official normalisation), `signal:sc_f1` (mean token F1 against it), "
              "`signal:sc_entropy` (entropy of the answers) and `logistic + self-consistency` (every signal plus these) are "
              f"in the curve table above. {_probe_cost('samples', sc, first)}"]
    ck = summary.get("self_check")
    if ck:
        L += ["", "## Self-check (P(True))", "",
              f"{first} was asked, after its answer, whether that answer is correct (one more call of one token; "
              "Kadavath et al. 2022). `signal:p_true` (the probability of yes against no; lower escalates) and "
              "`logistic + p_true` (every signal plus it) are in the curve table above"
              + (", as is `logistic + self-consistency + p_true`" if sc else "") + ". "
              f"Mean P(True) {_f(ck['p_true_mean'], 3)}: {_f(ck.get('p_true_mean_right'), 3)} on the {ck.get('right')} answers "
              f"of {first} with F1 1, {_f(ck.get('p_true_mean_wrong'), 3)} on the {ck.get('wrong')} with F1 0; "
              f"{ck['no_yes_or_no']} questions had neither yes nor no among the "
              f"top alternatives. {_probe_cost('checks', ck, first)}"]
    pg = summary.get("pregen")
    if pg:
        L += ["", "## Pre-generation router (cross-fitted)", "",
              f"`pregen:embedding` decides from the question's embedding alone ({pg['embedder']}), before any tier runs: "
              f"a question it escalates goes straight to {last} and does not pay for {first}. "
              f"`logistic + knn_gain` is the post-generation logistic gate with one more feature, the mean {last}-minus-{first} "
              f"F1 gain of the {pg['knn_k']} most similar questions of the training folds. Both curves are in the table above; at "
              "the targets chosen on the training folds:", ""]
        L.append(f"| routing | F1 | {last} calls | $ / 1k questions | saved vs paying {first} first |")
        L.append("|---|---|---|---|---|")
        for name, p in pg["points"].items():
            saved = pg["saved_usd_per_1k"].get(name.split("@")[-1]) if name.startswith("pregen") else None
            L.append(f"| {name} | {_f(p['f1'])} | {_pct(p['llm_call_rate'])} | {_f(1000 * p['cost_per_question_usd'], 4)} | "
                     f"{'–' if saved is None else '$' + _f(saved, 4)} |")
    ab = summary.get("abstain")
    if ab:
        L += ["", "## Abstention after the last tier (SQuAD v2.0, test split)", "",
              f"An abstain gate after {last} answers \"cannot be answered from the passage\" (the empty prediction). "
              f"Chosen on the calibration split among each {last} signal and a cost-sensitive logistic router: "
              f"`{ab['gate']}`, threshold {_f(ab['threshold'], 3)}. It applies to the questions that reach {last}.", ""]
        cols = ["EM", "F1", "HasAns F1", "NoAns F1", "abstained", f"{last} calls", "$ / 1k questions"]
        L.append("| cascade | " + " | ".join(cols) + " |")
        L.append("|---" * (len(cols) + 1) + "|")
        for name, p in ab["rows"].items():
            L.append(f"| {name} | {_f(p['exact'])} | {_f(p['f1'])} | {_f(p.get('HasAns_f1'))} | {_f(p.get('NoAns_f1'))} | "
                     f"{_pct(p.get('abstain_rate'))} | {_pct(p['llm_call_rate'])} | {_f(1000 * p['cost_per_question_usd'], 4)} |")
    return "\n".join(L) + "\n"
