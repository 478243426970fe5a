"""Calibration transfer: a gate calibrated on one committed run, applied to a fresh sample.

Fits the cost-sensitive logistic gate and chooses its threshold for a target LLM-call rate on
every question of the calibration run (as ``cascade-router calibrate`` does, with its promised
95% intervals), then applies the saved gate to another run of the same tiers drawn with another
seed, leaving out the questions (and passages) the calibration run holds, and prints the call
rate and F1 reached there beside the promise. Offline: both runs' stored generations.

Usage: ``python benchmarks/calibration_transfer.py CALIB_RUN FRESH_RUN [--rates 0.3,0.5]``
"""

from __future__ import annotations

import argparse

import numpy as np

from cascade_router.evaluation.curves import threshold_for_rate
from cascade_router.evaluation.runs import load_scored_run, open_run
from cascade_router.evaluation.stats import Bootstrap, point_intervals
from cascade_router.routers import LogisticRouter, gain_labels


def _fmt(x, ci, pct=False):
    f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.1f}")
    return f"{f(x)} [{f(ci[0])}, {f(ci[1])}]" if ci else f(x)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calib_run")
    ap.add_argument("fresh_run")
    ap.add_argument("--rates", default="0.3,0.5")
    a = ap.parse_args(argv)
    ci_, cex = open_run(a.calib_run)
    fi_, fex = open_run(a.fresh_run)
    cal = load_scored_run(a.calib_run, ci_, cex)
    fresh = load_scored_run(a.fresh_run, fi_, fex)
    seen_q = {r.ex.id for r in cal.records}
    seen_p = {r.ex.passage_id for r in cal.records}
    keep = {r.ex.id for r in fresh.records if r.ex.id not in seen_q and r.ex.passage_id not in seen_p}
    fresh = fresh.subset(keep)
    first, last = cal.first, cal.last
    y, w = gain_labels(cal.arrays[first].f1, cal.arrays[last].f1)
    gate = LogisticRouter().fit(cal.signals(first), y, sample_weight=w)
    s_cal = gate.decision_function(cal.signals(first))
    bc = Bootstrap.over_passages([r.ex.passage_id for r in cal.records])
    bf = Bootstrap.over_passages([r.ex.passage_id for r in fresh.records])
    print(f"calibration: {a.calib_run} ({cal.n} questions); fresh sample: {a.fresh_run} ({fresh.n} questions "
          f"on passages the calibration run does not hold)")
    print(f"fresh sample: {first} alone F1 {100 * fresh.arrays[first].f1.mean():.1f}, {last} alone "
          f"{100 * fresh.arrays[last].f1.mean():.1f}")
    for rate in (float(r) for r in a.rates.split(",")):
        t = threshold_for_rate(s_cal, rate, nan_rank="last")
        ec = gate.with_threshold(t).predict(cal.signals(first))
        en = gate.with_threshold(t).predict(fresh.signals(first))
        fc = np.where(ec, cal.arrays[last].f1, cal.arrays[first].f1)
        fn = np.where(en, fresh.arrays[last].f1, fresh.arrays[first].f1)
        pc = point_intervals(bc, fc, fc, ec, np.zeros(cal.n))
        pn = point_intervals(bf, fn, fn, en, np.zeros(fresh.n))
        print(f"target {100 * rate:.0f}%: promised calls {_fmt(ec.mean(), pc['llm_call_rate_ci95'], True)}, "
              f"F1 {_fmt(100 * fc.mean(), pc['f1_ci95'])} | reached calls {_fmt(en.mean(), pn['llm_call_rate_ci95'], True)}, "
              f"F1 {_fmt(100 * fn.mean(), pn['f1_ci95'])} | call-rate error {100 * (en.mean() - ec.mean()):+.1f} points")


if __name__ == "__main__":
    main()
