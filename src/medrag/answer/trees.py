"""Gradient-boosted decision trees evaluated from plain arrays (no pickle).

A boosted-tree binary classifier (Friedman, Annals of Statistics 2001; fit with
scikit-learn's ``HistGradientBoostingClassifier``, after LightGBM, Ke et al., NeurIPS
2017) is stored as flat node arrays: for node ``i``, ``feature[i]`` and
``threshold[i]`` (go left when ``x[feature] <= threshold``; a missing value goes
left when ``missing_left[i]``), ``left[i]`` / ``right[i]`` (node indices in the same
flat arrays), ``is_leaf[i]`` and the leaf's ``value[i]``; ``roots`` holds each tree's
first node. The raw score is ``baseline + sum of the leaves reached``; the probability
its logistic sigmoid. Evaluation walks all rows through all trees at once, one tree
level per step (a few milliseconds for a hundred rows and a few hundred trees).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["BoostedTrees"]


class BoostedTrees:
    """A boosted-tree binary classifier from plain arrays (see the module docstring)."""

    _FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value", "roots")

    def __init__(self, arrays: Mapping[str, Any], baseline: float, n_features: int) -> None:
        missing = [f for f in self._FIELDS if f not in arrays]
        if missing:
            raise ValueError(f"boosted trees lack the arrays {missing}")
        self.feature = np.asarray(arrays["feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays["threshold"], dtype=np.float64)
        self.left = np.asarray(arrays["left"], dtype=np.int64)
        self.right = np.asarray(arrays["right"], dtype=np.int64)
        self.is_leaf = np.asarray(arrays["is_leaf"], dtype=bool)
        self.missing_left = np.asarray(arrays["missing_left"], dtype=bool)
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.roots = np.asarray(arrays["roots"], dtype=np.int64)
        self.baseline = float(baseline)
        self.n_features = int(n_features)
        n = len(self.feature)
        if not all(len(a) == n for a in (self.threshold, self.left, self.right, self.is_leaf, self.missing_left,
                                          self.value)):
            raise ValueError("boosted-tree node arrays differ in length")
        inner = ~self.is_leaf
        if n == 0 or len(self.roots) == 0:
            raise ValueError("boosted trees hold no tree")
        if (np.any(self.roots < 0) or np.any(self.roots >= n)
                or np.any((self.left[inner] < 0) | (self.left[inner] >= n))
                or np.any((self.right[inner] < 0) | (self.right[inner] >= n))
                or np.any((self.feature[inner] < 0) | (self.feature[inner] >= self.n_features))):
            raise ValueError("boosted-tree node arrays point outside the trees or the features")
        self._depth = self._max_depth()

    def _max_depth(self) -> int:
        depth, frontier = 0, self.roots.copy()
        while True:
            inner = frontier[~self.is_leaf[frontier]]
            if len(inner) == 0:
                return depth
            depth += 1
            if depth > len(self.feature):
                raise ValueError("boosted-tree node arrays hold a cycle")
            frontier = np.concatenate([self.left[inner], self.right[inner]])

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The raw score (log-odds) of each row of ``X`` (rows, n_features)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"boosted trees read {self.n_features} features, not an array of shape {X.shape}")
        rows = np.arange(X.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (X.shape[0], len(self.roots))).copy()
        for _ in range(self._depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return self.baseline + self.value[node].sum(axis=1)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.raw(X), -50, 50)))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline, "n_features": self.n_features,
            "feature": self.feature.tolist(), "threshold": self.threshold.tolist(), "left": self.left.tolist(),
            "right": self.right.tolist(), "is_leaf": self.is_leaf.astype(int).tolist(),
            "missing_left": self.missing_left.astype(int).tolist(), "value": self.value.tolist(),
            "roots": self.roots.tolist(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "BoostedTrees":
        return cls(d, d["baseline"], d["n_features"])

    @classmethod
    def from_sklearn(cls, model: Any) -> "BoostedTrees":
        """From a fitted ``sklearn.ensemble.HistGradientBoostingClassifier`` (binary,
        numeric features; used by the fitting script, not at answer time)."""
        feature, threshold, left, right, is_leaf, missing_left, value, roots = ([] for _ in range(8))
        offset = 0
        for (pred,) in model._predictors:  # one predictor per boosting round (binary)
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            feature.extend(nodes["feature_idx"].tolist())
            threshold.extend(nodes["num_threshold"].tolist())
            left.extend((nodes["left"].astype(np.int64) + offset).tolist())
            right.extend((nodes["right"].astype(np.int64) + offset).tolist())
            is_leaf.extend(nodes["is_leaf"].astype(bool).tolist())
            missing_left.extend(nodes["missing_go_to_left"].astype(bool).tolist())
            value.extend(nodes["value"].tolist())
            offset += len(nodes)
        baseline = float(np.ravel(model._baseline_prediction)[0])
        arrays = {"feature": feature, "threshold": threshold, "left": left, "right": right, "is_leaf": is_leaf,
                  "missing_left": missing_left, "value": value, "roots": roots}
        # leaves' left/right are 0 in sklearn: keep them in range
        return cls(arrays, baseline, model.n_features_in_)
