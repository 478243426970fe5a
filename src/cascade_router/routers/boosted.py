"""A gradient-boosted-trees gate: P(escalating helps | signals) by scikit-learn's
``HistGradientBoostingClassifier``, saved as plain JSON (the trees' split features, thresholds,
missing-value directions and leaf values; never a pickle)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..signals import SIGNALS
from .base import Router, SignalRows, as_rows, column, register

#: The node fields kept per tree (scikit-learn's ``TreePredictor.nodes`` columns).
_NODE_FIELDS = ("feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf", "value")


@register
class BoostedRouter(Router):
    """Escalate when the boosted-trees probability that the next tier's answer is better
    exceeds ``threshold``.

    Fitted with scikit-learn's ``HistGradientBoostingClassifier`` (binary log loss; nan and
    infinite signal values are missing values, which the trees route natively), on the same
    cost-sensitive labels and weights as :class:`~cascade_router.routers.logistic.LogisticRouter`
    (:func:`~cascade_router.routers.logistic.gain_labels`). After fitting, the trees are exported
    to JSON: per node its feature, threshold (``x <= threshold`` goes left), the side missing
    values take, its children and, for a leaf, its value; the score is
    ``sigmoid(baseline + sum of the leaf values reached)``, computed with numpy by
    :meth:`decision_function`, so a loaded router needs no scikit-learn object. The export reads
    the fitted model's ``_predictors`` and ``_baseline_prediction`` (scikit-learn 1.x internals);
    :meth:`fit` checks that the exported trees reproduce ``predict_proba`` and raises if a
    scikit-learn version changed them.

    Args:
        signals: input signal names (default all of :data:`SIGNALS`).
        max_iter: boosting rounds (trees). learning_rate: shrinkage. max_leaf_nodes: leaves per
            tree. min_samples_leaf: questions per leaf at least. l2_regularization: on leaf values.
        threshold: probability above which to escalate.
        random_state: seed (used by scikit-learn only with early stopping, which is off).

    Raises:
        ValueError: unknown signals, or a parameter out of range.
    """

    kind = "boosted"

    def __init__(self, signals: Sequence[str] | None = None, max_iter: int = 100, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 8, min_samples_leaf: int = 20, l2_regularization: float = 1.0,
                 threshold: float = 0.5, random_state: int = 0) -> None:
        if signals is not None and (not isinstance(signals, (list, tuple)) or not signals or len(set(signals)) != len(signals)):
            raise ValueError(f"signals must be a non-empty list of distinct signal names, got {signals!r:.80}")
        self.signals = list(signals or SIGNALS)
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown signals {unknown}; valid: {', '.join(SIGNALS)}")
        for name, v, lo in (("max_iter", max_iter, 1), ("max_leaf_nodes", max_leaf_nodes, 2), ("min_samples_leaf", min_samples_leaf, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
            raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        if not (isinstance(l2_regularization, (int, float)) and l2_regularization >= 0 and math.isfinite(l2_regularization)):
            raise ValueError(f"l2_regularization must be a finite number >= 0, got {l2_regularization!r}")
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        self.max_iter, self.learning_rate, self.max_leaf_nodes = max_iter, float(learning_rate), max_leaf_nodes
        self.min_samples_leaf, self.l2_regularization = min_samples_leaf, float(l2_regularization)
        self.threshold, self.random_state = float(threshold), int(random_state)
        self._state: dict[str, Any] | None = None

    def get_params(self) -> dict[str, Any]:
        return {"signals": list(self.signals), "max_iter": self.max_iter, "learning_rate": self.learning_rate,
                "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
                "l2_regularization": self.l2_regularization, "threshold": self.threshold,
                "random_state": self.random_state}

    def _matrix(self, rows: SignalRows) -> np.ndarray:
        X = np.column_stack([column(rows, s) for s in self.signals]).astype(float)
        return np.where(np.isfinite(X), X, np.nan)

    def fit(self, signals: SignalRows, y: Sequence[int] | None = None,
            sample_weight: Sequence[float] | None = None) -> "BoostedRouter":
        """Fit on n signal rows and labels ``y`` (n,) in {0, 1}, optional weights (n,).

        Raises:
            ValueError: ``y`` missing, of the wrong length or not 0/1, a single class among the
                rows of positive weight, bad weights. RuntimeError: the exported trees do not
                reproduce scikit-learn's probabilities (an incompatible scikit-learn version).
        """
        from sklearn.ensemble import HistGradientBoostingClassifier

        rows = as_rows(signals)
        if y is None or len(y) != len(rows):
            raise ValueError(f"fit needs y with one label per row ({len(rows)})")
        y = np.asarray(y)
        if y.ndim != 1 or not np.all(np.isin(y, (0, 1))):
            raise ValueError("y must be 1-D and hold only 0/1 labels: 1 where escalating helps")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w is not None and (w.shape != (len(rows),) or not np.all(np.isfinite(w)) or np.any(w < 0)):
            raise ValueError(f"sample_weight must be {len(rows)} finite weights >= 0")
        if len(np.unique(y if w is None else y[w > 0])) < 2:
            raise ValueError("fit needs both classes in y (some questions where escalating helps, some where not)")
        X = self._matrix(rows)
        clf = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.random_state)
        clf.fit(X, y.astype(int), sample_weight=w)
        trees = []
        for (pred,) in clf._predictors:
            nodes = pred.nodes
            trees.append({k: [v.item() for v in nodes[k]] for k in _NODE_FIELDS})
        self._set_state({"baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees})
        ours, theirs = self.decision_function(rows), clf.predict_proba(X)[:, 1]
        if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-12):
            raise RuntimeError("the exported trees do not reproduce scikit-learn's probabilities "
                               "(an incompatible scikit-learn version?)")
        return self

    def _raw(self, X: np.ndarray) -> np.ndarray:
        out = np.full(X.shape[0], self._state["baseline"])
        for t in self._state["trees"]:
            node = np.zeros(X.shape[0], dtype=int)
            leaf = np.asarray(t["is_leaf"], dtype=bool)
            feat, thr = np.asarray(t["feature_idx"]), np.asarray(t["num_threshold"], dtype=float)
            left, right = np.asarray(t["left"]), np.asarray(t["right"])
            miss_left = np.asarray(t["missing_go_to_left"], dtype=bool)
            rows = np.arange(X.shape[0])
            while True:
                active = ~leaf[node]
                if not active.any():
                    break
                r, nd = rows[active], node[active]
                x = X[r, feat[nd]]
                go_left = np.where(np.isnan(x), miss_left[nd], x <= thr[nd])
                node[active] = np.where(go_left, left[nd], right[nd])
            out += np.asarray(t["value"], dtype=float)[node]
        return out

    def decision_function(self, signals) -> np.ndarray:
        """P(escalating helps) per row, shape ``(n,)``. Raises RuntimeError when not fitted."""
        if self._state is None:
            raise RuntimeError("BoostedRouter is not fitted: call fit() or load a fitted router")
        return 1.0 / (1.0 + np.exp(-self._raw(self._matrix(as_rows(signals)))))

    def _get_state(self) -> dict[str, Any]:
        return dict(self._state or {})

    def _set_state(self, state) -> None:
        """Check and set the exported trees (empty state = unfitted).

        Raises:
            ValueError: a missing field, arrays of unequal length, a node index or feature out of
                range, a non-finite value.
        """
        if not state:
            self._state = None
            return
        if "baseline" not in state or "trees" not in state or not isinstance(state["trees"], list):
            raise ValueError("boosted state needs 'baseline' and a list of 'trees'")
        base = float(state["baseline"])
        if not math.isfinite(base):
            raise ValueError("boosted state 'baseline' must be finite")
        trees = []
        for i, t in enumerate(state["trees"]):
            if not isinstance(t, dict) or any(k not in t for k in _NODE_FIELDS):
                raise ValueError(f"boosted tree {i} needs the fields {list(_NODE_FIELDS)}")
            n = len(t["value"])
            if n == 0 or any(len(t[k]) != n for k in _NODE_FIELDS):
                raise ValueError(f"boosted tree {i}: every node field must have one value per node")
            leaf = [bool(v) for v in t["is_leaf"]]
            for k in ("left", "right"):  # children come after their parent: no cycle
                if any(not leaf[j] and not (j < int(t[k][j]) < n) for j in range(n)):
                    raise ValueError(f"boosted tree {i}: '{k}' must point at a later node")
            if any(not leaf[j] and not (0 <= int(t["feature_idx"][j]) < len(self.signals)) for j in range(n)):
                raise ValueError(f"boosted tree {i}: 'feature_idx' out of range for {len(self.signals)} signals")
            vals = [float(v) for v in t["value"]]
            if not all(math.isfinite(v) for v in vals):
                raise ValueError(f"boosted tree {i}: leaf values must be finite")
            trees.append({"feature_idx": [int(v) for v in t["feature_idx"]],
                          "num_threshold": [float(v) for v in t["num_threshold"]],
                          "missing_go_to_left": [bool(v) for v in t["missing_go_to_left"]],
                          "left": [int(v) for v in t["left"]], "right": [int(v) for v in t["right"]],
                          "is_leaf": leaf, "value": vals})
        self._state = {"baseline": base, "trees": trees}
