"""A pre-generation router: decides from the question's embedding alone, before any tier runs,
whether to send the question straight to a later tier (RouteLLM's setting: route on the prompt).

The model is scikit-learn's ``StandardScaler -> LogisticRegression`` on the question embedding
(:mod:`cascade_router.embeddings`, unit vectors), fitted cost-sensitively like
:class:`~cascade_router.routers.logistic.LogisticRouter` (labels and weights from
:func:`~cascade_router.routers.logistic.gain_labels`). The decision score is P(the later tier's
answer is better); a question escalates iff it exceeds ``threshold``. Saved JSON holds the
scaler and the coefficients (no pickle); a loaded router computes ``sigmoid(w . z + b)`` with
numpy.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .base import Router, check_c_and_threshold, register


def _matrix(X) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise ValueError(f"embeddings must have shape (n, dim), got {X.shape}")
    return X


@register
class EmbeddingRouter(Router):
    """P(escalating helps | question embedding), by logistic regression.

    Args:
        embedder: the embedder spec whose vectors it reads (``minilm`` or ``MODEL@URL``); a
            router must be used with the embedder it was fitted on.
        C: inverse L2 regularisation strength.
        threshold: probability above which the question skips to the later tier.

    Input of :meth:`fit`/:meth:`decision_function`: embeddings, shape ``(n, dim)`` (or one
    vector ``(dim,)``), not signal rows: it runs before any tier, so there are no signals.
    """

    kind = "embedding-logistic"

    def __init__(self, embedder: str = "minilm", C: float = 1.0, threshold: float = 0.5) -> None:
        if not isinstance(embedder, str) or not embedder:
            raise ValueError(f"embedder must be an embedder spec string, got {embedder!r}")
        self.embedder = embedder
        self.C, self.threshold = check_c_and_threshold(C, threshold)
        self._state: dict[str, Any] | None = None

    def get_params(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "C": self.C, "threshold": self.threshold}

    def fit(self, X, y: Sequence[int] | None = None, sample_weight: Sequence[float] | None = None) -> "EmbeddingRouter":
        """Fit on embeddings ``X`` (n, dim) and labels ``y`` (n,) in {0, 1}, optional weights.

        Raises:
            ValueError: shapes that do not match, labels not 0/1 or of one class only.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = _matrix(X)
        if y is None:
            raise ValueError("fit needs labels y")
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y must hold 0/1 labels")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        pos = y if w is None else y[w > 0]
        if np.unique(pos).size < 2:
            raise ValueError("y must hold both classes (among rows of positive weight)")
        sc = StandardScaler().fit(X)
        lr = LogisticRegression(C=self.C, max_iter=2000).fit(sc.transform(X), y, sample_weight=w)
        self._state = {"dim": int(X.shape[1]), "mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(),
                       "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}
        return self

    def decision_function(self, X) -> np.ndarray:
        """P(escalating helps), shape ``(n,)``.

        Raises:
            ValueError: not fitted, or vectors of another dimension than fitted.
        """
        if self._state is None:
            raise ValueError("EmbeddingRouter is not fitted (fit it, or load a fitted one from JSON)")
        X = _matrix(X)
        s = self._state
        if X.shape[1] != s["dim"]:
            raise ValueError(f"embeddings have dimension {X.shape[1]}, the router was fitted on {s['dim']}")
        z = (X - np.asarray(s["mean"])) / np.asarray(s["scale"])
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(s["coef"]) + s["intercept"])))

    def get_state_dim(self) -> int:
        """The embedding dimension it was fitted on (0 when not fitted)."""
        return int(self._state["dim"]) if self._state else 0

    def _get_state(self) -> dict[str, Any]:
        return dict(self._state or {})

    def _set_state(self, state) -> None:
        if not state:
            self._state = None
            return
        dim = int(state["dim"])
        arrs = {k: np.asarray(state[k], dtype=float) for k in ("mean", "scale", "coef")}
        if any(a.shape != (dim,) for a in arrs.values()) or not all(np.isfinite(a).all() for a in arrs.values()):
            raise ValueError(f"state vectors must be {dim} finite numbers each")
        if not math.isfinite(float(state["intercept"])) or (arrs["scale"] <= 0).any():
            raise ValueError("state intercept must be finite and scales positive")
        self._state = {"dim": dim, **{k: a.tolist() for k, a in arrs.items()}, "intercept": float(state["intercept"])}
