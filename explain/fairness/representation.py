"""Representation probes: at which layer is a sensitive attribute linearly decodable?

For each layer, the layer's output is captured with ``explain.hooks.record`` (token states are
mean-pooled under the attention mask), and a cross-validated logistic regression (scikit-learn,
standardised features) predicts the attribute from it. Two references keep the curve honest:
the **majority baseline** (always guess the most frequent value) and a **control task**: the
same probe trained on randomly permuted attribute values (Hewitt and Liang, 2019, in spirit), so
that a probe that memorises high-dimensional noise shows up as high control accuracy.
``selectivity`` = accuracy - control accuracy.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..results import TableResult, make_meta
from ._common import check_count, resolve_model

__all__ = ["ProbeResult", "default_layers", "representation_probe"]

_BLOCK = re.compile(r"(^|\.)(layer|layers|h|blocks|block|hidden)\.\d+$")


def default_layers(model: Any) -> list[str]:
    """The module paths probed by default: the embedding module of a Hugging Face model, then
    every block of the model's (outermost) list of layers, in order."""
    module = getattr(model, "model", model)
    names = []
    for name, sub in module.named_modules():
        if name.endswith("embeddings") and list(sub.children()) and name.count(".") <= 1:
            names.append(name)
            break
    blocks = [name for name, _ in module.named_modules() if _BLOCK.search(name)]
    outer = [b for b in blocks if not any(b != o and b.startswith(o + ".") for o in blocks)]
    names += outer
    if not outer:
        names += [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
    if not names:
        raise ValueError(f"could not find layers in {type(module).__name__}; pass layers=[...] "
                         f"(dotted names from model.named_modules())")
    return names


def _layer_tensor(output: Any) -> torch.Tensor:
    """The tensor of a recorded layer output (``explain.hooks``' rule: the first tensor)."""
    from ..hooks import _first_tensor

    tensor = _first_tensor(output)
    if tensor is None:
        raise TypeError(f"a probed layer returned {type(output).__name__}, which holds no tensor")
    return tensor


def _pool(tensor: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    tensor = tensor.double()
    if tensor.ndim == 3 and mask is not None and mask.shape == tensor.shape[:2]:
        m = mask.double()[..., None]
        tensor = (tensor * m).sum(1) / m.sum(1).clamp(min=1)
    elif tensor.ndim > 2:
        tensor = tensor.flatten(2).mean(-1) if tensor.ndim == 4 else tensor.mean(1)
    return tensor.reshape(len(tensor), -1).numpy()


def collect_states(model: Any, inputs: Any, layers: Sequence[str], *,
                   batch_size: int = 32) -> dict[str, np.ndarray]:
    """Pooled output of every layer for every input: layer -> ``(n_inputs, width)``."""
    from ..hooks import preserved_state, record

    if model.is_text:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        batches = [model.encode_texts(texts[i:i + batch_size])
                   for i in range(0, len(texts), batch_size)]
        calls = [(b.model_inputs(), b.attention_mask) for b in batches]
    else:
        if isinstance(inputs, pd.DataFrame):
            matrix = model.encode_frame(inputs)
        else:
            matrix = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        calls = [((matrix[i:i + batch_size],), None)
                 for i in range(0, len(matrix), batch_size)]
    states: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for arguments, mask in calls:
            with record(model, layers) as recording:
                if isinstance(arguments, dict):
                    model.model(**arguments)
                else:
                    model.model(*arguments)
            for name in layers:
                states[name].append(_pool(_layer_tensor(recording.outputs[name]), mask))
    return {name: np.concatenate(parts) for name, parts in states.items()}


def representation_probe(
    model: Any,
    inputs: Any,
    attribute: Sequence[Any],
    *,
    layers: Sequence[str] | None = None,
    n_splits: int = 5,
    control: bool = True,
    regularization: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
    batch_size: int = 32,
) -> ProbeResult:
    """Linear probes, layer by layer, predicting ``attribute`` (one value per input).

    ``inputs``: texts for a text model; a raw ``DataFrame`` (through ``model.encode_frame``) or
    a float matrix for a tabular model. ``layers``: dotted module paths (default:
    ``default_layers(model)``). ``n_splits``-fold stratified cross-validation (shuffled with
    ``seed``); ``regularization`` is the inverse strength ``C`` of scikit-learn's
    ``LogisticRegression``. ``control``: also probe shuffled attribute values.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = resolve_model(model)
    n_splits = check_count(n_splits, "n_splits", 2)
    labels = pd.Series(list(attribute))
    n_inputs = len(inputs) if not isinstance(inputs, str) else 1
    if len(labels) != n_inputs:
        raise ValueError(f"got {n_inputs} inputs but {len(labels)} attribute values; pass one "
                         f"value per input")
    if labels.isna().any():
        raise ValueError(f"attribute has {int(labels.isna().sum())} missing values; drop those "
                         f"inputs")
    counts = labels.astype(str).value_counts()
    if len(counts) < 2:
        raise ValueError(f"the attribute has one value ({counts.index[0]!r}); a probe needs at "
                         f"least two")
    if counts.min() < n_splits:
        raise ValueError(f"value {counts.idxmin()!r} of the attribute occurs {counts.min()} "
                         f"times, fewer than n_splits={n_splits}; add inputs or lower n_splits")
    y = pd.factorize(labels.astype(str), sort=True)[0]
    layers = list(layers) if layers is not None else default_layers(model)
    states = collect_states(model, inputs, layers, batch_size=batch_size)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    shuffled = np.random.default_rng(seed).permutation(y)
    majority = float(counts.max() / counts.sum())
    rows = []
    for index, name in enumerate(layers):
        x = states[name]
        probe = make_pipeline(StandardScaler(),
                              LogisticRegression(C=regularization, max_iter=max_iter))
        # One BLAS thread: these fits are tiny, and threads only contend with each other.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # convergence chatter on separable data
            scores = cross_val_score(probe, x, y, cv=folds)
            control_scores = cross_val_score(probe, x, shuffled, cv=folds) if control else None
        rows.append({
            "layer": name, "layer_index": index, "n_features": int(x.shape[1]),
            "accuracy": float(scores.mean()), "accuracy_std": float(scores.std(ddof=1)),
            "control_accuracy": float(control_scores.mean()) if control else np.nan,
            "control_accuracy_std": float(control_scores.std(ddof=1)) if control else np.nan,
            "majority_baseline": majority,
            "selectivity": float(scores.mean() - control_scores.mean()) if control else np.nan,
        })
    parameters = {"layers": layers, "n_splits": n_splits, "control": control,
                  "regularization": regularization, "n_inputs": n_inputs,
                  "attribute_values": list(counts.sort_index().index)}
    return ProbeResult(pd.DataFrame(rows), meta=make_meta(model, method="representation-probe",
                                                          parameters=parameters, seed=seed))


class ProbeResult(TableResult):
    """Probe accuracy per layer.

    ``to_frame()``: one row per layer: ``layer`` (module path), ``layer_index``, ``n_features``,
    ``accuracy`` and ``accuracy_std`` (mean and standard deviation over folds),
    ``control_accuracy``, ``control_accuracy_std`` (shuffled attribute), ``majority_baseline``,
    ``selectivity`` (accuracy - control accuracy).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "accuracy_by_layer": "probe accuracy per layer against the control task and the "
                             "majority baseline",
    })

    def summary(self) -> str:
        best = self.table.iloc[self.table["accuracy"].argmax()]
        return (f"Representation probe: best layer {best.layer} (accuracy {best.accuracy:.3f}, "
                f"majority {best.majority_baseline:.3f})")

    def plot(self, kind: str | None = None, *, ax=None):
        from ..plotting import axes_or_new, style

        self._check_kind(kind)
        table = self.table
        fig, ax = axes_or_new(ax, max(5.0, 0.6 * len(table) + 2.5), 4.0)
        with style():
            x = table["layer_index"].to_numpy()
            ax.errorbar(x, table["accuracy"], yerr=table["accuracy_std"], marker="o",
                        capsize=3, label="probe (attribute)", color="#4C72B0")
            if table["control_accuracy"].notna().any():
                ax.errorbar(x, table["control_accuracy"], yerr=table["control_accuracy_std"],
                            marker="s", capsize=3, label="control (shuffled attribute)",
                            color="#DD8452", linestyle="--")
            ax.axhline(table["majority_baseline"].iloc[0], color="grey", linestyle=":",
                       label="majority baseline")
            ax.set_xticks(x, [_short(n) for n in table["layer"]],
                          rotation=30 if len(table) > 4 else 0,
                          ha="right" if len(table) > 4 else "center")
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("layer")
            ax.set_ylabel(f"accuracy ({self.meta['parameters']['n_splits']}-fold CV, mean ± sd)")
            ax.set_title("Where is the attribute linearly decodable?")
            ax.legend(frameon=False, loc="lower right")
        return fig


def _short(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else name
