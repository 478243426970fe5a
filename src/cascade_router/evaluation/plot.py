"""Cost-quality plots for routers (matplotlib, Agg canvas, no pyplot global state)."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .curves import Curve

__all__ = ["plot_curves", "plot_chain"]

Point = tuple  # (name, call_rate, quality, cost_or_None)


def _costs_for(curves: Sequence[Curve], costs) -> list[np.ndarray]:
    if isinstance(costs, Mapping):
        missing = [c.name for c in curves if c.name not in costs]
        if missing:
            raise ValueError(f"costs has no entry for curve(s) {missing}")
        seq = [costs[c.name] for c in curves]
    else:
        seq = list(costs)
        if len(seq) != len(curves):
            raise ValueError(f"costs must have one entry per curve ({len(curves)}), got {len(seq)}")
    out = []
    for c, arr in zip(curves, seq):
        arr = np.asarray(arr, dtype=float)
        if arr.shape != c.call_rate.shape:
            raise ValueError(
                f"costs for curve {c.name!r} must have shape {c.call_rate.shape}, got {arr.shape}"
            )
        out.append(arr)
    return out


def plot_curves(
    curves: Sequence[Curve],
    path: str | os.PathLike,
    q_slm: float,
    q_llm: float,
    x: str = "call_rate",
    costs: Sequence | Mapping | None = None,
    title: str = "Cascade routers: quality vs LLM calls",
    points: Sequence[Point] | None = None,
    ylabel: str = "F1",
    emphasis: set[str] | None = None,
    tier_names: tuple[str, str] = ("slm", "llm"),
) -> str:
    """Draw quality curves of several routers and save a PNG.

    Panels: with ``x="call_rate"`` quality against the LLM-call rate, plus a second panel
    against mean dollars per question when ``costs`` is given; with ``x="cost"`` only the
    cost panel (``costs`` required). Curves of kind ``"random"`` are drawn as a dashed grey
    line, ``"oracle"`` as a dotted black line; always-SLM and always-LLM qualities are
    horizontal lines on every panel.

    Args:
        curves: curves to draw.
        path: output PNG path (parent folder must exist).
        q_slm: always-SLM mean quality.
        q_llm: always-LLM mean quality.
        x: ``"call_rate"`` or ``"cost"``.
        costs: mean dollars per question at each point of each curve
            (:func:`~cascade_router.evaluation.costs.cost_curve`), as a list aligned with
            ``curves`` or a mapping ``curve.name -> array``; each of shape ``(P,)``.
        title: figure title.
        points: single-point routers (fixed presets) drawn as markers:
            ``(name, call_rate, quality, cost)`` with ``cost`` in dollars per question or
            ``None`` (then the point is omitted from the cost panel).
        ylabel: quality axis label.
        emphasis: names of router curves to draw boldly; the other router curves are drawn
            thin and faded so that every router can share one figure. ``None``: all bold.
        tier_names: the cheap and the expensive tier, for labels.

    Returns:
        ``str(path)``.

    Raises:
        ValueError: unknown ``x``; ``x="cost"`` without ``costs``; ``costs`` not matching
            ``curves``; a point's call rate outside ``[0, 1]``.
    """
    if x not in ("call_rate", "cost"):
        raise ValueError(f'x must be "call_rate" or "cost", got {x!r}')
    if x == "cost" and costs is None:
        raise ValueError('x="cost" needs costs')
    curves = list(curves)
    points = list(points or [])
    for p in points:
        if len(p) != 4:
            raise ValueError(f"points entries must be (name, call_rate, quality, cost), got {p!r}")
        if not 0.0 <= float(p[1]) <= 1.0:
            raise ValueError(f"points: call_rate of {p[0]!r} must lie in [0, 1], got {p[1]}")
    cost_arrays = _costs_for(curves, costs) if costs is not None else None

    lo, hi = (n.upper() if n in ("slm", "llm") else n for n in tier_names)
    panels = ["call_rate"] if x == "call_rate" else []
    if cost_arrays is not None:
        panels.append("cost")

    fig = Figure(figsize=(5.5 * len(panels) + 2.2, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    # Bold curves take tab10's strong colours (grey is random's); faded ones tab20's light tints.
    strong = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]
    light = matplotlib.colormaps["tab20"].colors[1::2]
    routers = [c for c in curves if c.kind not in ("random", "oracle")]
    bold_names = [c.name for c in routers if emphasis is None or c.name in emphasis]
    faded_names = [c.name for c in routers if c.name not in bold_names]
    color = {n: strong[j % len(strong)] for j, n in enumerate(bold_names)}
    color.update({n: light[j % len(light)] for j, n in enumerate(faded_names)})
    for ax, panel in zip(axes, panels):
        for i, c in enumerate(curves):
            xs = c.call_rate if panel == "call_rate" else cost_arrays[i]
            if c.kind == "random":
                ax.plot(xs, c.quality, linestyle="--", color="grey", label=c.name)
            elif c.kind == "oracle":
                ax.plot(xs, c.quality, linestyle=":", color="black", linewidth=1.5, label=c.name)
            else:
                bold = emphasis is None or c.name in emphasis
                ax.plot(xs, c.quality, marker="." if c.n_points <= 60 else None, color=color[c.name],
                        linewidth=1.6 if bold else 0.9, alpha=1.0 if bold else 0.8, label=c.name,
                        zorder=3 if bold else 2)
        for name, rate, qual, cost in points:
            if panel == "cost" and cost is None:
                continue
            ax.plot([rate if panel == "call_rate" else cost], [qual], marker="*", markersize=11,
                    markeredgecolor="black", markeredgewidth=0.6, linestyle="none", label=str(name), zorder=4)
        ax.axhline(q_slm, color="tab:blue", linestyle="-.", linewidth=1, label=f"always {lo}")
        ax.axhline(q_llm, color="tab:red", linestyle="-.", linewidth=1, label=f"always {hi}")
        ax.set_xlabel(f"{hi}-call rate" if panel == "call_rate" else "mean cost per question ($)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if panel == "call_rate":
            ax.set_xlim(-0.02, 1.02)
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="outside right center")
    fig.suptitle(title)
    fig.savefig(os.fspath(path), format="png", dpi=110)
    fig.clear()
    return str(path)


def plot_chain(chain, path: str | os.PathLike, title: str = "Chain: F1 vs cost") -> str:
    """Draw an N-tier chain's test-split F1 against mean dollars per question and save a PNG.

    The frontier (settings on the calibration split's cost-quality frontier, measured on the
    test split) as a line; each single tier, the configured chain, random and the oracle as
    markers; the budget targets as stars.

    Args:
        chain: a :class:`~cascade_router.evaluation.analysis.ChainAnalysis`.
        path: output PNG path (parent folder must exist).

    Returns:
        ``str(path)``.
    """
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    fr = sorted(chain.frontier, key=lambda s: s.test.cost_per_question_usd)
    ax.plot([s.test.cost_per_question_usd for s in fr], [s.test.f1 for s in fr], marker=".", color="tab:purple",
            label="chain frontier (calibrated)")
    markers = {"oracle": ("black", "D"), "random (each gate 50%)": ("grey", "s"), "chain (configured)": ("tab:brown", "^")}
    tier_colors = matplotlib.colormaps["tab10"].colors
    j = 0
    for name, p in chain.points.items():
        color, m = markers.get(name, (tier_colors[j % 10], "o"))
        if name.startswith("tier:"):
            j += 1
        ax.plot([p.cost_per_question_usd], [p.f1], marker=m, color=color, linestyle="none", markersize=8, label=name)
    for k, s in chain.targets.items():
        ax.plot([s.test.cost_per_question_usd], [s.test.f1], marker="*", markersize=12, markeredgecolor="black",
                linestyle="none", label=f"@{k} budget")
    ax.set_xlabel("mean cost per question ($)")
    ax.set_ylabel("F1")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="outside right center")
    fig.suptitle(title)
    fig.savefig(os.fspath(path), format="png", dpi=110)
    fig.clear()
    return str(path)
