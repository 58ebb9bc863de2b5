"""Global surrogates of a tabular model: a shallow decision tree and a sparse (L1) logistic
regression fitted to the model's *own predictions*, with their fidelity (how often they agree
with the model on rows they were not fitted on), rendered as a rule list."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import positive_int, probability
from ..plotting import new_figure, style
from ..results import Result, make_meta

__all__ = ["SurrogateResult", "global_surrogate"]


class SurrogateResult(Result):
    """Surrogates of one tabular model.

    ``to_frame()``: one row per surrogate term: ``surrogate`` (``"tree"`` or ``"linear"``),
    ``feature`` (encoded feature name), ``class_label`` (the class whose log-odds a linear
    coefficient raises; the tree's rows use ``""``), ``value`` (tree: impurity-based
    importance; linear: the L1 coefficient on the model's input scale). ``fidelity``: a
    DataFrame with ``surrogate``, ``fidelity_train``, ``fidelity_test`` (share of rows where the
    surrogate predicts the model's label), ``n_train``, ``n_test``, ``n_terms`` (tree leaves;
    non-zero coefficients). ``rules``: the tree as readable text (``sklearn.tree.export_text``),
    with standardised numeric thresholds written back in the table's units and one-hot tests as
    ``column == value`` / ``column != value`` when the model has a ``TabularEncoder``.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "rules": "the decision-tree surrogate as a rule list, with its fidelity",
        "linear": "non-zero coefficients of the sparse linear surrogate",
    })
    #: ``top_k``: the largest coefficients shown.
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "rules": (), "linear": ("top_k",)})

    def __init__(self, loaded, tree, linear, feature_names, label_names, fidelity, parameters,
                 seed) -> None:
        from sklearn.tree import export_text

        self.tree = tree
        self.linear = linear
        self.feature_names = list(feature_names)
        self.label_names = list(label_names)
        self.fidelity = fidelity
        self.rules = _readable(export_text(tree, feature_names=self.feature_names,
                                           class_names=[self.label_names[int(c)]
                                                        for c in tree.classes_], decimals=3),
                               getattr(loaded, "encoder", None))
        self.meta = make_meta(loaded, method="global_surrogate", parameters=parameters,
                              seed=seed)
        self._freeze()

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for name, value in zip(self.feature_names, self.tree.feature_importances_, strict=True):
            if value > 0:
                rows.append({"surrogate": "tree", "feature": name, "class_label": "",
                             "value": float(value)})
        coef = np.atleast_2d(self.linear.coef_)
        classes = [self.label_names[int(c)] for c in self.linear.classes_]
        targets = classes[1:] if coef.shape[0] == 1 else classes
        for row, label in zip(coef, targets, strict=True):
            for name, value in zip(self.feature_names, row, strict=True):
                if value != 0:
                    rows.append({"surrogate": "linear", "feature": name, "class_label": label,
                                 "value": float(value)})
        return pd.DataFrame(rows, columns=["surrogate", "feature", "class_label", "value"])

    def summary(self) -> str:
        f = self.fidelity.set_index("surrogate")
        return (f"global surrogates: depth-{self.tree.get_depth()} tree agrees with the model "
                f"on {100 * f.loc['tree', 'fidelity_test']:.1f}% of held-out rows, sparse "
                f"linear model on {100 * f.loc['linear', 'fidelity_test']:.1f}%")

    def tables(self) -> dict[str, pd.DataFrame]:
        """``terms`` (``to_frame()``) and ``fidelity``."""
        return {"terms": self.to_frame(), "fidelity": self.fidelity.copy()}

    def _plot(self, kind: str, *, ax=None, top_k: int = 15):
        positive_int(top_k, "top_k", fix="pass e.g. top_k=15")
        if kind == "rules":
            lines = self.rules.rstrip().splitlines()
            if ax is None:
                width = max(5.0, 0.068 * max(len(line) for line in lines) + 0.5)
                fig, ax = new_figure(width, 0.8 + 0.13 * len(lines))
            else:
                fig = ax.figure
            with style():
                ax.set_axis_off()
                ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=7.5, va="top",
                        ha="left", transform=ax.transAxes)
                import textwrap

                ax.set_title("\n".join(textwrap.wrap(self.summary(), 64)), fontsize=9,
                             loc="left")
            return fig
        frame = self.to_frame()
        frame = frame[frame.surrogate == "linear"]
        frame = frame.reindex(frame.value.abs().sort_values(ascending=False).index).head(top_k)
        frame = frame.iloc[::-1]
        if ax is None:
            fig, ax = new_figure(6.5, 1.2 + 0.3 * max(1, len(frame)))
        else:
            fig = ax.figure
        with style():
            ax.barh(range(len(frame)), frame.value,
                    color=["#b2182b" if v > 0 else "#2166ac" for v in frame.value])
            ax.set_yticks(range(len(frame)), [f"{f} → {c}" for f, c in
                                              zip(frame.feature, frame.class_label,
                                                  strict=True)])
            ax.axvline(0, color="0.2", linewidth=0.8)
            ax.set_xlabel("L1 logistic-regression coefficient (log-odds per unit of input)")
            fid = self.fidelity.set_index("surrogate").loc["linear", "fidelity_test"]
            ax.set_title(f"Sparse linear surrogate: {len(frame)} largest of "
                         f"{int(self.fidelity.set_index('surrogate').loc['linear', 'n_terms'])}"
                         f" terms, fidelity {100 * fid:.1f}%")
        return fig


