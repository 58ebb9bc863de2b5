"""Fitted scikit-learn classifiers as torch modules, so that ``explain.load_model(estimator,
...)`` gives the rest of the toolkit a model it can call like any tabular one.

``SklearnClassifier.forward`` takes the ``(N, F)`` float tensor of encoded features, hands it
to ``estimator.predict_proba`` as float64 numpy (as a DataFrame with the estimator's
``feature_names_in_`` when it was fitted on one) and returns the **log-probabilities**
``log p`` (float32, on the input's device). ``softmax(log p) = p``, so an attribution of
``output="probability"`` explains ``predict_proba`` itself and ``"log_probability"`` its
logarithm (probabilities are floored at float32's smallest normal number, 1.2e-38, so the
logarithm stays finite). A scikit-learn classifier has no score before a softmax and no
gradients: its family (``"sklearn"``, ``Family.opaque``) makes ``output="logit"``, the
gradient and layer methods and representation probes refuse it, naming what applies instead.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["SklearnClassifier", "is_estimator", "wrap"]

_FLOOR = float(np.finfo(np.float32).tiny)


def is_estimator(source: Any) -> bool:
    """Whether ``source`` is a scikit-learn-style classifier (it has ``predict_proba``) and not
    a torch module."""
    return not isinstance(source, nn.Module) and callable(getattr(source, "predict_proba", None))


class SklearnClassifier(nn.Module):
    """``forward(x: (N, n_features) float) -> (N, n_classes)`` log ``predict_proba`` (float32,
    on ``x.device``). ``estimator``: the fitted classifier; ``n_features``: its input width.
    No parameters, no gradients: the output is not connected to ``x``."""

    def __init__(self, estimator: Any, n_features: int) -> None:
        super().__init__()
        self.estimator = estimator
        self.n_features = int(n_features)
        names = getattr(estimator, "feature_names_in_", None)
        self.columns = [str(name) for name in names] if names is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"{type(self.estimator).__name__} reads (n_rows, {self.n_features}) "
                             f"features, got a tensor of shape {tuple(x.shape)}")
        values = x.detach().to("cpu", torch.float64).numpy()
        if self.columns is not None:
            import pandas as pd

            values = pd.DataFrame(values, columns=self.columns)
        probabilities = np.asarray(self.estimator.predict_proba(values), dtype=np.float64)
        log_p = np.log(np.maximum(probabilities, _FLOOR)).astype(np.float32)
        return torch.from_numpy(log_p).to(x.device)

    def extra_repr(self) -> str:
        return f"{type(self.estimator).__name__}, n_features={self.n_features}"


def wrap(estimator: Any, *, feature_names: Sequence[str] | None,
         label_names: Sequence[str] | None, name: str | None) -> dict[str, Any]:
    """The parts of a ``LoadedModel`` for a fitted classifier: ``model`` (a
    ``SklearnClassifier``), ``feature_names`` (given, else ``feature_names_in_``),
    ``label_names`` (given, else ``classes_`` as strings), ``provenance`` (the sha256 of the
    pickled estimator as ``weights_sha256``). ``ValueError`` for an unfitted estimator, missing
    or mismatched feature names, or label names that do not match ``classes_``."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    kind = type(estimator).__name__
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ValueError(f"{kind} is not fitted; call estimator.fit(X, y) before "
                         f"explain.load_model(estimator, ...)") from None
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if feature_names is None:
        if fitted_names is None:
            raise ValueError(f"{kind} was fitted on an array, so it has no feature names; pass "
                             f"load_model(estimator, feature_names=[...]) (one per input column, "
                             f"in order)")
        feature_names = [str(n) for n in fitted_names]
    feature_names = [str(n) for n in feature_names]
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and len(feature_names) != n_features:
        raise ValueError(f"{kind} reads {n_features} features but feature_names has "
                         f"{len(feature_names)}: {feature_names}")
    if fitted_names is not None and list(map(str, fitted_names)) != feature_names:
        raise ValueError(f"feature_names {feature_names} differ from the columns {kind} was "
                         f"fitted on ({list(map(str, fitted_names))}); drop feature_names= or "
                         f"give those columns in that order")
    classes = [str(c) for c in getattr(estimator, "classes_", ())]
    if label_names is None:
        if not classes:
            raise ValueError(f"{kind} has no classes_; pass label_names=[...] (one per column of "
                             f"predict_proba)")
        label_names = classes
    label_names = [str(n) for n in label_names]
    if classes and len(label_names) != len(classes):
        raise ValueError(f"label_names {label_names} has {len(label_names)} names but {kind} "
                         f"has {len(classes)} classes ({classes})")
    module = SklearnClassifier(estimator, len(feature_names)).eval()
    provenance = {"name": name or kind, "source": "in-memory", "revision": None,
                  "weights_sha256": hashlib.sha256(pickle.dumps(estimator, protocol=4))
                  .hexdigest(),
                  "weights_format": "scikit-learn estimator (sha256 of its pickle)",
                  "class": kind, "attn_implementation": None, "n_parameters": 0}
    return {"model": module, "feature_names": tuple(feature_names),
            "label_names": tuple(label_names), "provenance": provenance}