def global_surrogate(model, inputs, *, max_depth: int = 3, sparsity: float = 0.1,
                     test_fraction: float = 0.3, seed: int = 0) -> SurrogateResult:
    """Fit a depth-``max_depth`` ``DecisionTreeClassifier`` and an L1 ``LogisticRegression``
    (inverse regularisation ``C = sparsity``; smaller = fewer terms) to the labels ``model``
    predicts on ``inputs`` (a DataFrame or ``(N, F)`` matrix of a tabular model). Rows are split
    (seeded) into a fitting part and a held-out ``test_fraction`` on which fidelity is measured.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from .inputs import _tabular_inputs

    if model.task != "tabular-classification":
        raise ValueError(f"global surrogates are for tabular models; this model's task is "
                         f"{model.task!r}")
    positive_int(max_depth, "max_depth", fix="pass e.g. max_depth=3")
    probability(test_fraction, "test_fraction", fix="pass e.g. test_fraction=0.3")
    if not sparsity > 0:
        raise ValueError(f"sparsity (the L1 C) must be positive, got {sparsity!r}")
    x = _tabular_inputs(model, inputs)
    if len(x) < 10:
        raise ValueError(f"a global surrogate needs at least 10 rows, got {len(x)}")
    with torch.no_grad():
        predicted = model.model(model.to_device(x)).argmax(-1).cpu().numpy()
    features = x.cpu().numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(features))
    n_test = max(1, round(test_fraction * len(features)))
    test, train = order[:n_test], order[n_test:]
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed)
    tree.fit(features[train], predicted[train])
    l1 = {"l1_ratio": 1.0} if _has_l1_ratio() else {"penalty": "l1"}
    linear = LogisticRegression(C=sparsity, solver="saga", max_iter=5000, random_state=seed, **l1)
    if len(np.unique(predicted[train])) < 2:
        raise ValueError("the model predicts a single class on these rows; a surrogate needs "
                         "rows of at least two predicted classes")
    linear.fit(features[train], predicted[train])
    fidelity = []
    for name, fitted, terms in (("tree", tree, tree.get_n_leaves()),
                                ("linear", linear, int(np.count_nonzero(linear.coef_)))):
        fidelity.append({"surrogate": name,
                         "fidelity_train": float((fitted.predict(features[train])
                                                  == predicted[train]).mean()),
                         "fidelity_test": float((fitted.predict(features[test])
                                                 == predicted[test]).mean()),
                         "n_train": len(train), "n_test": len(test), "n_terms": int(terms)})
    labels = list(model.label_names or [str(i) for i in range(int(predicted.max()) + 1)])
    parameters: dict[str, Any] = {"max_depth": max_depth, "sparsity": sparsity,
                                  "test_fraction": test_fraction}
    return SurrogateResult(model, tree, linear, model.feature_names, labels,
                           pd.DataFrame(fidelity), parameters, seed)


def _readable(rules: str, encoder) -> str:
    """Rules in the table's own units: a standardised numeric threshold ``z`` becomes
    ``z * std + mean``; a one-hot test ``col=value <= 0.5`` becomes ``col != value``."""
    import re

    numeric = dict(getattr(encoder, "numeric", {}) or {})

    def numeric_rule(match):
        name, op, value = match.group(1), match.group(2), float(match.group(3))
        if name in numeric:
            mean, std = numeric[name]
            return f"{name} {op} {value * std + mean:.4g}"
        if "=" in name and abs(value - 0.5) < 1e-9:
            column, category = name.split("=", 1)
            return f"{column} {'!=' if op == '<=' else '=='} {category}"
        return f"{name} {op} {value:.3g}"

    return re.sub(r"(?<=--- )(\S+) (<=|>)\s+(-?[0-9.]+(?:e-?[0-9]+)?)", numeric_rule, rules)


def _has_l1_ratio() -> bool:
    """scikit-learn >= 1.8 deprecates ``penalty=`` in favour of ``l1_ratio``."""
    import sklearn

    return tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)
